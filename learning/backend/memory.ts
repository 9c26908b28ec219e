/**
 * Leak checks for TensorFlow.js code: tensors the engine tracks and data
 * buffers the active backend holds.
 *
 * A kernel that does not free an intermediate leaks a backend buffer but no
 * tensor, so both counts are compared.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { assertNoTensorLeak } from "./memory.ts";
 *
 * const x = tf.ones([4, 4]);
 * await assertNoTensorLeak(() => tf.matMul(x, x), 20); // returned tensors are disposed
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** Tensors known to the engine and data buffers held by the active backend. */
export interface TensorCounts {
  /** `tf.memory().numTensors`. */
  numTensors: number;
  /** `tf.engine().backend.numDataIds()`: buffers, including kernel-internal ones. */
  numDataIds: number;
}

/**
 * Returns the current tensor and backend buffer counts.
 *
 * @example
 * ```ts
 * const before = countTensors();
 * tf.tidy(() => tf.ones([2]).add(1));
 * console.log(countTensors().numTensors === before.numTensors); // true
 * ```
 */
export function countTensors(): TensorCounts {
  return {
    numTensors: tf.memory().numTensors,
    numDataIds: tf.engine().backend.numDataIds(),
  };
}

/**
 * Calls `fn` once to warm up, then `iterations` more times, and throws when
 * the tensor or backend buffer count grew. Tensors that `fn` returns (any
 * `tf.TensorContainer`) are disposed after each call.
 *
 * @example
 * ```ts
 * const w = tf.variable(tf.ones([3, 3, 1, 1]));
 * const x = tf.ones([1, 5, 5, 1]) as tf.Tensor4D;
 * await assertNoTensorLeak(() => tf.grads((w: tf.Tensor) => tf.conv2d(x, w as tf.Tensor4D, 1, "same").sum())([w]), 10);
 * ```
 */
export async function assertNoTensorLeak(
  fn: () => tf.TensorContainer | Promise<tf.TensorContainer>,
  iterations: number,
): Promise<void> {
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new Error(`assertNoTensorLeak: iterations must be a positive integer, got ${iterations}.`);
  }
  tf.dispose(await fn());
  const before = countTensors();
  for (let i = 0; i < iterations; i++) {
    tf.dispose(await fn());
  }
  const after = countTensors();
  if (after.numTensors !== before.numTensors || after.numDataIds !== before.numDataIds) {
    throw new Error(
      `Tensor leak over ${iterations} calls on backend '${tf.getBackend()}': ` +
        `numTensors ${before.numTensors} -> ${after.numTensors}, ` +
        `numDataIds ${before.numDataIds} -> ${after.numDataIds}. ` +
        `Wrap the code in tf.tidy or dispose its intermediate tensors.`,
    );
  }
}
