// RandAugment draws, Cutout boxes and the strong transform.

import assert from "node:assert/strict";
import { Random } from "../learning/random.ts";
import {
  cutout,
  cutoutBox,
  drawRandAugment,
  randAugment,
  RANDAUGMENT_OPS,
  replayRandAugment,
  strongAugment,
} from "../learning/augment/randaugment.ts";
import { weakView } from "../learning/augment/weak.ts";

const SIZE = 32;
const IMAGE_BYTES = SIZE * SIZE * 3;
const FILL = [125, 123, 114];

function randomImage(seed: number): Uint8Array {
  const rng = new Random(seed);
  return Uint8Array.from({ length: IMAGE_BYTES }, () => rng.int(256));
}

/** Returns true when |count − n·p| is within 5 binomial standard errors. */
function withinFiveSigma(count: number, n: number, p: number): boolean {
  return Math.abs(count - n * p) <= 5 * Math.sqrt(n * p * (1 - p));
}

Deno.test("applied op count follows binomial(3, 0.5)", () => {
  const draws = 4000;
  const histogram = [0, 0, 0, 0];
  for (let i = 0; i < draws; i++) {
    const record = drawRandAugment(Random.derive(11, "count", i), { applyProbability: 0.5 });
    assert.equal(record.ops.length, 3);
    histogram[record.ops.filter((op) => op.applied).length]++;
  }
  const expected = [1 / 8, 3 / 8, 3 / 8, 1 / 8];
  for (let k = 0; k <= 3; k++) {
    assert.ok(withinFiveSigma(histogram[k], draws, expected[k]), `${k} ops applied in ${histogram[k]} of ${draws}`);
  }
});

Deno.test("applyProbability 1 applies every op", () => {
  for (let i = 0; i < 500; i++) {
    const record = drawRandAugment(Random.derive(12, "all", i));
    assert.equal(record.ops.filter((op) => op.applied).length, 3);
  }
  const five = drawRandAugment(new Random(1), { numOps: 5 });
  assert.equal(five.ops.length, 5);
  assert.throws(() => drawRandAugment(new Random(1), { applyProbability: 1.5 }), /applyProbability/);
  assert.throws(() => drawRandAugment(new Random(1), { numOps: -1 }), /numOps/);
});

Deno.test("drawn ops, values and cutout stay in range", () => {
  const draws = 3000;
  const counts = new Map<string, number>();
  for (let i = 0; i < draws; i++) {
    const record = drawRandAugment(Random.derive(13, "range", i));
    for (const step of record.ops) {
      const op = RANDAUGMENT_OPS.find((o) => o.name === step.name)!;
      assert.ok(step.value >= op.min, `${step.name} value ${step.value} below ${op.min}`);
      assert.ok(step.value < op.max, `${step.name} value ${step.value} not below ${op.max}`);
      counts.set(step.name, (counts.get(step.name) ?? 0) + 1);
    }
    const { value, centreX, centreY } = record.cutout;
    assert.ok(value >= 0, `cutout value ${value}`);
    assert.ok(value < 0.5, `cutout value ${value}`);
    assert.ok(centreX > 1, `cutout centre x ${centreX}`);
    assert.ok(centreX <= SIZE, `cutout centre x ${centreX}`);
    assert.ok(centreY > 1, `cutout centre y ${centreY}`);
    assert.ok(centreY <= SIZE, `cutout centre y ${centreY}`);
  }
  for (const op of RANDAUGMENT_OPS) {
    const count = counts.get(op.name) ?? 0;
    assert.ok(withinFiveSigma(count, 3 * draws, 1 / 14), `${op.name} chosen ${count} times of ${3 * draws}`);
  }
});

Deno.test("randAugment is deterministic and replayable", () => {
  const image = randomImage(1);
  const before = image.slice();
  const first = randAugment(image, Random.derive(5, "ra", 1), { applyProbability: 0.5 });
  const second = randAugment(image, Random.derive(5, "ra", 1), { applyProbability: 0.5 });
  assert.deepEqual(second, first);
  assert.deepEqual(image, before, "the input must not change");
  assert.deepEqual(replayRandAugment(image, first.record), first.image);
  const other = randAugment(image, Random.derive(5, "ra", 2), { applyProbability: 0.5 });
  assert.notDeepEqual(other.record, first.record);
});

Deno.test("skipped ops leave only the cutout", () => {
  const image = randomImage(2);
  for (let i = 0; i < 20; i++) {
    const { image: out, record } = randAugment(image, Random.derive(6, "skip", i), { applyProbability: 0 });
    assert.ok(record.ops.every((op) => !op.applied));
    const { value, centreX, centreY } = record.cutout;
    assert.deepEqual(out, cutout(image, SIZE, SIZE, value, centreX, centreY));
  }
});

Deno.test("same seed picks same ops for any applyProbability", () => {
  const always = drawRandAugment(Random.derive(3, "p"), { applyProbability: 1 });
  const half = drawRandAugment(Random.derive(3, "p"), { applyProbability: 0.5 });
  assert.deepEqual(half.ops.map((op) => [op.name, op.value]), always.ops.map((op) => [op.name, op.value]));
  assert.deepEqual(half.cutout, always.cutout);
});

Deno.test("cutout box size and clipping", () => {
  // Side 16 in the middle: x0 = int(16 − 8) = 8, x1 = 24, both inclusive: 17×17.
  assert.deepEqual(cutoutBox(SIZE, SIZE, 16, 16, 16), { left: 8, top: 8, right: 24, bottom: 24 });
  // Near the top-left corner x0 clips to 0 and x1 = 0 + 16: still 17 wide.
  assert.deepEqual(cutoutBox(SIZE, SIZE, 16, 1.5, 1.5), { left: 0, top: 0, right: 16, bottom: 16 });
  // At the far corner x0 = 24, x1 = min(32, 40) = 32, clipped to column 31: 8 wide.
  assert.deepEqual(cutoutBox(SIZE, SIZE, 16, 32, 32), { left: 24, top: 24, right: 31, bottom: 31 });
  // A side below 1 still fills one pixel, because both corners are inclusive.
  assert.deepEqual(cutoutBox(SIZE, SIZE, 0.2, 10.5, 20.5), { left: 10, top: 20, right: 10, bottom: 20 });

  const image = randomImage(3).map((v) => (v === 125 ? 126 : v));
  for (const [value, centreX, centreY] of [[0.5, 16, 16], [0.5, 1.5, 1.5], [0.5, 32, 32], [0.3, 7.3, 29.9]]) {
    const out = cutout(image, SIZE, SIZE, value, centreX, centreY);
    const box = cutoutBox(SIZE, SIZE, value * SIZE, centreX, centreY)!;
    let filled = 0;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const i = (y * SIZE + x) * 3;
        const inside = x >= box.left && x <= box.right && y >= box.top && y <= box.bottom;
        const got = [out[i], out[i + 1], out[i + 2]];
        if (inside) {
          assert.deepEqual(got, FILL, `(${y}, ${x}) inside the box`);
          filled++;
        } else {
          assert.deepEqual(got, [image[i], image[i + 1], image[i + 2]], `(${y}, ${x}) outside the box`);
        }
      }
    }
    assert.equal(filled, (box.right - box.left + 1) * (box.bottom - box.top + 1));
  }
  assert.deepEqual(cutout(image, SIZE, SIZE, 0, 16, 16), image);
});

Deno.test("strongAugment is RandAugment then weak", () => {
  const image = randomImage(4);
  for (let i = 0; i < 30; i++) {
    const result = strongAugment(image, Random.derive(8, "strong", i));
    assert.equal(result.image.length, IMAGE_BYTES);
    const augmented = replayRandAugment(image, result.randAugment);
    assert.deepEqual(result.image, weakView(augmented, SIZE, SIZE, 4, result.weak));
  }
  const again = strongAugment(image, Random.derive(8, "strong", 0));
  assert.deepEqual(again, strongAugment(image, Random.derive(8, "strong", 0)));
});
