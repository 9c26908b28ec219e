/**
 * WideResNet-28-2 forward passes against TorchSSL with the golden weights:
 * eval-mode and train-mode logits, intermediate activations and the BN
 * running statistics after one train-mode forward.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BatchNormStats, disposeBatchStats, WideResNet } from "../learning/nn/wide_resnet.ts";
import { normalizeImages } from "../learning/nn/normalize.ts";
import { goldenDir, readArray, readPack } from "./_golden.ts";

await tf.setBackend("cpu");

const noGolden = goldenDir() === null;
if (noGolden) console.warn("golden folder not found: WideResNet forward tests are skipped");

const CASE = "wrn28_2_forward";

function maxAbsDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, "length");
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

/** Image 0 of an NHWC activation in NCHW order, like the golden debug taps. */
function firstImageNchw(activation: tf.Tensor4D): Float32Array {
  return tf.tidy(() =>
    tf.transpose(tf.slice(activation, [0, 0, 0, 0], [1, -1, -1, -1]), [0, 3, 1, 2]).dataSync() as Float32Array
  );
}

function loadGoldenModel(): { model: WideResNet; x: tf.Tensor4D } {
  const model = new WideResNet();
  model.loadStateDict(readPack(CASE, "weights"));
  const x = normalizeImages(readArray(CASE, "input_uint8") as Uint8Array, 8);
  return { model, x };
}

Deno.test("WideResNet eval-mode logits and activations", { ignore: noGolden }, () => {
  const { model, x } = loadGoldenModel();
  const { logits, batchStats, activations } = model.applyWithActivations(x, false);
  try {
    assert.deepEqual(logits.shape, [8, 10]);
    assert.equal(batchStats.length, 0);
    assert.ok(maxAbsDifference(logits.dataSync(), readArray(CASE, "logits_eval")) <= 1e-4);

    assert.deepEqual(activations.block2.shape, [8, 16, 16, 64]);
    assert.deepEqual(activations.block3.shape, [8, 8, 8, 128]);
    // Eval-mode activations grow through the residual stream (BN is almost the
    // identity with running mean 0 and variance 1) up to |a| = 65, so the bound
    // is relative: 5e-6 of the largest value, the ratio of the 1e-4 logit
    // bound to logits of up to 18.
    for (const tap of ["conv1", "block1", "block2", "block3"] as const) {
      const expected = readArray(CASE, `act_eval_${tap}_img0`);
      const difference = maxAbsDifference(firstImageNchw(activations[tap]), expected);
      assert.ok(difference <= 5e-6 * Math.max(1, maxAbs(expected)), `${tap}: max |difference| ${difference}`);
    }
    const pooled = readArray(CASE, "act_eval_pooled");
    const pooledDifference = maxAbsDifference(activations.pooled.dataSync(), pooled);
    assert.ok(pooledDifference <= 5e-6 * Math.max(1, maxAbs(pooled)), `pooled: max |difference| ${pooledDifference}`);
  } finally {
    tf.dispose([x, logits, ...Object.values(activations)]);
    model.dispose();
  }
});

Deno.test("WideResNet train-mode logits and running statistics", { ignore: noGolden }, () => {
  const { model, x } = loadGoldenModel();
  const buffersBefore = new Map([...model.buffers].map(([name, v]) => [name, v.dataSync().slice()]));
  const { logits, batchStats, activations } = model.applyWithActivations(x, true);
  try {
    assert.ok(maxAbsDifference(logits.dataSync(), readArray(CASE, "logits_train")) <= 1e-5);
    assert.ok(maxAbsDifference(activations.pooled.dataSync(), readArray(CASE, "act_train_pooled")) <= 1e-5);

    // One entry per BN layer in forward order, the discarded bn1 of block2/3.layer.0 included.
    const bnNames = [...model.buffers.keys()].filter((n) => n.endsWith(".running_mean")).map((n) =>
      n.replace(/\.running_mean$/, "")
    );
    assert.deepEqual(batchStats.map((s) => s.name), bnNames);
    const counts = new Map(batchStats.map((s) => [s.name, s.count]));
    assert.equal(counts.get("block1.layer.0.bn1"), 8 * 32 * 32);
    assert.equal(counts.get("block2.layer.0.bn1"), 8 * 32 * 32);
    assert.equal(counts.get("block2.layer.0.bn2"), 8 * 16 * 16);
    assert.equal(counts.get("bn1"), 8 * 8 * 8);

    // apply() leaves the buffers alone.
    for (const [name, v] of model.buffers) assert.deepEqual(v.dataSync(), buffersBefore.get(name), name);

    model.updateRunningStats(batchStats);
    for (const [name, expected] of readPack(CASE, "bn_running_after_train_forward")) {
      const difference = maxAbsDifference(model.buffers.get(name)!.dataSync(), expected.data);
      assert.ok(difference <= 1e-6, `${name}: max |difference| ${difference}`);
    }
    for (
      const [array, name] of [
        ["first_bn_running_mean", "block1.layer.0.bn1.running_mean"],
        ["first_bn_running_var", "block1.layer.0.bn1.running_var"],
        ["last_bn_running_mean", "bn1.running_mean"],
        ["last_bn_running_var", "bn1.running_var"],
      ]
    ) {
      assert.ok(maxAbsDifference(model.buffers.get(name)!.dataSync(), readArray(CASE, array)) <= 1e-6, array);
    }
  } finally {
    disposeBatchStats(batchStats);
    tf.dispose([x, logits, ...Object.values(activations)]);
    model.dispose();
  }
});

Deno.test("WideResNet batch statistics outlive tf.tidy", { ignore: noGolden }, () => {
  const { model, x } = loadGoldenModel();
  const tensorsBefore = tf.memory().numTensors;
  let stats: BatchNormStats[] = [];
  try {
    const meanLogit = tf.tidy(() => {
      const { logits, batchStats } = model.apply(x, true);
      stats = batchStats;
      return tf.mean(logits);
    });
    meanLogit.dispose();
    assert.equal(stats.length, 25);
    for (const stat of stats) assert.equal(stat.mean.isDisposed, false, stat.name);
    // Only the 50 statistics tensors remain from the forward.
    assert.equal(tf.memory().numTensors, tensorsBefore + 50);
    model.updateRunningStats(stats);
    disposeBatchStats(stats);
    assert.equal(tf.memory().numTensors, tensorsBefore);

    // Statistics of a layer this model does not have are rejected.
    const stale = { ...stats[0], name: "block9.bn1" };
    assert.throws(() => model.updateRunningStats([stale]), /no BN layer named "block9\.bn1"/);
  } finally {
    x.dispose();
    model.dispose();
  }
});

Deno.test("WideResNet rejects NCHW input", () => {
  const model = new WideResNet();
  const x = tf.zeros([1, 3, 32, 32]) as tf.Tensor4D;
  try {
    assert.throws(() => model.apply(x, false), /expected NHWC input \[N, H, W, 3\], got shape \[1,3,32,32\]/);
  } finally {
    x.dispose();
    model.dispose();
  }
});
