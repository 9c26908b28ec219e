/**
 * CIFAR-10 input normalisation as TorchSSL does it (torchvision `ToTensor`
 * followed by `Normalize(mean, std)`), reproduced bit for bit in float32.
 *
 * @example
 * ```ts
 * import { normalizeImages } from "./normalize.ts";
 *
 * const images = new Uint8Array(4 * 32 * 32 * 3); // 4 NHWC RGB images
 * const x = normalizeImages(images, 4); // float32 [4, 32, 32, 3]
 * x.dispose();
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** TorchSSL's CIFAR-10 channel means (125.3, 123.0, 113.9) / 255, rounded to float32 as PyTorch stores them. */
export const CIFAR10_MEAN: readonly [number, number, number] = [
  Math.fround(125.3 / 255),
  Math.fround(123.0 / 255),
  Math.fround(113.9 / 255),
];

/** TorchSSL's CIFAR-10 channel standard deviations (63.0, 62.1, 66.7) / 255, rounded to float32. */
export const CIFAR10_STD: readonly [number, number, number] = [
  Math.fround(63.0 / 255),
  Math.fround(62.1 / 255),
  Math.fround(66.7 / 255),
];

/**
 * Normalises uint8 NHWC RGB images into a float32 tensor [count, height, width, 3].
 *
 * Each value is `fround(fround(fround(u / 255) - mean) / std)` with the float32
 * constants above, which is what PyTorch computes in float32. JavaScript does
 * each operation in double and `Math.fround` rounds it once. For a single
 * division or subtraction of float32 operands, that equals the correctly
 * rounded float32 result.
 *
 * @example
 * ```ts
 * const x = normalizeImages(new Uint8Array(32 * 32 * 3).fill(255), 1);
 * ```
 */
export function normalizeImages(images: Uint8Array, count: number, height = 32, width = 32): tf.Tensor4D {
  for (const [label, value] of [["count", count], ["height", height], ["width", width]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`normalizeImages: ${label} must be a positive integer, got ${value}`);
    }
  }
  const expected = count * height * width * 3;
  if (images.length !== expected) {
    throw new RangeError(
      `normalizeImages: expected ${expected} bytes for ${count} NHWC RGB images of ${height}x${width}, got ${images.length}`,
    );
  }

  const lookup = [0, 1, 2].map((channel) => {
    const table = new Float32Array(256);
    for (let u = 0; u < 256; u++) {
      table[u] = Math.fround(Math.fround(Math.fround(u / 255) - CIFAR10_MEAN[channel]) / CIFAR10_STD[channel]);
    }
    return table;
  });
  const values = new Float32Array(expected);
  for (let i = 0; i < expected; i += 3) {
    values[i] = lookup[0][images[i]];
    values[i + 1] = lookup[1][images[i + 1]];
    values[i + 2] = lookup[2][images[i + 2]];
  }
  return tf.tensor4d(values, [count, height, width, 3], "float32");
}
