// Batch augmentation on the calling thread and in the worker pool.

import assert from "node:assert/strict";
import { Random } from "../learning/random.ts";
import { augmentBatch, viewRandom } from "../learning/augment/augment_batch.ts";
import { AugmentPool } from "../learning/augment/augment_pool.ts";
import { strongAugment } from "../learning/augment/randaugment.ts";
import { weakAugment } from "../learning/augment/weak.ts";

const IMAGE_BYTES = 32 * 32 * 3;

function randomBatch(seed: number, count: number): Uint8Array {
  const rng = new Random(seed);
  return Uint8Array.from({ length: count * IMAGE_BYTES }, () => rng.int(256));
}

Deno.test("augmentBatch uses one stream per image and view", () => {
  const count = 5;
  const images = randomBatch(1, count);
  const result = augmentBatch({ images, count, seed: 3, labels: ["test", 7], kind: "both" });
  assert.equal(result.weak!.length, images.length);
  assert.equal(result.strong!.length, images.length);
  for (let i = 0; i < count; i++) {
    const image = images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
    const weak = weakAugment(image, viewRandom(3, ["test", 7], i, "weak"));
    const strong = strongAugment(image, viewRandom(3, ["test", 7], i, "strong"));
    assert.deepEqual(result.weak!.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), weak.image, `weak ${i}`);
    assert.deepEqual(result.strong!.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES), strong.image, `strong ${i}`);
    assert.deepEqual(result.strongRecords![i].randAugment, strong.randAugment);
  }
  const weakOnly = augmentBatch({ images, count, seed: 3, labels: ["test", 7], kind: "weak" });
  assert.deepEqual(weakOnly.weak, result.weak);
  assert.equal(weakOnly.strong, undefined);
  const split = augmentBatch({
    images: images.subarray(2 * IMAGE_BYTES),
    count: 3,
    seed: 3,
    labels: ["test", 7],
    kind: "strong",
    indexOffset: 2,
  });
  assert.deepEqual(split.strong, result.strong!.subarray(2 * IMAGE_BYTES));
});

Deno.test("augmentBatch rejects bad requests", () => {
  const images = randomBatch(2, 2);
  assert.throws(() => augmentBatch({ images, count: 3, seed: 0, labels: [], kind: "weak" }), /9216 bytes/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => augmentBatch({ images, count: 2, seed: 0, labels: [], kind: "medium" as any }), /kind/);
});

Deno.test("pool results equal single-thread results", async () => {
  const count = 11;
  const images = randomBatch(3, count);
  const copy = images.slice();
  const request = {
    images,
    count,
    seed: 9,
    labels: ["fixmatch", 4],
    kind: "both" as const,
    strong: { applyProbability: 0.5 },
  };
  const expected = augmentBatch(request);
  for (const workers of [1, 3]) {
    using pool = new AugmentPool({ workers });
    assert.equal(pool.size, workers);
    const [first, second] = await Promise.all([pool.augmentBatch(request), pool.augmentBatch(request)]);
    assert.deepEqual(first, expected, `${workers} workers`);
    assert.deepEqual(second, expected, `${workers} workers, second batch`);
    assert.deepEqual(images, copy, "the caller's images must stay intact");
  }
});

Deno.test("pool rejects bad and late requests", async () => {
  const pool = new AugmentPool({ workers: 1 });
  try {
    const images = randomBatch(4, 1);
    await assert.rejects(pool.augmentBatch({ images, count: 2, seed: 0, labels: [], kind: "weak" }), /6144 bytes/);
    await assert.rejects(
      pool.augmentBatch({ images, count: 1, seed: 0, labels: [], kind: "strong", strong: { numOps: -1 } }),
      /augment worker failed: numOps must be a non-negative integer/,
    );
  } finally {
    pool.close();
  }
  await assert.rejects(
    pool.augmentBatch({ images: randomBatch(5, 1), count: 1, seed: 0, labels: [], kind: "weak" }),
    /closed/,
  );
});
