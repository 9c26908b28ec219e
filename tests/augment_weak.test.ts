// Weak augmentation: flip, reflect padding, crop and their random composition.

import assert from "node:assert/strict";
import { Random } from "../learning/random.ts";
import { crop, hflip, padReflect, weakAugment, weakView } from "../learning/augment/weak.ts";
import { goldenDir, readArray } from "./_golden.ts";

const SIZE = 32;
const IMAGE_BYTES = SIZE * SIZE * 3;

function randomImage(seed: number, width = SIZE, height = SIZE): Uint8Array {
  const rng = new Random(seed);
  return Uint8Array.from({ length: width * height * 3 }, () => rng.int(256));
}

function pixel(image: Uint8Array, width: number, y: number, x: number): number[] {
  const i = (y * width + x) * 3;
  return [image[i], image[i + 1], image[i + 2]];
}

Deno.test("hflip mirrors each row", () => {
  const image = randomImage(1, 5, 3);
  const mirrored = hflip(image, 5, 3);
  for (let y = 0; y < 3; y++) {
    for (let x = 0; x < 5; x++) {
      assert.deepEqual(pixel(mirrored, 5, y, x), pixel(image, 5, y, 4 - x), `pixel (${y}, ${x})`);
    }
  }
  assert.deepEqual(hflip(mirrored, 5, 3), image);
});

Deno.test("padReflect reflects without repeating edges", () => {
  const image = randomImage(2);
  const padded = padReflect(image, SIZE, SIZE, 4);
  assert.equal(padded.length, 40 * 40 * 3);
  // Hand-computed reflect indices: -4 -> 4, -1 -> 1, 0 -> 0, 31 -> 31, 32 -> 30, 35 -> 27.
  const cases: [number, number][] = [[-4, 4], [-1, 1], [0, 0], [31, 31], [32, 30], [35, 27]];
  for (const [row, sourceRow] of cases) {
    for (const [column, sourceColumn] of cases) {
      assert.deepEqual(
        pixel(padded, 40, row + 4, column + 4),
        pixel(image, SIZE, sourceRow, sourceColumn),
        `padded (${row}, ${column})`,
      );
    }
  }
});

Deno.test("crop copies the window", () => {
  const image = randomImage(3, 7, 6);
  const window = crop(image, 7, 6, 2, 3, 4, 3);
  assert.equal(window.length, 4 * 3 * 3);
  for (let y = 0; y < 3; y++) {
    for (let x = 0; x < 4; x++) {
      assert.deepEqual(pixel(window, 4, y, x), pixel(image, 7, y + 2, x + 3));
    }
  }
  assert.throws(() => crop(image, 7, 6, 4, 0, 4, 3), /must lie inside/);
});

Deno.test("weakView equals flip, pad and crop", () => {
  const image = randomImage(4);
  const flippedImage = hflip(image, SIZE, SIZE);
  const padded = padReflect(image, SIZE, SIZE, 4);
  const paddedFlipped = padReflect(flippedImage, SIZE, SIZE, 4);
  for (const flipped of [false, true]) {
    for (let top = 0; top <= 8; top++) {
      for (let left = 0; left <= 8; left++) {
        const expected = crop(flipped ? paddedFlipped : padded, 40, 40, top, left, SIZE, SIZE);
        assert.deepEqual(weakView(image, SIZE, SIZE, 4, { flipped, top, left }), expected, `${flipped} ${top} ${left}`);
      }
    }
  }
});

Deno.test({
  name: "weak views match MixMatch golden",
  ignore: goldenDir() === null,
  fn() {
    // View 1 is test images 8..11 mirrored; view 2 is the same images padded
    // by reflection and cropped at top 6, left 2. FixMatch's weak views are
    // test images 8..15 mirrored, so both cases must agree on images 8..11.
    const view1 = readArray("mixmatch_step", "x_ulb_w1_uint8") as Uint8Array;
    const view2 = readArray("mixmatch_step", "x_ulb_w2_uint8") as Uint8Array;
    const fixmatchWeak = readArray("fixmatch_step", "x_ulb_w_uint8") as Uint8Array;
    assert.deepEqual(view1, fixmatchWeak.subarray(0, 4 * IMAGE_BYTES));
    for (let i = 0; i < 4; i++) {
      const original = hflip(view1.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), SIZE, SIZE);
      const expected = view2.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
      const padded = padReflect(original, SIZE, SIZE, 4);
      assert.deepEqual(crop(padded, 40, 40, 6, 2, SIZE, SIZE), expected, `image ${8 + i}, pad + crop`);
      assert.deepEqual(weakView(original, SIZE, SIZE, 4, { flipped: false, top: 6, left: 2 }), expected);
    }
  },
});

Deno.test("weakAugment draws flip and offsets", () => {
  const image = randomImage(5);
  const draws = 2000;
  let flips = 0;
  const tops = new Int32Array(9);
  const lefts = new Int32Array(9);
  for (let i = 0; i < draws; i++) {
    const result = weakAugment(image, Random.derive(7, "weak-test", i));
    assert.ok(result.image instanceof Uint8Array);
    assert.equal(result.image.length, IMAGE_BYTES);
    for (const offset of [result.top, result.left]) {
      assert.ok(Number.isInteger(offset), `offset ${offset}`);
      assert.ok(offset >= 0, `offset ${offset}`);
      assert.ok(offset <= 8, `offset ${offset}`);
    }
    assert.deepEqual(result.image, weakView(image, SIZE, SIZE, 4, result));
    if (result.flipped) flips++;
    tops[result.top]++;
    lefts[result.left]++;
  }
  // 5 sigma of a binomial(2000, 0.5) is 112 flips.
  assert.ok(Math.abs(flips - draws / 2) < 5 * Math.sqrt(draws * 0.25), `flips ${flips} of ${draws}`);
  for (let offset = 0; offset <= 8; offset++) {
    const expected = draws / 9;
    const tolerance = 5 * Math.sqrt(draws * (1 / 9) * (8 / 9));
    assert.ok(Math.abs(tops[offset] - expected) < tolerance, `top ${offset} drawn ${tops[offset]} times`);
    assert.ok(Math.abs(lefts[offset] - expected) < tolerance, `left ${offset} drawn ${lefts[offset]} times`);
  }
});

Deno.test("weakAugment is deterministic per seed", () => {
  const image = randomImage(6);
  const first = weakAugment(image, Random.derive(1, "weak", 3));
  const second = weakAugment(image, Random.derive(1, "weak", 3));
  assert.deepEqual(second, first);
  const flipOnly = weakAugment(image, new Random(9), { padding: 0, flipProbability: 1 });
  assert.deepEqual(flipOnly.image, hflip(image, SIZE, SIZE));
  assert.equal(flipOnly.top, 0);
  assert.equal(flipOnly.left, 0);
});

Deno.test("weak augmentation handles other sizes", () => {
  const image = randomImage(8, 12, 9);
  const result = weakAugment(image, new Random(3), { width: 12, height: 9, padding: 2 });
  assert.equal(result.image.length, 12 * 9 * 3);
  const padded = padReflect(result.flipped ? hflip(image, 12, 9) : image, 12, 9, 2);
  assert.deepEqual(result.image, crop(padded, 16, 13, result.top, result.left, 12, 9));
});

Deno.test("weak augmentation rejects bad input", () => {
  const image = randomImage(9);
  assert.throws(() => weakAugment(image.subarray(1), new Random(0)), /3072 bytes/);
  assert.throws(() => padReflect(image, SIZE, SIZE, 32), /reflect padding/);
  assert.throws(() => weakAugment(image, new Random(0), { flipProbability: 2 }), /flipProbability/);
  assert.throws(() => weakView(image, SIZE, SIZE, 4, { flipped: false, top: 9, left: 0 }), /crop offsets/);
});
