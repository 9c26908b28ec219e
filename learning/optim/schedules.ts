/**
 * Schedules of the training loop: the cosine learning rate, MixMatch's
 * unlabeled-loss weight ramp and the EMA decay warm-up.
 *
 * Steps are 0-based iterations. The update of iteration `step` uses
 * `cosineLearningRate(step, ...)`, as in TorchSSL where the scheduler steps
 * after the optimizer.
 *
 * @example
 * ```ts
 * const lr = cosineLearningRate(10000, 20000); // 0.02319031360088211
 * const lambdaU = mixmatchLambdaU(4000, 20000); // 50
 * ```
 * @module
 */

/**
 * Returns TorchSSL's cosine learning rate without warm-up:
 * `baseLr · max(0, cos(π · cycles · step / max(1, totalSteps)))`.
 *
 * With the default 7/16 cycles the rate ends at cos(7π/16) ≈ 0.195 of `baseLr`.
 *
 * @example
 * ```ts
 * cosineLearningRate(0, 20000); // 0.03
 * cosineLearningRate(20000, 20000, 0.03, 7 / 16); // 0.00585270966048385
 * ```
 */
export function cosineLearningRate(
  step: number,
  totalSteps: number,
  baseLr = 0.03,
  cycles = 7 / 16,
): number {
  checkStep("cosineLearningRate", step, totalSteps);
  // Same operation order as TorchSSL's lambda, so the doubles agree to the last bits.
  const progress = step / Math.max(1, totalSteps);
  return baseLr * Math.max(0, Math.cos(Math.PI * cycles * progress));
}

/**
 * Returns MixMatch's unlabeled-loss weight `λu = lambdaMax · clip(step / (rampUp · totalSteps), 0, 1)`:
 * 0 at step 0, linear up to `lambdaMax` at `rampUp · totalSteps`, constant afterwards.
 *
 * The defaults are TorchSSL's CIFAR-10 configuration (λu = 100, ramp over the first 40 % of training).
 *
 * @example
 * ```ts
 * mixmatchLambdaU(4000, 20000); // 50
 * mixmatchLambdaU(8000, 20000); // 100
 * ```
 */
export function mixmatchLambdaU(
  step: number,
  totalSteps: number,
  lambdaMax = 100,
  rampUp = 0.4,
): number {
  checkStep("mixmatchLambdaU", step, totalSteps);
  if (!(rampUp > 0)) {
    throw new RangeError(`mixmatchLambdaU: rampUp must be > 0, got ${rampUp}; use a fraction of training such as 0.4`);
  }
  const rampup = Math.min(1, Math.max(0, step / (rampUp * totalSteps)));
  return lambdaMax * rampup;
}

/**
 * Returns the EMA decay used after update `step` (0-based).
 *
 * Without warm-up this is `decay`. With warm-up it is `min(decay, (step + 1) / (step + 10))`,
 * so early shadows follow the weights closely (TensorFlow's `ExponentialMovingAverage` with
 * `num_updates`). TorchSSL uses a constant decay (no warm-up).
 *
 * @example
 * ```ts
 * emaDecay(0, 0.999, true); // 0.1
 * emaDecay(0, 0.999, false); // 0.999
 * ```
 */
export function emaDecay(step: number, decay: number, warmup: boolean): number {
  if (!Number.isInteger(step) || step < 0) {
    throw new RangeError(`emaDecay: step must be a non-negative integer, got ${step}`);
  }
  if (!(decay >= 0 && decay <= 1)) {
    throw new RangeError(`emaDecay: decay must be in [0, 1], got ${decay}`);
  }
  return warmup ? Math.min(decay, (step + 1) / (step + 10)) : decay;
}

function checkStep(name: string, step: number, totalSteps: number): void {
  if (!Number.isFinite(step) || step < 0) {
    throw new RangeError(`${name}: step must be a finite number >= 0, got ${step}`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new RangeError(`${name}: totalSteps must be a positive integer, got ${totalSteps}`);
  }
}
