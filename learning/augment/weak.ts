/**
 * Weak augmentation of FixMatch and MixMatch (TorchSSL's train transform):
 * a horizontal flip with probability 0.5, then torchvision's
 * `RandomCrop(32, padding=4, padding_mode="reflect")`, on uint8 HWC RGB images.
 *
 * The deterministic pieces ({@linkcode hflip}, {@linkcode padReflect},
 * {@linkcode crop}) mirror torchvision's functional `hflip`, `pad` and
 * `crop`; {@linkcode weakAugment} fuses them into one pass.
 *
 * @example
 * ```ts
 * const rng = Random.derive(0, "weak", 0);
 * const { image, flipped, top, left } = weakAugment(cifarImage, rng);
 * ```
 * @module
 */

import type { Random } from "../random.ts";
import { checkImage } from "./_pil.ts";

/** Settings of the weak augmentation. */
export interface WeakAugmentOptions {
  /** Image width in pixels (default 32). */
  width?: number;
  /** Image height in pixels (default 32). */
  height?: number;
  /** Reflect padding on each side before the crop, in pixels (default 4 = int(32 · 0.125), as TorchSSL). */
  padding?: number;
  /** Probability of the horizontal flip (default 0.5). */
  flipProbability?: number;
}

/** Record of one weak augmentation: flip and crop offsets. */
export interface WeakAugmentRecord {
  /** Whether the image was mirrored left to right. */
  flipped: boolean;
  /** Crop offset in the padded image: row of the first output row. */
  top: number;
  /** Crop offset in the padded image: column of the first output column. */
  left: number;
}

/**
 * Mirrors an image left to right (torchvision `hflip`).
 *
 * @example
 * ```ts
 * const mirrored = hflip(image, 32, 32);
 * ```
 */
export function hflip(image: Uint8Array, width: number, height: number): Uint8Array {
  checkImage(image, width, height);
  const out = new Uint8Array(image.length);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const source = (row + width - 1 - x) * 3;
      const target = (row + x) * 3;
      out[target] = image[source];
      out[target + 1] = image[source + 1];
      out[target + 2] = image[source + 2];
    }
  }
  return out;
}

/** Reflects index i into 0..n-1 without repeating the edge (NumPy/PyTorch "reflect"). */
function reflect(i: number, n: number): number {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

function checkPadding(padding: number, width: number, height: number): void {
  if (!Number.isInteger(padding) || padding < 0 || padding >= width || padding >= height) {
    throw new RangeError(
      `reflect padding must be an integer in [0, min(width, height) - 1] = [0, ${
        Math.min(width, height) - 1
      }], got ${padding}`,
    );
  }
}

/**
 * Pads every side by `padding` pixels, reflecting without repeating the edge
 * pixel (torchvision `pad(img, padding, padding_mode="reflect")`). The result
 * is (height + 2·padding) × (width + 2·padding) × 3.
 *
 * @example
 * ```ts
 * const padded = padReflect(image, 32, 32, 4); // 40×40×3
 * ```
 */
export function padReflect(image: Uint8Array, width: number, height: number, padding: number): Uint8Array {
  checkImage(image, width, height);
  checkPadding(padding, width, height);
  const paddedWidth = width + 2 * padding;
  const paddedHeight = height + 2 * padding;
  const out = new Uint8Array(paddedWidth * paddedHeight * 3);
  for (let y = 0; y < paddedHeight; y++) {
    const sourceRow = reflect(y - padding, height) * width;
    for (let x = 0; x < paddedWidth; x++) {
      const source = (sourceRow + reflect(x - padding, width)) * 3;
      const target = (y * paddedWidth + x) * 3;
      out[target] = image[source];
      out[target + 1] = image[source + 1];
      out[target + 2] = image[source + 2];
    }
  }
  return out;
}

/**
 * Cuts the `cropHeight` × `cropWidth` window whose top-left pixel is (top,
 * left) out of a `height` × `width` image (torchvision `crop`, window inside
 * the image).
 *
 * @example
 * ```ts
 * const view = crop(padReflect(image, 32, 32, 4), 40, 40, 6, 2, 32, 32);
 * ```
 */
export function crop(
  image: Uint8Array,
  width: number,
  height: number,
  top: number,
  left: number,
  cropWidth: number,
  cropHeight: number,
): Uint8Array {
  checkImage(image, width, height);
  const inside = Number.isInteger(top) && Number.isInteger(left) && Number.isInteger(cropWidth) &&
    Number.isInteger(cropHeight) && top >= 0 && left >= 0 && cropWidth > 0 && cropHeight > 0 &&
    top + cropHeight <= height && left + cropWidth <= width;
  if (!inside) {
    throw new RangeError(
      `crop window ${cropWidth}x${cropHeight} at (top ${top}, left ${left}) must lie inside the ${width}x${height} image`,
    );
  }
  const out = new Uint8Array(cropWidth * cropHeight * 3);
  for (let y = 0; y < cropHeight; y++) {
    const start = ((top + y) * width + left) * 3;
    out.set(image.subarray(start, start + cropWidth * 3), y * cropWidth * 3);
  }
  return out;
}

/**
 * Applies a given flip and crop offset in one pass: equal to
 * `crop(padReflect(flipped ? hflip(image) : image), top, left)` with an
 * output the size of the input.
 *
 * @example
 * ```ts
 * const view = weakView(image, 32, 32, 4, { flipped: false, top: 6, left: 2 });
 * ```
 */
export function weakView(
  image: Uint8Array,
  width: number,
  height: number,
  padding: number,
  record: WeakAugmentRecord,
): Uint8Array {
  checkImage(image, width, height);
  checkPadding(padding, width, height);
  const { flipped, top, left } = record;
  const maxOffset = 2 * padding;
  if (!Number.isInteger(top) || !Number.isInteger(left) || top < 0 || left < 0 || top > maxOffset || left > maxOffset) {
    throw new RangeError(`crop offsets must be integers in [0, ${maxOffset}], got top ${top}, left ${left}`);
  }
  const columns = new Int32Array(width);
  for (let x = 0; x < width; x++) {
    const column = reflect(x + left - padding, width);
    columns[x] = (flipped ? width - 1 - column : column) * 3;
  }
  const out = new Uint8Array(image.length);
  let target = 0;
  for (let y = 0; y < height; y++) {
    const sourceRow = reflect(y + top - padding, height) * width * 3;
    for (let x = 0; x < width; x++) {
      const source = sourceRow + columns[x];
      out[target] = image[source];
      out[target + 1] = image[source + 1];
      out[target + 2] = image[source + 2];
      target += 3;
    }
  }
  return out;
}

/**
 * Draws a weak augmentation from `rng` and applies it: flip with
 * `flipProbability` (one `bernoulli`), then crop offsets `top = int(2p + 1)`
 * and `left = int(2p + 1)` in that order, as torchvision's
 * `RandomHorizontalFlip` followed by `RandomCrop.get_params`.
 *
 * @example
 * ```ts
 * const { image: view } = weakAugment(image, Random.derive(0, "weak", 7));
 * ```
 */
export function weakAugment(
  image: Uint8Array,
  rng: Random,
  options: WeakAugmentOptions = {},
): WeakAugmentRecord & { image: Uint8Array } {
  const { width = 32, height = 32, padding = 4, flipProbability = 0.5 } = options;
  if (!(flipProbability >= 0 && flipProbability <= 1)) {
    throw new RangeError(`flipProbability must be in [0, 1], got ${flipProbability}`);
  }
  checkImage(image, width, height);
  checkPadding(padding, width, height);
  const flipped = rng.bernoulli(flipProbability);
  const top = rng.int(2 * padding + 1);
  const left = rng.int(2 * padding + 1);
  const record = { flipped, top, left };
  return { image: weakView(image, width, height, padding, record), ...record };
}
