/**
 * FixMatch step on a small WideResNet (depth 10, width 1): mask and accepted
 * rate, micro-batch splitting, and tensor leaks over repeated updates.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type FixMatchBatch, fixmatchStep } from "../learning/algorithms/fixmatch.ts";
import { applyUpdate, disposeStepResult } from "../learning/algorithms/train_step.ts";
import { WideResNet } from "../learning/nn/wide_resnet.ts";
import { SGD } from "../learning/optim/sgd.ts";
import { ExponentialMovingAverage } from "../learning/optim/ema.ts";
import { Random } from "../learning/random.ts";
import { registerCpuTrainingKernels } from "../learning/backend/cpu_kernels.ts";

await tf.setBackend("cpu");
registerCpuTrainingKernels();

const IMAGE_BYTES = 32 * 32 * 3;

function randomImages(random: Random, count: number): Uint8Array {
  return Uint8Array.from({ length: count * IMAGE_BYTES }, () => random.int(256));
}

function randomBatch(seed: number, labeled: number, unlabeled: number): FixMatchBatch {
  const random = new Random(seed);
  return {
    labeled: randomImages(random, labeled),
    labels: Int32Array.from({ length: labeled }, () => random.int(10)),
    weak: randomImages(random, unlabeled),
    strong: randomImages(random, unlabeled),
  };
}

/** Repeats every image (and label) of a batch twice: [a, b] -> [a, b, a, b]. */
function doubled(batch: FixMatchBatch): FixMatchBatch {
  const twice = (images: Uint8Array) => {
    const out = new Uint8Array(images.length * 2);
    out.set(images);
    out.set(images, images.length);
    return out;
  };
  const labels = new Int32Array(batch.labels.length * 2);
  labels.set(batch.labels);
  labels.set(batch.labels, batch.labels.length);
  return { labeled: twice(batch.labeled), labels, weak: twice(batch.weak), strong: twice(batch.strong) };
}

function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let error = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    error += (a[i] - b[i]) ** 2;
    norm += b[i] ** 2;
  }
  return Math.sqrt(error / Math.max(norm, 1e-30));
}

Deno.test("fixmatch accepted rate follows the threshold", async () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 1 });
  const batch = randomBatch(2, 4, 8);
  const first = await fixmatchStep(model, batch, { threshold: 0.95 });
  const confidence = first.confidence;
  const lowest = Math.min(...confidence);
  const highest = Math.max(...confidence);
  assert.equal(confidence.length, 8);
  assert.ok(highest < 1, `confidences ${confidence}`);
  assert.ok(lowest > 0.1, `confidences ${confidence}`);
  disposeStepResult(first);

  // Every confidence is at or above the lowest one: everything is accepted.
  const all = await fixmatchStep(model, batch, { threshold: lowest });
  assert.equal(all.acceptedRate, 1);
  assert.deepEqual([...all.mask], new Array(8).fill(1));
  assert.ok(all.losses.unsup_loss > 0);

  const none = await fixmatchStep(model, batch, { threshold: Math.min(1, highest + 1e-6) });
  assert.equal(none.acceptedRate, 0);
  assert.equal(none.losses.unsup_loss, 0);
  assert.equal(none.losses.total_loss, none.losses.sup_loss);
  assert.deepEqual([...none.pseudoLabels], [...all.pseudoLabels]);

  // λu scales only the unlabeled term.
  const weighted = await fixmatchStep(model, batch, { threshold: lowest, lambdaU: 2 });
  assert.ok(Math.abs(weighted.losses.total_loss - (all.losses.sup_loss + 2 * all.losses.unsup_loss)) < 1e-6);
  [all, none, weighted].forEach(disposeStepResult);
  model.dispose();
});

Deno.test("fixmatch micro-batches sum to the full-batch gradient", async () => {
  // A doubled batch split into its two identical halves: each micro-batch has the
  // same BN batch statistics as the whole batch, so splitting must not change anything.
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 4 });
  const batch = doubled(randomBatch(5, 2, 3));
  const whole = await fixmatchStep(model, batch, { threshold: 0 });
  const split = await fixmatchStep(model, batch, { threshold: 0 }, { maxForwardImages: 8 });
  assert.equal(whole.microBatches, 1);
  assert.equal(split.microBatches, 2);
  assert.equal(split.runningStatsUpdates.length, 2);
  for (const key of ["sup_loss", "unsup_loss", "total_loss"] as const) {
    assert.ok(
      Math.abs(split.losses[key] - whole.losses[key]) < 1e-6,
      `${key}: ${split.losses[key]} vs ${whole.losses[key]}`,
    );
  }
  assert.ok(relativeDifference(split.logits.dataSync(), whole.logits.dataSync()) < 1e-6, "logits");
  assert.deepEqual([...split.pseudoLabels], [...whole.pseudoLabels]);
  assert.deepEqual([...split.grads.keys()], [...whole.grads.keys()]);
  for (const [name, grad] of whole.grads) {
    const expected = grad.dataSync();
    const actual = split.grads.get(name)!.dataSync();
    if (Math.hypot(...expected) < 1e-5) {
      // Conv biases followed by a train-mode BN: exact gradient 0, float32 noise only.
      assert.ok(actual.every((value) => Math.abs(value) < 1e-5), `${name}: gradient should be ~0`);
      continue;
    }
    const error = relativeDifference(actual, expected);
    assert.ok(error < 1e-4, `${name}: relative difference ${error}`);
  }
  disposeStepResult(whole);
  disposeStepResult(split);

  const uneven = await fixmatchStep(model, randomBatch(6, 5, 7), { threshold: 0.5 }, { maxForwardImages: 5 });
  assert.equal(uneven.microBatches, 5);
  assert.deepEqual(uneven.logits.shape, [19, 10]);
  assert.equal(uneven.pseudoLabels.length, 7);
  disposeStepResult(uneven);

  // One labeled image over four micro-batches: three of them have no labeled rows.
  const sparse = await fixmatchStep(model, randomBatch(7, 1, 4), { threshold: 0 }, { maxForwardImages: 3 });
  assert.equal(sparse.microBatches, 4);
  assert.deepEqual(sparse.logits.shape, [9, 10]);
  assert.ok(sparse.losses.sup_loss > 0, `sup_loss ${sparse.losses.sup_loss}`);
  assert.ok(Number.isFinite(sparse.losses.unsup_loss), `unsup_loss ${sparse.losses.unsup_loss}`);
  disposeStepResult(sparse);
  await assert.rejects(
    () => fixmatchStep(model, randomBatch(6, 4, 2), {}, { maxForwardImages: 2 }),
    /maxForwardImages 2 is too small/,
  );
  model.dispose();
});

Deno.test("fixmatch updates leak no tensors", async () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 7 });
  const sgd = new SGD({ weightDecayNames: model.weightDecayNames });
  const ema = new ExponentialMovingAverage(model.parameters, 0.999);
  const counts: number[] = [];
  for (let step = 0; step < 4; step++) {
    const result = await fixmatchStep(model, randomBatch(10 + step, 2, 4), { threshold: 0.1 }, {
      maxForwardImages: step % 2 ? 5 : 100,
    });
    applyUpdate(model, sgd, ema, result, 0.03);
    counts.push(tf.memory().numTensors);
  }
  // Step 0 creates the momentum buffers; afterwards the count must stay flat.
  assert.deepEqual(counts.slice(1), [counts[1], counts[1], counts[1]], `tensor counts ${counts}`);
  sgd.dispose();
  ema.dispose();
  model.dispose();
});

Deno.test("fixmatch rejects malformed batches", async () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 8 });
  const batch = randomBatch(9, 2, 2);
  await assert.rejects(
    () => fixmatchStep(model, { ...batch, labels: new Int32Array(3) }),
    /3 labels for 2 labeled images/,
  );
  await assert.rejects(
    () => fixmatchStep(model, { ...batch, strong: batch.strong.subarray(IMAGE_BYTES) }),
    /1 strong views for 2 weak views/,
  );
  await assert.rejects(() => fixmatchStep(model, { ...batch, weak: batch.weak.subarray(1) }), /whole 32x32 RGB images/);
  await assert.rejects(() => fixmatchStep(model, batch, { threshold: 1.5 }), /threshold must be in \[0, 1\]/);
  model.dispose();
});
