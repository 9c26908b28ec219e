/**
 * Eval-mode prediction of a WideResNet over a set of uint8 images, in
 * batches so memory stays bounded.
 *
 * @example
 * ```ts
 * const predicted = predictLabels(model, test.images, indices, 200);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { WideResNet } from "./nn/wide_resnet.ts";
import { normalizeImages } from "./nn/normalize.ts";

const IMAGE_BYTES = 32 * 32 * 3;

/** Gathers the uint8 images at `indices` into one contiguous array. */
export function gatherImages(images: Uint8Array, indices: ArrayLike<number>, imageBytes = IMAGE_BYTES): Uint8Array {
  const out = new Uint8Array(indices.length * imageBytes);
  for (let i = 0; i < indices.length; i++) {
    const start = indices[i] * imageBytes;
    out.set(images.subarray(start, start + imageBytes), i * imageBytes);
  }
  return out;
}

/** Returns the eval-mode argmax prediction for each image at `indices`. */
export function predictLabels(
  model: WideResNet,
  images: Uint8Array,
  indices: ArrayLike<number>,
  batchSize: number,
): Int32Array {
  const predictions = new Int32Array(indices.length);
  for (let start = 0; start < indices.length; start += batchSize) {
    const batchIndices = Array.from(
      { length: Math.min(batchSize, indices.length - start) },
      (_, i) => indices[start + i],
    );
    const batch = gatherImages(images, batchIndices);
    const predicted = tf.tidy(() => {
      const x = normalizeImages(batch, batchIndices.length);
      const { logits } = model.apply(x, false);
      return tf.argMax(logits, 1);
    });
    predictions.set(predicted.dataSync() as Int32Array, start);
    predicted.dispose();
  }
  return predictions;
}
