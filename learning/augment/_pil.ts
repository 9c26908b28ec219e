/**
 * PIL 9.4 image primitives on uint8 HWC RGB images, reproduced bit for bit:
 * float32 blends, the RGB to L conversion, point tables, the SMOOTH filter,
 * NEAREST affine transforms and filled rectangles.
 *
 * Sources: Pillow 9.4 `libImaging/Blend.c`, `Convert.c`, `Filter.c`,
 * `Geometry.c`, `Draw.c` and `ImageOps.py`.
 *
 * @module
 */

/** Throws unless `image` contains `height * width * 3` bytes and the sizes are positive integers. */
export function checkImage(image: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`image size must be positive integers, got width ${width}, height ${height}`);
  }
  if (image.length !== width * height * 3) {
    throw new RangeError(
      `image must be uint8 HWC RGB with ${width * height * 3} bytes for ${width}x${height}, got ${image.length} bytes`,
    );
  }
}

/** Returns PIL's luminance `L = (19595 R + 38470 G + 7471 B + 32768) >> 16`. */
export function luminance(red: number, green: number, blue: number): number {
  return (19595 * red + 38470 * green + 7471 * blue + 32768) >> 16;
}

/**
 * Blends like `Image.blend(a, b, factor)`: `alpha = float32(factor)` and
 * `out = trunc(float32(a + float32(alpha * (b - a))))`, clipped to 0..255
 * only when alpha is outside [0, 1] (PIL's extrapolation branch).
 */
export function blend(a: Uint8Array, b: Uint8Array, factor: number): Uint8Array {
  const alpha = Math.fround(factor);
  if (alpha === 0) return a.slice();
  if (alpha === 1) return b.slice();
  const out = new Uint8Array(b.length);
  const clip = !(alpha >= 0 && alpha <= 1);
  for (let i = 0; i < out.length; i++) {
    const value = Math.fround(a[i] + Math.fround(alpha * (b[i] - a[i])));
    out[i] = clip ? clip8(value) : value;
  }
  return out;
}

/** Blends a constant grey level `constant` (all three channels) with `b`, as {@linkcode blend}. */
export function blendConstant(constant: number, b: Uint8Array, factor: number): Uint8Array {
  const alpha = Math.fround(factor);
  if (alpha === 0) return new Uint8Array(b.length).fill(constant);
  if (alpha === 1) return b.slice();
  const clip = !(alpha >= 0 && alpha <= 1);
  const table = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    const value = Math.fround(constant + Math.fround(alpha * (v - constant)));
    table[v] = clip ? clip8(value) : value;
  }
  return applyTable(b, table);
}

/** Converts like PIL's `clip8`: 0 at or below 0, 255 at or above 255, else truncation. */
function clip8(value: number): number {
  if (value <= 0) return 0;
  if (value >= 255) return 255;
  return value;
}

/** Returns `img.convert("L").convert("RGB")`. */
export function greyRgb(image: Uint8Array): Uint8Array {
  const out = new Uint8Array(image.length);
  for (let i = 0; i < image.length; i += 3) {
    const grey = luminance(image[i], image[i + 1], image[i + 2]);
    out[i] = grey;
    out[i + 1] = grey;
    out[i + 2] = grey;
  }
  return out;
}

/** Applies one 256-entry table to every channel (PIL `point`; entries are stored as uint8). */
export function applyTable(image: Uint8Array, table: Uint8Array): Uint8Array {
  const out = new Uint8Array(image.length);
  for (let i = 0; i < image.length; i++) out[i] = table[image[i]];
  return out;
}

/**
 * Applies one 256-entry table per channel. `tables` contains 768 entries (R, G,
 * B) and may contain values outside 0..255, which are clamped as PIL does.
 */
export function applyChannelTables(image: Uint8Array, tables: ArrayLike<number>): Uint8Array {
  const clamped = new Uint8Array(768);
  for (let i = 0; i < 768; i++) clamped[i] = Math.min(255, Math.max(0, tables[i]));
  const out = new Uint8Array(image.length);
  for (let i = 0; i < image.length; i += 3) {
    out[i] = clamped[image[i]];
    out[i + 1] = clamped[256 + image[i + 1]];
    out[i + 2] = clamped[512 + image[i + 2]];
  }
  return out;
}

/** Returns the 768-bin RGB histogram (`Image.histogram()`). */
export function histogram(image: Uint8Array): Int32Array {
  const counts = new Int32Array(768);
  for (let i = 0; i < image.length; i += 3) {
    counts[image[i]]++;
    counts[256 + image[i + 1]]++;
    counts[512 + image[i + 2]]++;
  }
  return counts;
}

const KERNEL_EDGE = Math.fround(1 / 13);
const KERNEL_CENTRE = Math.fround(5 / 13);
/** float32 products `p * (1/13)` and `p * (5/13)` for p = 0..255, as PIL's filter computes them. */
const TIMES_EDGE = Float64Array.from({ length: 256 }, (_, p) => Math.fround(p * KERNEL_EDGE));
const TIMES_CENTRE = Float64Array.from({ length: 256 }, (_, p) => Math.fround(p * KERNEL_CENTRE));

/** Scratch rows for {@linkcode smooth}, grown on demand (one image at a time per thread). */
let edgeSums = new Float64Array(0);
let centreSums = new Float64Array(0);

/**
 * Applies `ImageFilter.SMOOTH` (3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13).
 *
 * PIL 9.4's `ImagingFilter3x3` accumulates in float32. It starts from 0.5
 * and adds row y + 1, then row y, then row y − 1, each row summed left to
 * right. The result is clamped and truncated. The 1-pixel border is copied.
 * Each row's float32 3-tap sums are computed once and shared by the output
 * rows above and below it, which gives the same float32 results.
 */
export function smooth(image: Uint8Array, width: number, height: number): Uint8Array {
  const out = image.slice();
  if (width < 3 || height < 3) return out;
  const stride = width * 3;
  const f = Math.fround;
  if (edgeSums.length < image.length) {
    edgeSums = new Float64Array(image.length);
    centreSums = new Float64Array(image.length);
  }
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    for (let i = row + 3; i < row + stride - 3; i++) {
      const left = image[i - 3];
      const right = image[i + 3];
      edgeSums[i] = f(f(TIMES_EDGE[left] + TIMES_EDGE[image[i]]) + TIMES_EDGE[right]);
      centreSums[i] = f(f(TIMES_EDGE[left] + TIMES_CENTRE[image[i]]) + TIMES_EDGE[right]);
    }
  }
  for (let y = 1; y < height - 1; y++) {
    const row = y * stride;
    for (let i = row + 3; i < row + stride - 3; i++) {
      const sum = f(f(f(0.5 + edgeSums[i + stride]) + centreSums[i]) + edgeSums[i - stride]);
      out[i] = clip8(sum);
    }
  }
  return out;
}

/** PIL's `COORD(v)`: −1 for negative v, else the integer part. */
function coord(value: number): number {
  return value < 0 ? -1 : Math.trunc(value);
}

/**
 * Applies `img.transform(size, AFFINE, matrix, NEAREST)` with black fill:
 * output pixel (x, y) takes input (a(x+½) + b(y+½) + c, d(x+½) + e(y+½) + f),
 * evaluated as PIL 9.4 does. With b = d = 0 it walks doubles
 * (`ImagingScaleAffine`); otherwise it uses 16.16 fixed point when all four
 * corners map inside ±32768 (`affine_fixed`), else a double walk.
 */
export function affineNearest(
  image: Uint8Array,
  width: number,
  height: number,
  matrix: readonly [number, number, number, number, number, number],
): Uint8Array {
  const [a, b, c, d, e, f] = matrix;
  if (b === 0 && d === 0) return scaleAffine(image, width, height, a, c, e, f);
  const fitsFixed = (x: number, y: number) =>
    Math.abs(x * a + y * b + c) < 32768 && Math.abs(x * d + y * e + f) < 32768;
  if (fitsFixed(0, 0) && fitsFixed(width, height) && fitsFixed(0, height) && fitsFixed(width, 0)) {
    return affineFixed(image, width, height, matrix);
  }
  return affineDouble(image, width, height, matrix);
}

function copyPixel(out: Uint8Array, outIndex: number, image: Uint8Array, inIndex: number): void {
  out[outIndex] = image[inIndex];
  out[outIndex + 1] = image[inIndex + 1];
  out[outIndex + 2] = image[inIndex + 2];
}

function scaleAffine(
  image: Uint8Array,
  width: number,
  height: number,
  a: number,
  c: number,
  e: number,
  f: number,
): Uint8Array {
  const out = new Uint8Array(image.length);
  const columns = new Int32Array(width);
  let xmin = width;
  let xmax = 0;
  let xo = c + a * 0.5;
  for (let x = 0; x < width; x++) {
    const xin = coord(xo);
    if (xin >= 0 && xin < width) {
      xmax = x + 1;
      if (x < xmin) xmin = x;
      columns[x] = xin;
    }
    xo += a;
  }
  let yo = f + e * 0.5;
  for (let y = 0; y < height; y++) {
    const yin = coord(yo);
    if (yin >= 0 && yin < height) {
      const rowIn = yin * width;
      const rowOut = y * width;
      for (let x = xmin; x < xmax; x++) copyPixel(out, (rowOut + x) * 3, image, (rowIn + columns[x]) * 3);
    }
    yo += e;
  }
  return out;
}

function affineFixed(
  image: Uint8Array,
  width: number,
  height: number,
  matrix: readonly [number, number, number, number, number, number],
): Uint8Array {
  const [a, b, c, d, e, f] = matrix;
  const fix = (v: number) => Math.floor(v * 65536 + 0.5);
  const a0 = fix(a);
  const a1 = fix(b);
  const a3 = fix(d);
  const a4 = fix(e);
  let a2 = fix(c + a * 0.5 + b * 0.5);
  let a5 = fix(f + d * 0.5 + e * 0.5);
  const out = new Uint8Array(image.length);
  for (let y = 0; y < height; y++) {
    let xx = a2;
    let yy = a5;
    for (let x = 0; x < width; x++) {
      const xin = xx >> 16;
      if (xin >= 0 && xin < width) {
        const yin = yy >> 16;
        if (yin >= 0 && yin < height) copyPixel(out, (y * width + x) * 3, image, (yin * width + xin) * 3);
      }
      xx += a0;
      yy += a3;
    }
    a2 += a1;
    a5 += a4;
  }
  return out;
}

function affineDouble(
  image: Uint8Array,
  width: number,
  height: number,
  matrix: readonly [number, number, number, number, number, number],
): Uint8Array {
  const [a, b, c, d, e, f] = matrix;
  let xo = c + b * 0.5 + a * 0.5;
  let yo = f + e * 0.5 + d * 0.5;
  const out = new Uint8Array(image.length);
  for (let y = 0; y < height; y++) {
    let xx = xo;
    let yy = yo;
    for (let x = 0; x < width; x++) {
      const xin = coord(xx);
      if (xin >= 0 && xin < width) {
        const yin = coord(yy);
        if (yin >= 0 && yin < height) copyPixel(out, (y * width + x) * 3, image, (yin * width + xin) * 3);
      }
      xx += a;
      yy += d;
    }
    xo += b;
    yo += e;
  }
  return out;
}

/**
 * Returns `image` turned by a multiple of 90 degrees counter-clockwise, as
 * PIL's `transpose(ROTATE_90 / ROTATE_180 / ROTATE_270)`. Quarter turns need
 * a square image.
 */
export function rotateQuarterTurns(image: Uint8Array, width: number, height: number, turns: 1 | 2 | 3): Uint8Array {
  const out = new Uint8Array(image.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sourceX = x;
      let sourceY = y;
      if (turns === 1) {
        sourceX = width - 1 - y;
        sourceY = x;
      } else if (turns === 2) {
        sourceX = width - 1 - x;
        sourceY = height - 1 - y;
      } else {
        sourceX = y;
        sourceY = height - 1 - x;
      }
      copyPixel(out, (y * width + x) * 3, image, (sourceY * width + sourceX) * 3);
    }
  }
  return out;
}

/**
 * Fills `ImageDraw.rectangle((x0, y0, x1, y1), fill=colour)`: the corners
 * are truncated to int and both are inclusive, clipped to the image.
 */
export function fillRectangle(
  image: Uint8Array,
  width: number,
  height: number,
  box: readonly [number, number, number, number],
  colour: readonly [number, number, number],
): Uint8Array {
  const out = image.slice();
  let x0 = Math.trunc(box[0]);
  let y0 = Math.trunc(box[1]);
  let x1 = Math.trunc(box[2]);
  let y1 = Math.trunc(box[3]);
  if (x0 > x1) [x0, x1] = [x1, x0];
  if (y0 > y1) [y0, y1] = [y1, y0];
  const left = Math.max(0, x0);
  const right = Math.min(width - 1, x1);
  const top = Math.max(0, y0);
  const bottom = Math.min(height - 1, y1);
  for (let y = top; y <= bottom; y++) {
    for (let x = left; x <= right; x++) {
      const i = (y * width + x) * 3;
      out[i] = colour[0];
      out[i + 1] = colour[1];
      out[i + 2] = colour[2];
    }
  }
  return out;
}
