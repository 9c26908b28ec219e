import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { drawMixup, drawMixupLambda, mixup, sharpen } from "../learning/algorithms/mixup.ts";
import { interleave, interleaveArrays, interleaveOffsets, interleaveOrder } from "../learning/algorithms/interleave.ts";
import { Random } from "../learning/random.ts";

await tf.setBackend("cpu");

function assertAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tolerance,
      `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`,
    );
  }
}

Deno.test("sharpen by hand", () => {
  const probs = tf.tensor2d([[0.25, 0.75], [0.5, 0.5]]);
  const sharp = sharpen(probs, 0.5);
  // [0.25^2, 0.75^2] / 0.625 = [0.1, 0.9]
  assertAllClose(sharp.dataSync(), [0.1, 0.9, 0.5, 0.5], 1e-7, "T = 0.5");
  const same = sharpen(probs, 1);
  assertAllClose(same.dataSync(), [0.25, 0.75, 0.5, 0.5], 1e-7, "T = 1");
  assert.throws(() => sharpen(probs, 0), /temperature must be > 0/);
  tf.dispose([probs, sharp, same]);
});

Deno.test("mixup lambda is at least one half", () => {
  const random = new Random(7);
  let below = 0;
  for (let i = 0; i < 2000; i++) {
    const lambda = drawMixupLambda(random, 0.5);
    assert.ok(lambda >= 0.5, `lambda ${lambda}`);
    assert.ok(lambda <= 1, `lambda ${lambda}`);
    if (lambda < 0.75) below++;
  }
  // Beta(0.5, 0.5) folded at 0.5: P(max(λ, 1 - λ) < 0.75) = 2 (2/π) asin(sqrt(0.75)) - 1 = 1/3.
  assert.ok(Math.abs(below / 2000 - 1 / 3) < 0.05, `share below 0.75: ${below / 2000}`);
  assert.equal(drawMixupLambda(random, 0), 1);
});

Deno.test("mixup per batch by hand", () => {
  const inputs = tf.tensor4d([1, 2, 3, 4, 5, 6], [3, 1, 1, 2]);
  const targets = tf.tensor2d([[1, 0], [0, 1], [0.3, 0.7]]);
  const { mixedInputs, mixedTargets } = mixup(inputs, targets, {
    lambda: 0.75,
    permutation: Int32Array.from([2, 0, 1]),
  });
  // Row i = 0.75 row i + 0.25 row perm[i].
  assertAllClose(mixedInputs.dataSync(), [2, 3, 2.5, 3.5, 4.5, 5.5], 1e-6, "inputs");
  assertAllClose(mixedTargets.dataSync(), [0.825, 0.175, 0.25, 0.75, 0.225, 0.775], 1e-6, "targets");
  const sums = tf.sum(mixedTargets, 1);
  assertAllClose(sums.dataSync(), [1, 1, 1], 1e-6, "target row sums");
  assert.throws(
    () => mixup(inputs, targets, { lambda: 0.75, permutation: Int32Array.from([0, 0, 1]) }),
    /not a permutation/,
  );
  tf.dispose([inputs, targets, mixedInputs, mixedTargets, sums]);
});

Deno.test("mixup per sample", () => {
  const random = new Random(11);
  const draw = drawMixup(random, 6, 0.75, true);
  assert.ok(draw.lambda instanceof Float64Array);
  assert.equal(draw.lambda.length, 6);
  const lambdas = draw.lambda as Float64Array;
  assert.ok(lambdas.every((value) => value >= 0.5 && value <= 1));
  assert.ok(new Set(lambdas).size > 1, "per-sample lambdas differ");
  assert.deepEqual([...draw.permutation].sort(), [0, 1, 2, 3, 4, 5]);

  const x = tf.tensor2d([[0, 10], [1, 11], [2, 12], [3, 13], [4, 14], [5, 15]]);
  const targets = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], "int32"), 3).toFloat() as tf.Tensor2D;
  const { mixedInputs, mixedTargets } = mixup(x, targets, draw);
  const rows = mixedInputs.arraySync() as number[][];
  for (let i = 0; i < 6; i++) {
    const expected = lambdas[i] * i + (1 - lambdas[i]) * draw.permutation[i];
    assert.ok(Math.abs(rows[i][0] - expected) <= 1e-5, `row ${i}: got ${rows[i][0]}, expected ${expected}`);
  }
  const sums = tf.sum(mixedTargets, 1);
  assertAllClose(sums.dataSync(), [1, 1, 1, 1, 1, 1], 1e-6, "target row sums");

  const perBatch = drawMixup(new Random(11), 6, 0.75);
  assert.equal(typeof perBatch.lambda, "number");
  tf.dispose([x, targets, mixedInputs, mixedTargets, sums]);
});

Deno.test("interleave order matches TorchSSL", () => {
  assert.deepEqual(interleaveOffsets(4, 2), [0, 1, 2, 4]);
  assert.deepEqual(interleaveOffsets(64, 2), [0, 21, 42, 64]);
  assert.deepEqual(interleaveOffsets(5, 0), [0, 5]);
  // TorchSSL's chunks for 3 chunks of 4: rows [0, 5, 10, 11], [4, 1, 6, 7], [8, 9, 2, 3].
  assert.deepEqual([...interleaveOrder(3, 4)], [0, 5, 10, 11, 4, 1, 6, 7, 8, 9, 2, 3]);
  assert.deepEqual(interleaveArrays([["a", "b"], ["c", "d"]], 2), [["a", "d"], ["c", "b"]]);
});

Deno.test("interleave then de-interleave is identity", () => {
  for (const [numChunks, batch] of [[3, 4], [3, 64], [5, 7], [2, 1]]) {
    const rows = numChunks * batch;
    const x = tf.reshape(tf.range(0, rows * 2), [rows, 2]);
    const chunks = tf.split(x, numChunks);
    const mixed = interleave(chunks, batch);
    const back = interleave(mixed, batch);
    const joined = tf.concat(back);
    assert.deepEqual([...joined.dataSync()], [...x.dataSync()], `${numChunks} chunks of ${batch}`);
    const order = interleaveOrder(numChunks, batch);
    const firstColumn = tf.concat(mixed).arraySync() as number[][];
    assert.deepEqual(firstColumn.map((row) => row[0] / 2), [...order], "order matches the tensors");
    tf.dispose([x, ...chunks, ...mixed, ...back, joined]);
  }
  assert.throws(() => interleave([tf.zeros([4, 1]), tf.zeros([3, 1])], 4), /every chunk must have 4 rows/);
});
