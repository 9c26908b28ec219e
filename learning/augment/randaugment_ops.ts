/**
 * TorchSSL's RandAugment operations (`datasets/augmentation/randaugment.py`)
 * on uint8 HWC RGB images, matching PIL 9.4 pixel for pixel.
 *
 * Every operation is a pure function `(image, width, height, value)` that
 * returns a new image and leaves its input unchanged. {@linkcode RANDAUGMENT_OPS}
 * lists them in TorchSSL's `augment_list()` order with their value ranges.
 *
 * @example
 * ```ts
 * const turned = rotate(image, 32, 32, 15); // 15 degrees counter-clockwise
 * const darker = brightness(image, 32, 32, 0.5);
 * ```
 * @module
 */

import {
  affineNearest,
  applyChannelTables,
  applyTable,
  blend,
  blendConstant,
  checkImage,
  fillRectangle,
  greyRgb,
  histogram,
  luminance,
  rotateQuarterTurns,
  smooth,
} from "./_pil.ts";

/** A RandAugment operation: `(image, width, height, value) -> new image`. */
export type ImageOp = (image: Uint8Array, width: number, height: number, value: number) => Uint8Array;

/** Names of the operations in TorchSSL's `augment_list()`. */
export type RandAugmentOpName =
  | "AutoContrast"
  | "Brightness"
  | "Color"
  | "Contrast"
  | "Equalize"
  | "Identity"
  | "Posterize"
  | "Rotate"
  | "Sharpness"
  | "ShearX"
  | "ShearY"
  | "Solarize"
  | "TranslateX"
  | "TranslateY";

/** One entry of the RandAugment operation list: the value is drawn uniformly from [min, max). */
export interface RandAugmentOp {
  name: RandAugmentOpName;
  min: number;
  max: number;
  apply: ImageOp;
}

/** Cutout fill colour (TorchSSL's `CutoutAbs`). */
export const CUTOUT_FILL: readonly [number, number, number] = [125, 123, 114];

/**
 * Stretches each channel so its minimum maps to 0 and its maximum to 255
 * (`ImageOps.autocontrast(img)`, cutoff 0). The value is ignored.
 *
 * @example
 * ```ts
 * const stretched = autoContrast(image, 32, 32, 0);
 * ```
 */
export function autoContrast(image: Uint8Array, width: number, height: number, _value: number): Uint8Array {
  checkImage(image, width, height);
  const counts = histogram(image);
  const tables = new Int32Array(768);
  for (let channel = 0; channel < 3; channel++) {
    const base = channel * 256;
    let lo = 0;
    while (lo < 255 && counts[base + lo] === 0) lo++;
    let hi = 255;
    while (hi > 0 && counts[base + hi] === 0) hi--;
    if (hi <= lo) {
      for (let i = 0; i < 256; i++) tables[base + i] = i;
      continue;
    }
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    for (let i = 0; i < 256; i++) {
      tables[base + i] = Math.min(255, Math.max(0, Math.trunc(i * scale + offset)));
    }
  }
  return applyChannelTables(image, tables);
}

/**
 * Blends towards black: `ImageEnhance.Brightness(img).enhance(value)`.
 *
 * @example
 * ```ts
 * const darker = brightness(image, 32, 32, 0.3);
 * ```
 */
export function brightness(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  return blendConstant(0, image, value);
}

/**
 * Blends towards the grey image: `ImageEnhance.Color(img).enhance(value)`.
 *
 * @example
 * ```ts
 * const washedOut = color(image, 32, 32, 0.3);
 * ```
 */
export function color(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  return blend(greyRgb(image), image, value);
}

/**
 * Blends towards the mean grey level: `ImageEnhance.Contrast(img).enhance(value)`,
 * where the mean is `int(mean(L) + 0.5)` over all pixels.
 *
 * @example
 * ```ts
 * const flat = contrast(image, 32, 32, 0.3);
 * ```
 */
export function contrast(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  let sum = 0;
  for (let i = 0; i < image.length; i += 3) sum += luminance(image[i], image[i + 1], image[i + 2]);
  const mean = Math.trunc(sum / (width * height) + 0.5);
  return blendConstant(mean, image, value);
}

/**
 * Equalizes each channel's histogram (`ImageOps.equalize(img)`). The value is ignored.
 *
 * @example
 * ```ts
 * const equalized = equalize(image, 32, 32, 0);
 * ```
 */
export function equalize(image: Uint8Array, width: number, height: number, _value: number): Uint8Array {
  checkImage(image, width, height);
  const counts = histogram(image);
  const tables = new Int32Array(768);
  for (let channel = 0; channel < 3; channel++) {
    const base = channel * 256;
    let total = 0;
    let distinct = 0;
    let lastNonzero = 0;
    for (let i = 0; i < 256; i++) {
      const count = counts[base + i];
      if (count === 0) continue;
      total += count;
      distinct++;
      lastNonzero = count;
    }
    const step = distinct <= 1 ? 0 : Math.floor((total - lastNonzero) / 255);
    if (step === 0) {
      for (let i = 0; i < 256; i++) tables[base + i] = i;
      continue;
    }
    // Entries can reach 256; applyChannelTables clamps them to 255 as PIL does.
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      tables[base + i] = Math.floor(n / step);
      n += counts[base + i];
    }
  }
  return applyChannelTables(image, tables);
}

/**
 * Returns an unchanged copy. The value is ignored.
 *
 * @example
 * ```ts
 * const same = identity(image, 32, 32, 0);
 * ```
 */
export function identity(image: Uint8Array, width: number, height: number, _value: number): Uint8Array {
  checkImage(image, width, height);
  return image.slice();
}

/**
 * Keeps the top `max(1, int(value))` bits of each channel (`ImageOps.posterize`).
 * Values in [8, 9) keep all bits; 9 and above are invalid, as in PIL.
 *
 * @example
 * ```ts
 * const coarse = posterize(image, 32, 32, 4.7); // 4 bits
 * ```
 */
export function posterize(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  const bits = Math.max(1, Math.trunc(value));
  if (bits > 8) {
    throw new RangeError(`posterize value must give at most 8 bits (value < 9), got ${value}`);
  }
  const mask = ~((1 << (8 - bits)) - 1) & 255;
  const table = new Uint8Array(256);
  for (let i = 0; i < 256; i++) table[i] = i & mask;
  return applyTable(image, table);
}

/** Python's float `%`: the result has the sign of the divisor. */
function pythonModulo(value: number, divisor: number): number {
  let remainder = value % divisor;
  if (remainder === 0) return 0;
  if ((divisor < 0) !== (remainder < 0)) remainder += divisor;
  return remainder;
}

/** Python's `round(value, 15)`. */
function round15(value: number): number {
  return Number(value.toFixed(15));
}

/**
 * Returns the inverse affine matrix `img.rotate(degrees)` passes to
 * `Image.transform` (PIL 9.4: cos/sin rounded to 15 decimals, centre
 * (width / 2, height / 2) fixed).
 *
 * @example
 * ```ts
 * const [a, b, c, d, e, f] = rotationMatrix(32, 32, 30);
 * ```
 */
export function rotationMatrix(
  width: number,
  height: number,
  degrees: number,
): [number, number, number, number, number, number] {
  const angle = -(pythonModulo(degrees, 360) * (Math.PI / 180));
  const cos = round15(Math.cos(angle));
  const sin = round15(Math.sin(angle));
  const matrix: [number, number, number, number, number, number] = [cos, sin, 0, round15(-Math.sin(angle)), cos, 0];
  const centreX = width / 2;
  const centreY = height / 2;
  const [a, b, c, d, e, f] = matrix;
  matrix[2] = a * -centreX + b * -centreY + c + centreX;
  matrix[5] = d * -centreX + e * -centreY + f + centreY;
  return matrix;
}

/**
 * Rotates counter-clockwise by `value` degrees about the image centre
 * (`img.rotate(value)`: NEAREST, no expand, black fill).
 *
 * @example
 * ```ts
 * const turned = rotate(image, 32, 32, -20);
 * ```
 */
export function rotate(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  const angle = pythonModulo(value, 360);
  if (angle === 0) return image.slice();
  if (angle === 180) return rotateQuarterTurns(image, width, height, 2);
  if ((angle === 90 || angle === 270) && width === height) {
    return rotateQuarterTurns(image, width, height, angle === 90 ? 1 : 3);
  }
  return affineNearest(image, width, height, rotationMatrix(width, height, value));
}

/**
 * Blends towards the SMOOTH-filtered image: `ImageEnhance.Sharpness(img).enhance(value)`.
 *
 * @example
 * ```ts
 * const softer = sharpness(image, 32, 32, 0.2);
 * ```
 */
export function sharpness(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  return blend(smooth(image, width, height), image, value);
}

/**
 * Shears along x: output (x, y) samples input (x + value · y, y), NEAREST, black fill.
 *
 * @example
 * ```ts
 * const sheared = shearX(image, 32, 32, 0.2);
 * ```
 */
export function shearX(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  return affineNearest(image, width, height, [1, value, 0, 0, 1, 0]);
}

/**
 * Shears along y: output (x, y) samples input (x, value · x + y), NEAREST, black fill.
 *
 * @example
 * ```ts
 * const sheared = shearY(image, 32, 32, -0.2);
 * ```
 */
export function shearY(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  return affineNearest(image, width, height, [1, 0, 0, value, 1, 0]);
}

/**
 * Inverts every channel value at or above `value` (`ImageOps.solarize(img, value)`).
 *
 * @example
 * ```ts
 * const solarized = solarize(image, 32, 32, 128);
 * ```
 */
export function solarize(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  const table = new Uint8Array(256);
  for (let i = 0; i < 256; i++) table[i] = i < value ? i : 255 - i;
  return applyTable(image, table);
}

/**
 * Shifts by `value · width` pixels (possibly fractional): output (x, y)
 * samples input (x + value · width, y), NEAREST, black fill.
 *
 * @example
 * ```ts
 * const shifted = translateX(image, 32, 32, 0.25); // content moves 8 pixels left
 * ```
 */
export function translateX(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  return affineNearest(image, width, height, [1, 0, value * width, 0, 1, 0]);
}

/**
 * Shifts by `value · height` pixels: output (x, y) samples input (x, y + value · height).
 *
 * @example
 * ```ts
 * const shifted = translateY(image, 32, 32, -0.25); // content moves 8 pixels down
 * ```
 */
export function translateY(image: Uint8Array, width: number, height: number, value: number): Uint8Array {
  checkImage(image, width, height);
  return affineNearest(image, width, height, [1, 0, 0, 0, 1, value * height]);
}

/** Box and filled pixels of one Cutout. */
export interface CutoutBox {
  /** First filled column. */
  left: number;
  /** First filled row. */
  top: number;
  /** Last filled column (inclusive). */
  right: number;
  /** Last filled row (inclusive). */
  bottom: number;
}

/**
 * Returns the pixels TorchSSL's `CutoutAbs(img, size)` fills for a centre
 * (x, y): `x0 = int(max(0, x − size/2))`, `x1 = min(width, x0 + size)`,
 * and PIL fills columns x0..int(x1) inclusive, clipped to the image (rows
 * likewise). A box of size 16 therefore covers 17×17 pixels unless clipped.
 * Returns null when `size` is negative (TorchSSL returns the image unchanged).
 *
 * @example
 * ```ts
 * cutoutBox(32, 32, 16, 16, 16); // { left: 8, top: 8, right: 24, bottom: 24 }
 * ```
 */
export function cutoutBox(
  width: number,
  height: number,
  size: number,
  centreX: number,
  centreY: number,
): CutoutBox | null {
  if (size < 0) return null;
  const x0 = Math.trunc(Math.max(0, centreX - size / 2));
  const y0 = Math.trunc(Math.max(0, centreY - size / 2));
  const x1 = Math.min(width, x0 + size);
  const y1 = Math.min(height, y0 + size);
  return {
    left: x0,
    top: y0,
    right: Math.min(Math.trunc(x1), width - 1),
    bottom: Math.min(Math.trunc(y1), height - 1),
  };
}

/**
 * Fills a square of side `size` pixels around (centreX, centreY) with
 * (125, 123, 114), as TorchSSL's `CutoutAbs` (see {@linkcode cutoutBox}).
 *
 * @example
 * ```ts
 * const masked = cutoutAbs(image, 32, 32, 16, 18, 14);
 * ```
 */
export function cutoutAbs(
  image: Uint8Array,
  width: number,
  height: number,
  size: number,
  centreX: number,
  centreY: number,
): Uint8Array {
  checkImage(image, width, height);
  if (size < 0) return image.slice();
  const x0 = Math.trunc(Math.max(0, centreX - size / 2));
  const y0 = Math.trunc(Math.max(0, centreY - size / 2));
  const x1 = Math.min(width, x0 + size);
  const y1 = Math.min(height, y0 + size);
  return fillRectangle(image, width, height, [x0, y0, x1, y1], CUTOUT_FILL);
}

/**
 * TorchSSL's `Cutout(img, value)`: for value > 0, a {@linkcode cutoutAbs}
 * of side `value · width` around the given centre; value 0 returns a copy.
 * TorchSSL draws the centre as `np.random.uniform(width)`, i.e. uniform in
 * (1, width], see {@linkcode drawCutoutCentre}.
 *
 * @example
 * ```ts
 * const masked = cutout(image, 32, 32, 0.5, 16, 16); // 17×17 box at 8..24
 * ```
 */
export function cutout(
  image: Uint8Array,
  width: number,
  height: number,
  value: number,
  centreX: number,
  centreY: number,
): Uint8Array {
  if (!(value >= 0 && value <= 0.5)) {
    throw new RangeError(`cutout value must be in [0, 0.5] (a fraction of the width), got ${value}`);
  }
  checkImage(image, width, height);
  if (value <= 0) return image.slice();
  return cutoutAbs(image, width, height, value * width, centreX, centreY);
}

/**
 * Maps two uniform [0, 1) draws to a Cutout centre as TorchSSL's
 * `np.random.uniform(w)` does: that call means low = w, high = 1.0, so
 * `x = w + (1 − w) · u` lies in (1, w], not [0, w).
 *
 * @example
 * ```ts
 * drawCutoutCentre(32, 32, 0, 0); // [32, 32]
 * ```
 */
export function drawCutoutCentre(width: number, height: number, uniformX: number, uniformY: number): [number, number] {
  return [width + (1 - width) * uniformX, height + (1 - height) * uniformY];
}

/** TorchSSL's `augment_list()`: the 14 operations with their value ranges, in order. */
export const RANDAUGMENT_OPS: readonly RandAugmentOp[] = [
  { name: "AutoContrast", min: 0, max: 1, apply: autoContrast },
  { name: "Brightness", min: 0.05, max: 0.95, apply: brightness },
  { name: "Color", min: 0.05, max: 0.95, apply: color },
  { name: "Contrast", min: 0.05, max: 0.95, apply: contrast },
  { name: "Equalize", min: 0, max: 1, apply: equalize },
  { name: "Identity", min: 0, max: 1, apply: identity },
  { name: "Posterize", min: 4, max: 8, apply: posterize },
  { name: "Rotate", min: -30, max: 30, apply: rotate },
  { name: "Sharpness", min: 0.05, max: 0.95, apply: sharpness },
  { name: "ShearX", min: -0.3, max: 0.3, apply: shearX },
  { name: "ShearY", min: -0.3, max: 0.3, apply: shearY },
  { name: "Solarize", min: 0, max: 256, apply: solarize },
  { name: "TranslateX", min: -0.3, max: 0.3, apply: translateX },
  { name: "TranslateY", min: -0.3, max: 0.3, apply: translateY },
];

const OPS_BY_NAME = new Map<string, RandAugmentOp>(RANDAUGMENT_OPS.map((op) => [op.name, op]));

/**
 * Returns the operation called `name` (TorchSSL's function name, e.g. "ShearX").
 *
 * @example
 * ```ts
 * const sheared = randAugmentOp("ShearX").apply(image, 32, 32, 0.1);
 * ```
 */
export function randAugmentOp(name: string): RandAugmentOp {
  const op = OPS_BY_NAME.get(name);
  if (op === undefined) {
    throw new RangeError(
      `unknown RandAugment operation "${name}"; expected one of ${RANDAUGMENT_OPS.map((o) => o.name).join(", ")}`,
    );
  }
  return op;
}
