// RandAugment operations and Cutout against PIL 9.4 / TorchSSL golden outputs (0 grey levels).

import assert from "node:assert/strict";
import { goldenDir, readArray, readManifest } from "./_golden.ts";
import { hflip } from "../learning/augment/weak.ts";
import {
  cutout,
  cutoutAbs,
  cutoutBox,
  RANDAUGMENT_OPS,
  randAugmentOp,
  type RandAugmentRecord,
  replayRandAugment,
  rotationMatrix,
} from "../learning/augment/randaugment.ts";

const CASE = "randaugment_ops";
const ignore = goldenDir() === null;
if (ignore) console.warn("golden folder not found: RandAugment golden tests are skipped (set SEMISUP_GOLDEN)");

const SIZE = 32;
const IMAGE_BYTES = SIZE * SIZE * 3;

function image(batch: Uint8Array, index: number): Uint8Array {
  return batch.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES);
}

/** Describes where two images differ, or returns null when they are identical. */
function difference(actual: Uint8Array, expected: Uint8Array): string | null {
  let count = 0;
  let maxDiff = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (diff === 0) continue;
    if (first < 0) first = i;
    count++;
    maxDiff = Math.max(maxDiff, diff);
  }
  if (count === 0) return null;
  const pixel = Math.floor(first / 3);
  return `${count} values differ (max ${maxDiff} grey levels); first at row ${Math.floor(pixel / SIZE)}, ` +
    `column ${pixel % SIZE}, channel ${first % 3}: got ${actual[first]}, expected ${expected[first]}`;
}

Deno.test({
  name: "op list matches TorchSSL augment_list",
  ignore,
  fn() {
    const manifestOps = readManifest(CASE).ops.filter((op: { op: string }) => op.op !== "Cutout");
    assert.deepEqual(RANDAUGMENT_OPS.map((op) => op.name), manifestOps.map((op: { op: string }) => op.op));
    for (const [i, op] of RANDAUGMENT_OPS.entries()) {
      assert.deepEqual([op.min, op.max], manifestOps[i].range, `range of ${op.name}`);
    }
  },
});

Deno.test({
  name: "every op pixel-exact at 5 magnitudes",
  ignore,
  fn() {
    const inputs = readArray(CASE, "input_uint8") as Uint8Array;
    const failures: string[] = [];
    let compared = 0;
    for (const entry of readManifest(CASE).ops) {
      if (entry.op === "Cutout") continue;
      const expectedAll = readArray(CASE, entry.op) as Uint8Array;
      const op = randAugmentOp(entry.op);
      for (const [f, magnitude] of entry.magnitudes.entries()) {
        for (let i = 0; i < 4; i++) {
          const input = image(inputs, i);
          const before = input.slice();
          const actual = op.apply(input, SIZE, SIZE, magnitude.value);
          const expected = image(expectedAll, f * 4 + i);
          const problem = difference(actual, expected);
          if (problem !== null) failures.push(`${entry.op}(${magnitude.value}) image ${i}: ${problem}`);
          assert.deepEqual(input, before, `${entry.op} must not modify its input`);
          compared++;
        }
      }
    }
    assert.equal(compared, 14 * 5 * 4);
    assert.deepEqual(failures, []);
  },
});

Deno.test({
  name: "rotate matrix equals PIL's",
  ignore,
  fn() {
    const rotate = readManifest(CASE).ops.find((op: { op: string }) => op.op === "Rotate");
    let checked = 0;
    for (const magnitude of rotate.magnitudes) {
      const transform = magnitude.pil_calls.find((call: { call: string }) => call.call === "Image.transform");
      if (transform === undefined) continue;
      assert.deepEqual(rotationMatrix(SIZE, SIZE, magnitude.value), transform.args[2], `angle ${magnitude.value}`);
      checked++;
    }
    assert.equal(checked, 4);
  },
});

Deno.test({
  name: "cutout pixel-exact at fixed centres",
  ignore,
  fn() {
    const inputs = readArray(CASE, "input_uint8") as Uint8Array;
    const expectedAll = readArray(CASE, "Cutout") as Uint8Array;
    const entry = readManifest(CASE).ops.find((op: { op: string }) => op.op === "Cutout");
    for (const [f, magnitude] of entry.magnitudes.entries()) {
      for (const perImage of magnitude.per_image) {
        const i = perImage.image;
        const [centreX, centreY] = perImage.centre_xy;
        const actual = cutout(image(inputs, i), SIZE, SIZE, magnitude.value, centreX, centreY);
        const problem = difference(actual, image(expectedAll, f * 4 + i));
        assert.equal(problem, null, `Cutout(${magnitude.value}) image ${i} at (${centreX}, ${centreY}): ${problem}`);
        if (perImage.box === null) continue;
        const box = cutoutBox(SIZE, SIZE, perImage.size_px, centreX, centreY);
        assert.deepEqual(
          [box?.left, box?.right, box?.top, box?.bottom],
          [...perImage.box.filled_columns_inclusive, ...perImage.box.filled_rows_inclusive],
          `box of Cutout(${magnitude.value}) image ${i}`,
        );
      }
    }
  },
});

Deno.test({
  name: "cutoutAbs matches FixMatch strong views",
  ignore,
  fn() {
    // Strong views are test images 8..15 with CutoutAbs(16) at (18, 14); the
    // weak views are the same images mirrored, so un-mirroring gives the originals.
    const weak = readArray("fixmatch_step", "x_ulb_w_uint8") as Uint8Array;
    const strong = readArray("fixmatch_step", "x_ulb_s_uint8") as Uint8Array;
    for (let i = 0; i < 8; i++) {
      const original = hflip(image(weak, i), SIZE, SIZE);
      const actual = cutoutAbs(original, SIZE, SIZE, 16, 18, 14);
      const problem = difference(actual, image(strong, i));
      assert.equal(problem, null, `strong view ${i}: ${problem}`);
    }
  },
});

Deno.test({
  name: "randAugment composite draws replay exactly",
  ignore,
  fn() {
    const inputs = readArray(CASE, "input_uint8") as Uint8Array;
    const expectedAll = readArray(CASE, "randaugment_composite") as Uint8Array;
    const draws = readManifest(CASE).composite;
    assert.equal(draws.length, 12);
    for (const draw of draws) {
      const steps = draw.ops_in_order.slice(0, -1);
      const cutoutStep = draw.ops_in_order.at(-1);
      assert.equal(cutoutStep.op, "Cutout");
      const record: RandAugmentRecord = {
        ops: steps.map((step: { op: RandAugmentRecord["ops"][0]["name"]; value: number }) => ({
          name: step.op,
          value: step.value,
          applied: true,
        })),
        cutout: {
          value: cutoutStep.value,
          centreX: draw.cutout_centre_draws[0].returned,
          centreY: draw.cutout_centre_draws[1].returned,
        },
      };
      const actual = replayRandAugment(image(inputs, draw.image), record);
      const expected = image(expectedAll, draw.seed_index * 4 + draw.image);
      const problem = difference(actual, expected);
      assert.equal(problem, null, `draw ${draw.seed_index}, image ${draw.image}: ${problem}`);
    }
  },
});

Deno.test("shear uses PIL's 16.16 fixed point", () => {
  // ShearX(1/3): PIL's fixed-point start X = FIX(0.5 + 1/6) = 43691 and step
  // FIX(1/3) = 21845 per row, so row 4 starts at 131071 = 2·65536 − 1 and
  // output (4, x) reads input column x + 1. The plain double formula
  // floor(x + 0.5 + 4.5/3) = x + 2 would read one column further right.
  const input = Uint8Array.from({ length: IMAGE_BYTES }, (_, i) => (i * 7) % 251);
  const sheared = randAugmentOp("ShearX").apply(input, SIZE, SIZE, 1 / 3);
  for (let x = 0; x < SIZE; x++) {
    const out = (4 * SIZE + x) * 3;
    const expected = x + 1 < SIZE
      ? Array.from(input.subarray((4 * SIZE + x + 1) * 3, (4 * SIZE + x + 2) * 3))
      : [0, 0, 0];
    assert.deepEqual(Array.from(sheared.subarray(out, out + 3)), expected, `row 4, column ${x}`);
  }
});

Deno.test("ops reject bad sizes and values", () => {
  const input = new Uint8Array(IMAGE_BYTES);
  assert.throws(() => randAugmentOp("Rotate").apply(input, SIZE, 31, 10), /2976 bytes for 32x31, got 3072/);
  assert.throws(() => randAugmentOp("Posterize").apply(input, SIZE, SIZE, 9), /at most 8 bits/);
  assert.throws(() => cutout(input, SIZE, SIZE, 0.6, 16, 16), /\[0, 0.5\]/);
  assert.throws(() => randAugmentOp("Invert"), /unknown RandAugment operation "Invert"/);
});
