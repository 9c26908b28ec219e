/**
 * MixMatch step on a small WideResNet (depth 10, width 1): label guessing
 * leaves the BN running statistics alone, seeded mixup draws, micro-batch
 * splitting of interleaved chunks, and tensor leaks over repeated updates.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { guessLabels, type MixMatchBatch, mixmatchStep } from "../learning/algorithms/mixmatch.ts";
import { applyUpdate, disposeStepResult } from "../learning/algorithms/train_step.ts";
import { WideResNet } from "../learning/nn/wide_resnet.ts";
import { normalizeImages } from "../learning/nn/normalize.ts";
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

function randomBatch(seed: number, labeled: number, unlabeled: number): MixMatchBatch {
  const random = new Random(seed);
  return {
    labeled: randomImages(random, labeled),
    labels: Int32Array.from({ length: labeled }, () => random.int(10)),
    unlabeledViews: [randomImages(random, unlabeled), randomImages(random, unlabeled)],
  };
}

function concatImages(...images: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(images.length * IMAGE_BYTES);
  images.forEach((image, i) => out.set(image, i * IMAGE_BYTES));
  return out;
}

function buffersOf(model: WideResNet): Map<string, Float32Array> {
  return new Map([...model.buffers].map(([name, buffer]) => [name, Float32Array.from(buffer.dataSync())]));
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

Deno.test("mixmatch guessing keeps bn running stats", () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 1 });
  const before = buffersOf(model);
  const batch = randomBatch(2, 4, 4);
  const views = batch.unlabeledViews.map((view) => normalizeImages(view, 4));
  const guess = guessLabels(model, views, 0.5);
  for (const [name, values] of buffersOf(model)) {
    assert.deepEqual(values, before.get(name), `${name} changed`);
  }
  const sums = tf.sum(guess.guessedLabels, 1);
  assert.ok(sums.dataSync().every((sum) => Math.abs(sum - 1) < 1e-6), "guessed labels sum to 1");
  // Sharpening with T = 0.5 never lowers the top probability.
  const sharpTop = tf.max(guess.guessedLabels, 1).dataSync();
  const averageTop = tf.max(guess.averageProbs, 1).dataSync();
  for (let i = 0; i < 4; i++) assert.ok(sharpTop[i] >= averageTop[i] - 1e-7, `row ${i}`);

  // A view split into two forward passes is normalised with each half's statistics.
  const split = guessLabels(model, views, 0.5, 2);
  assert.ok(relativeDifference(split.viewLogits[0].dataSync(), guess.viewLogits[0].dataSync()) > 1e-3);
  tf.dispose([...views, ...guess.viewLogits, guess.averageProbs, guess.guessedLabels, sums]);
  tf.dispose([...split.viewLogits, split.averageProbs, split.guessedLabels]);
  model.dispose();
});

Deno.test("mixmatch seeded mixup draws", async () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 3 });
  const batch = randomBatch(4, 2, 2);
  const first = await mixmatchStep(model, batch, { lambdaU: 10 }, Random.derive(0, "mixup", 5));
  const again = await mixmatchStep(model, batch, { lambdaU: 10 }, Random.derive(0, "mixup", 5));
  assert.equal(first.mixing.lambda, again.mixing.lambda);
  assert.deepEqual([...first.mixing.permutation], [...again.mixing.permutation]);
  assert.equal(first.losses.total_loss, again.losses.total_loss);
  const lambda = first.mixing.lambda as number;
  assert.ok(lambda >= 0.5, `lambda ${lambda}`);
  assert.ok(lambda <= 1, `lambda ${lambda}`);
  assert.deepEqual(first.mixedInputs.shape, [6, 32, 32, 3]);
  assert.deepEqual(first.logits.shape, [6, 10]);
  assert.equal(first.microBatches, 3);
  assert.equal(first.runningStatsUpdates.length, 1);
  const sums = tf.sum(first.mixedTargets, 1);
  assert.ok(sums.dataSync().every((sum) => Math.abs(sum - 1) < 1e-6), "mixed targets sum to 1");
  assert.ok(
    Math.abs(first.losses.total_loss - (first.losses.sup_loss + 10 * first.losses.unsup_loss)) < 1e-6,
    "total = sup + λu · unsup",
  );

  const perSample = await mixmatchStep(
    model,
    batch,
    { lambdaU: 10, perSampleLambda: true },
    Random.derive(0, "mixup", 5),
  );
  assert.ok(perSample.mixing.lambda instanceof Float64Array);
  assert.equal(perSample.mixing.lambda.length, 6);
  assert.ok(perSample.mixing.lambda.every((value) => value >= 0.5 && value <= 1));
  [first, again, perSample].forEach(disposeStepResult);
  sums.dispose();
  model.dispose();
});

Deno.test("mixmatch split chunks match unsplit", async () => {
  // With λ = 1 and the identity permutation the mixed batch is the input batch.
  // Images are chosen so that every half of every interleaved chunk (rows
  // [0, 5 | 10, 11], [4, 1 | 6, 7], [8, 9 | 2, 3]) and every half of each view
  // contains the same images as the whole, so halves have the same BN statistics.
  const random = new Random(6);
  const [a, b, u] = [randomImages(random, 1), randomImages(random, 1), randomImages(random, 1)];
  const batch: MixMatchBatch = {
    labeled: concatImages(a, b, a, b),
    labels: Int32Array.from([3, 7, 3, 7]),
    unlabeledViews: [concatImages(u, b, u, b), concatImages(a, b, a, b)],
  };
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 5 });
  const mixing = { lambda: 1, permutation: Int32Array.from({ length: 12 }, (_, i) => i) };
  const whole = await mixmatchStep(model, batch, { lambdaU: 30 }, mixing);
  const split = await mixmatchStep(model, batch, { lambdaU: 30 }, mixing, { maxForwardImages: 2 });
  assert.equal(whole.microBatches, 3);
  assert.equal(split.microBatches, 6);
  assert.equal(split.runningStatsUpdates.length, 2, "both halves of chunk 0 update the running stats");
  for (const key of ["sup_loss", "unsup_loss", "total_loss"] as const) {
    assert.ok(
      Math.abs(split.losses[key] - whole.losses[key]) < 1e-6,
      `${key}: ${split.losses[key]} vs ${whole.losses[key]}`,
    );
  }
  assert.ok(relativeDifference(split.guessedLabels.dataSync(), whole.guessedLabels.dataSync()) < 1e-6, "guesses");
  assert.ok(relativeDifference(split.logits.dataSync(), whole.logits.dataSync()) < 1e-6, "logits");
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
  model.dispose();
});

Deno.test("mixmatch updates leak no tensors", async () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 7 });
  const sgd = new SGD({ weightDecayNames: model.weightDecayNames });
  const ema = new ExponentialMovingAverage(model.parameters, 0.999);
  const counts: number[] = [];
  for (let step = 0; step < 4; step++) {
    const result = await mixmatchStep(
      model,
      randomBatch(20 + step, 2, 2),
      { lambdaU: 5 },
      Random.derive(1, "mixup", step),
      { maxForwardImages: step % 2 ? 1 : 64 },
    );
    applyUpdate(model, sgd, ema, result, 0.03);
    counts.push(tf.memory().numTensors);
  }
  // Step 0 creates the momentum buffers; afterwards the count must stay flat.
  assert.deepEqual(counts.slice(1), [counts[1], counts[1], counts[1]], `tensor counts ${counts}`);
  sgd.dispose();
  ema.dispose();
  model.dispose();
});

Deno.test("mixmatch rejects malformed batches", async () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 8 });
  const batch = randomBatch(9, 2, 2);
  await assert.rejects(
    () =>
      mixmatchStep(
        model,
        { ...randomBatch(9, 2, 3), unlabeledViews: [randomImages(new Random(1), 3)] },
        { lambdaU: 1 },
        new Random(0),
      ),
    /the 1 x 3 unlabeled rows must be a multiple of the 2 labeled rows/,
  );
  await assert.rejects(
    () => mixmatchStep(model, { ...batch, unlabeledViews: [] }, { lambdaU: 1 }, new Random(0)),
    /at least one view/,
  );
  await assert.rejects(() => mixmatchStep(model, batch, { lambdaU: Number.NaN }, new Random(0)), /lambdaU must be/);
  await assert.rejects(
    () => mixmatchStep(model, batch, { lambdaU: 1 }, { lambda: 0.7, permutation: Int32Array.from([0, 1, 2, 3, 4, 4]) }),
    /not a permutation/,
  );
  model.dispose();
});
