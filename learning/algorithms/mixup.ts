/**
 * MixMatch's label sharpening and mixup, following TorchSSL's `MixMatch.train()`
 * and `mixup_one_target(..., is_bias=True)`.
 *
 * @example
 * ```ts
 * const draw = drawMixup(random, 12, 0.5);
 * const { mixedInputs, mixedTargets } = mixup(inputs, targets, draw);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Random } from "../random.ts";

/**
 * Mixup coefficients and partner permutation for one batch.
 * `lambda` is one number for the batch (TorchSSL) or one per sample.
 */
export interface MixupDraw {
  lambda: number | Float64Array;
  permutation: Int32Array;
}

/**
 * Sharpens probabilities [N, C] with temperature `temperature`: `p^(1/T) / Σ_k p_k^(1/T)`.
 *
 * @example
 * ```ts
 * sharpen(tf.tensor2d([[0.25, 0.75]]), 0.5); // [[0.1, 0.9]]
 * ```
 */
export function sharpen(probs: tf.Tensor2D, temperature: number): tf.Tensor2D {
  if (!(temperature > 0)) {
    throw new RangeError(`sharpen: temperature must be > 0, got ${temperature}; MixMatch uses 0.5`);
  }
  return tf.tidy(() => {
    const powered = tf.pow(probs, tf.scalar(1 / temperature));
    return tf.div(powered, tf.sum(powered, 1, true)) as tf.Tensor2D;
  });
}

/**
 * Draws one mixup coefficient: `λ ~ Beta(α, α)`, then `max(λ, 1 − λ)` so each mixed
 * sample stays closer to its own input. Returns 1 (no mixing) when `alpha <= 0`.
 *
 * @example
 * ```ts
 * const lambda = drawMixupLambda(new Random(0), 0.5); // in [0.5, 1]
 * ```
 */
export function drawMixupLambda(random: Random, alpha: number): number {
  if (!(alpha > 0)) return 1;
  const lambda = random.beta(alpha, alpha);
  return Math.max(lambda, 1 - lambda);
}

/**
 * Draws the mixup coefficients and partner permutation for a batch of `size` samples:
 * first λ (one per batch, or one per sample with `perSample`), then the permutation.
 *
 * @example
 * ```ts
 * const draw = drawMixup(Random.derive(0, "mixup", step), 12, 0.5);
 * ```
 */
export function drawMixup(random: Random, size: number, alpha: number, perSample = false): MixupDraw {
  let lambda: number | Float64Array;
  if (perSample) {
    lambda = new Float64Array(size);
    for (let i = 0; i < size; i++) lambda[i] = drawMixupLambda(random, alpha);
  } else {
    lambda = drawMixupLambda(random, alpha);
  }
  return { lambda, permutation: random.permutation(size) };
}

/**
 * Mixes `inputs` [N, ...] and `targets` [N, C] with their permuted copies:
 * `λ · x + (1 − λ) · x[permutation]`, the same for targets.
 *
 * λ and 1 − λ are computed in double and rounded to float32, as PyTorch does with
 * Python scalars.
 *
 * @example
 * ```ts
 * const { mixedInputs, mixedTargets } = mixup(inputs, targets, { lambda: 0.6859, permutation });
 * ```
 */
export function mixup<T extends tf.Tensor>(
  inputs: T,
  targets: tf.Tensor2D,
  draw: MixupDraw,
): { mixedInputs: T; mixedTargets: tf.Tensor2D } {
  const size = inputs.shape[0];
  checkDraw(draw, size);
  if (targets.shape[0] !== size) {
    throw new Error(`mixup: inputs have ${size} rows but targets have ${targets.shape[0]}`);
  }
  return tf.tidy(() => {
    const order = tf.tensor1d(draw.permutation, "int32");
    const mix = (x: tf.Tensor): tf.Tensor => {
      const [lambda, complement] = mixupCoefficients(draw.lambda, x.rank);
      return tf.add(tf.mul(lambda, x), tf.mul(complement, tf.gather(x, order)));
    };
    return { mixedInputs: mix(inputs) as T, mixedTargets: mix(targets) as tf.Tensor2D };
  });
}

function mixupCoefficients(lambda: number | Float64Array, rank: number): [tf.Tensor, tf.Tensor] {
  if (typeof lambda === "number") return [tf.scalar(lambda), tf.scalar(1 - lambda)];
  const shape = [lambda.length, ...new Array<number>(rank - 1).fill(1)];
  const complement = lambda.map((value) => 1 - value);
  return [tf.tensor(Float32Array.from(lambda), shape), tf.tensor(Float32Array.from(complement), shape)];
}

function checkDraw(draw: MixupDraw, size: number): void {
  const { lambda, permutation } = draw;
  if (permutation.length !== size) {
    throw new Error(`mixup: permutation has ${permutation.length} entries for a batch of ${size}`);
  }
  const seen = new Uint8Array(size);
  for (const index of permutation) {
    if (!(index >= 0 && index < size) || seen[index]) {
      throw new Error(`mixup: [${permutation}] is not a permutation of 0..${size - 1}`);
    }
    seen[index] = 1;
  }
  const values = typeof lambda === "number" ? [lambda] : lambda;
  if (typeof lambda !== "number" && lambda.length !== size) {
    throw new Error(`mixup: ${lambda.length} per-sample lambdas for a batch of ${size}`);
  }
  for (const value of values) {
    if (!(value >= 0 && value <= 1)) throw new RangeError(`mixup: lambda must be in [0, 1], got ${value}`);
  }
}
