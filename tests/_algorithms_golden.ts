/**
 * Checks shared by the golden FixMatch and MixMatch step tests: layout
 * conversion of gradients and the update-Δ comparisons with the tolerances
 * of the golden README (float32 runs of PyTorch scatter that much around the
 * float64 reference).
 *
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { WideResNet } from "../learning/nn/wide_resnet.ts";
import { registerCpuTrainingKernels } from "../learning/backend/cpu_kernels.ts";
import { fixmatchStep } from "../learning/algorithms/fixmatch.ts";
import { applyUpdate, disposeStepResult } from "../learning/algorithms/train_step.ts";
import { SGD } from "../learning/optim/sgd.ts";
import { ExponentialMovingAverage } from "../learning/optim/ema.ts";
import { cosineLearningRate } from "../learning/optim/schedules.ts";
import { type GoldenTensor, readArray, readManifest, readPack } from "./_golden.ts";

type StateDict = Map<string, { shape: number[]; data: Float32Array }>;

/** Selects the cpu backend with the fast convolution gradient kernels. */
export async function useCpuBackend(): Promise<void> {
  await tf.setBackend("cpu");
  registerCpuTrainingKernels();
}

/** Builds WRN-28-2 with the golden initial weights; returns it and its state_dict. */
export function goldenModel(): { model: WideResNet; initial: StateDict } {
  const model = new WideResNet();
  model.loadStateDict(readPack("wrn28_2_forward", "weights"));
  return { model, initial: model.stateDict() };
}

/** Returns a gradient in PyTorch layout (conv OIHW, linear [out, in]). */
export function torchLayout(name: string, grad: tf.Tensor): Float32Array {
  return tf.tidy(() => {
    if (grad.rank === 4) return tf.transpose(grad, [3, 2, 0, 1]).dataSync() as Float32Array;
    if (grad.rank === 2 && name.endsWith(".weight")) return tf.transpose(grad).dataSync() as Float32Array;
    return Float32Array.from(grad.dataSync());
  });
}

/** Largest absolute difference between two arrays of the same length. */
export function maxAbsDifference(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

/** Asserts `max |actual - expected| <= tolerance`. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
): void {
  const error = maxAbsDifference(actual, expected, what);
  assert.ok(error <= tolerance, `${what}: max abs difference ${error} > ${tolerance}`);
}

/** Asserts the step losses against the reference doubles (<= 1e-6). */
export function assertLosses(
  losses: { sup_loss: number; unsup_loss: number; total_loss: number },
  expected: { sup_loss: number; unsup_loss: number; total_loss: number },
): void {
  for (const key of ["sup_loss", "unsup_loss", "total_loss"] as const) {
    assert.ok(
      Math.abs(losses[key] - expected[key]) <= 1e-6,
      `${key}: got ${losses[key]}, expected ${expected[key]}`,
    );
  }
}

/**
 * Compares gradients with the reference subset (PyTorch layout): the relative
 * L2 error over all subset tensors must be <= 2e-3, the bound the README sets
 * for the update Δ, which is −1.9 · lr times the gradient plus weight decay.
 */
export function assertGradients(
  grads: Map<string, tf.Tensor>,
  reference: Map<string, GoldenTensor>,
  skip: ReadonlySet<string>,
): void {
  let errorSquared = 0;
  let normSquared = 0;
  for (const [name, expected] of reference) {
    if (skip.has(name)) continue;
    const grad = grads.get(name);
    assert.ok(grad !== undefined, `gradient of ${name} is missing`);
    const actual = torchLayout(name, grad);
    assert.equal(actual.length, expected.data.length, `${name}: gradient size`);
    for (let i = 0; i < actual.length; i++) {
      errorSquared += (actual[i] - expected.data[i]) ** 2;
      normSquared += expected.data[i] ** 2;
    }
  }
  const relative = Math.sqrt(errorSquared / normSquared);
  assert.ok(relative <= 2e-3, `gradient subset: relative L2 error ${relative} > 2e-3`);
}

/** Differences of the update Δ = w1 − w0 between ours and the reference. */
export interface DeltaReport {
  globalRelative: number;
  worstTensor: string;
  worstRelative: number;
}

/**
 * Checks the update Δ = w1 − w0 of every parameter against the full reference
 * state_dict after the step: global ‖ΔΔ‖₂ / ‖Δ‖₂ <= 2e-3 and per tensor
 * max|ΔΔ| / max|Δ| <= 3e-2. Tensors in `zeroGradient` (exact gradient 0) only
 * need |Δ| <= 1e-6. Tensors the reference leaves unchanged must stay unchanged.
 */
export function assertDeltas(
  initial: StateDict,
  after: StateDict,
  referenceAfter: Map<string, GoldenTensor>,
  zeroGradient: ReadonlySet<string>,
): DeltaReport {
  let errorSquared = 0;
  let normSquared = 0;
  const report: DeltaReport = { globalRelative: 0, worstTensor: "", worstRelative: 0 };
  for (const [name, reference] of referenceAfter) {
    if (reference.kind !== "parameter") continue;
    const w0 = initial.get(name)!.data;
    const w1 = after.get(name)!.data;
    let maxDelta = 0;
    let maxError = 0;
    for (let i = 0; i < w0.length; i++) {
      const expected = reference.data[i] - w0[i];
      const actual = w1[i] - w0[i];
      maxDelta = Math.max(maxDelta, Math.abs(expected));
      maxError = Math.max(maxError, Math.abs(actual - expected));
      if (!zeroGradient.has(name)) {
        errorSquared += (actual - expected) ** 2;
        normSquared += expected ** 2;
      }
    }
    if (zeroGradient.has(name)) {
      assert.ok(maxError <= 1e-6, `${name}: zero-gradient tensor moved by ${maxError}`);
    } else if (maxDelta === 0) {
      assert.equal(maxError, 0, `${name}: the reference leaves it unchanged, ours moved by ${maxError}`);
    } else {
      const relative = maxError / maxDelta;
      assert.ok(relative <= 3e-2, `${name}: max|ΔΔ| / max|Δ| = ${relative} > 3e-2`);
      if (relative > report.worstRelative) Object.assign(report, { worstTensor: name, worstRelative: relative });
    }
  }
  report.globalRelative = Math.sqrt(errorSquared / normSquared);
  assert.ok(report.globalRelative <= 2e-3, `update Δ: ‖ΔΔ‖ / ‖Δ‖ = ${report.globalRelative} > 2e-3`);
  return report;
}

/**
 * Checks EMA shadows: against the reference (<= 2e-7 abs) and, because EMA − w0
 * is only 0.001 · Δ, also EMA − w0 against 0.001 · (w1 − w0) of our own step.
 */
export function assertEma(
  shadow: (name: string) => Float32Array,
  initial: StateDict,
  after: StateDict,
  referenceEma: Map<string, GoldenTensor>,
  decay = 0.999,
): void {
  for (const [name, reference] of referenceEma) {
    const ema = shadow(name);
    assertClose(ema, reference.data, 2e-7, `EMA ${name}`);
    const w0 = initial.get(name)!.data;
    const w1 = after.get(name)!.data;
    const expected = Float64Array.from(w0, (value, i) => (1 - decay) * (w1[i] - value));
    const actual = Float64Array.from(w0, (value, i) => ema[i] - value);
    // float32 rounding of the shadow (|w| < 0.5, ulp 3e-8) bounds the agreement.
    assertClose(actual, expected, 1e-7, `EMA − w0 of ${name} vs 0.001 · Δ`);
  }
}

/** Per-tensor statistics of the reference step (`per_tensor` in the manifests). */
export interface TensorStats {
  after: { sum: number; sum_sq: number; max_abs: number };
  delta: { sum: number; sum_sq: number; max_abs: number };
  ema?: { sum: number; sum_sq: number; max_abs: number };
}

/**
 * Checks every parameter's update against the reference statistics where only
 * those exist: max|Δ| and ‖Δ‖₂ per tensor within 3e-2 relative, and ‖Δ‖₂ over
 * all parameters within 2e-3 relative (implied by the README's ‖ΔΔ‖ / ‖Δ‖ bound).
 */
export function assertDeltaStats(
  initial: StateDict,
  after: StateDict,
  parameterNames: Iterable<string>,
  perTensor: Record<string, TensorStats>,
  zeroGradient: ReadonlySet<string>,
): void {
  let ours = 0;
  let reference = 0;
  for (const name of parameterNames) {
    const stats = perTensor[name];
    assert.ok(stats !== undefined, `no reference statistics for ${name}`);
    const w0 = initial.get(name)!.data;
    const w1 = after.get(name)!.data;
    let maxDelta = 0;
    let sumSquares = 0;
    for (let i = 0; i < w0.length; i++) {
      const delta = w1[i] - w0[i];
      maxDelta = Math.max(maxDelta, Math.abs(delta));
      sumSquares += delta * delta;
    }
    if (zeroGradient.has(name)) {
      assert.ok(maxDelta <= 1e-6, `${name}: zero-gradient tensor moved by ${maxDelta}`);
      continue;
    }
    ours += sumSquares;
    reference += stats.delta.sum_sq;
    if (stats.delta.max_abs === 0) {
      assert.equal(maxDelta, 0, `${name}: the reference leaves it unchanged, ours moved by ${maxDelta}`);
      continue;
    }
    const maxError = Math.abs(maxDelta - stats.delta.max_abs) / stats.delta.max_abs;
    const normError = Math.abs(Math.sqrt(sumSquares / stats.delta.sum_sq) - 1);
    assert.ok(maxError <= 3e-2, `${name}: max|Δ| ${maxDelta} vs ${stats.delta.max_abs}`);
    assert.ok(normError <= 3e-2, `${name}: ‖Δ‖ ${Math.sqrt(sumSquares)} vs ${Math.sqrt(stats.delta.sum_sq)}`);
  }
  const globalError = Math.abs(Math.sqrt(ours / reference) - 1);
  assert.ok(globalError <= 2e-3, `‖Δ‖ over all parameters differs by ${globalError} relative`);
}

/**
 * Runs one golden FixMatch step (threshold variant `tag` of the fixmatch_step
 * case) from the golden initial weights and checks everything the reference
 * stores for it. Returns the step's wall time in seconds and the update-Δ errors.
 */
export async function checkFixmatchVariant(
  tag: "p0" | "p0_95" | "p0_196",
): Promise<{ seconds: number; deltas: DeltaReport }> {
  const CASE = "fixmatch_step";
  const manifest = readManifest(CASE);
  const variant = manifest.variants[tag];
  const zeroGradient = new Set<string>(manifest.zero_gradient_tensors.names);
  const { model, initial } = goldenModel();
  const sgd = new SGD({ weightDecayNames: model.weightDecayNames });
  const ema = new ExponentialMovingAverage(model.parameters, 0.999);
  const lr = cosineLearningRate(manifest.settings.iteration, manifest.settings.num_train_iter);
  assert.equal(lr, manifest.settings.lr_for_this_step);

  const started = performance.now();
  const result = await fixmatchStep(model, {
    labeled: readArray(CASE, "x_lb_uint8") as Uint8Array,
    labels: Int32Array.from(readArray(CASE, "y_lb")),
    weak: readArray(CASE, "x_ulb_w_uint8") as Uint8Array,
    strong: readArray(CASE, "x_ulb_s_uint8") as Uint8Array,
  }, { threshold: variant.p_cutoff, lambdaU: 1 });
  const seconds = (performance.now() - started) / 1000;

  try {
    assertLosses(result.losses, variant);
    assert.deepEqual([...result.mask], variant.mask_per_sample, "mask");
    assert.deepEqual([...result.pseudoLabels], variant.pseudo_labels, "pseudo-labels");
    assert.equal(result.acceptedRate, variant.mask_mean, "accepted rate");
    assert.equal(result.microBatches, 1);
    assertClose(result.confidence, variant.weak_max_prob, 1e-6, "weak-view confidence");
    assertClose(result.logits.dataSync(), readArray(CASE, `logits_${tag}`), 1e-5, "logits");
    assertGradients(result.grads, readPack(CASE, `grad_subset_${tag}`), zeroGradient);
    for (const name of ["block2.layer.0.bn1.weight", "block3.layer.0.bn1.bias"]) {
      assert.ok(!result.grads.has(name), `${name} is not used by the forward pass and gets no gradient`);
    }
  } catch (error) {
    disposeStepResult(result);
    throw error;
  }
  applyUpdate(model, sgd, ema, result, lr);

  const after = model.stateDict();
  let deltas: DeltaReport;
  const shadow = (name: string) => {
    const tensor = ema.shadow(name);
    const values = torchLayout(name, tensor);
    tensor.dispose();
    return values;
  };
  if (tag === "p0") {
    const referenceAfter = readPack(CASE, "weights_after_step_p0");
    for (const [name, reference] of referenceAfter) {
      const tolerance = reference.kind === "buffer" ? 1e-6 : 5e-5;
      assertClose(after.get(name)!.data, reference.data, tolerance, `${name} after the step`);
    }
    deltas = assertDeltas(initial, after, referenceAfter, zeroGradient);
    assertEma(shadow, initial, after, readPack(CASE, "ema_after_step_p0"));
  } else {
    const subset = readPack(CASE, `subset_after_step_${tag}`);
    const referenceAfter = new Map<string, GoldenTensor>();
    const referenceEma = new Map<string, GoldenTensor>();
    for (const [key, tensor] of subset) {
      const [what, name] = key.split(":");
      if (what === "after step") referenceAfter.set(name, { ...tensor, kind: "parameter" });
      else referenceEma.set(name, tensor);
    }
    for (const [name, reference] of referenceAfter) {
      assertClose(after.get(name)!.data, reference.data, 5e-5, `${name} after the step`);
    }
    deltas = assertDeltas(initial, after, referenceAfter, zeroGradient);
    assertEma(shadow, initial, after, referenceEma);
    assertDeltaStats(initial, after, model.parameters.keys(), variant.per_tensor, zeroGradient);
  }
  sgd.dispose();
  ema.dispose();
  model.dispose();
  return { seconds, deltas };
}
