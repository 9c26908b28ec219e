/**
 * Memory over many training steps on the wasm backend: after the first step,
 * which creates the SGD momentum buffers, `tf.memory()` (tensors and bytes)
 * and the backend's buffer count must stay the same after every step.
 *
 * The model is a small WideResNet (depth 10, width 1) on 8x8 images, and the
 * batch is split into micro-batches so the gradient accumulation runs too.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../learning/backend/backends.ts";
import { type FixMatchBatch, fixmatchStep } from "../learning/algorithms/fixmatch.ts";
import { type MixMatchBatch, mixmatchStep } from "../learning/algorithms/mixmatch.ts";
import { applyUpdate, type StepResult } from "../learning/algorithms/train_step.ts";
import { WideResNet } from "../learning/nn/wide_resnet.ts";
import { SGD } from "../learning/optim/sgd.ts";
import { ExponentialMovingAverage } from "../learning/optim/ema.ts";
import { cosineLearningRate } from "../learning/optim/schedules.ts";
import { Random } from "../learning/random.ts";

await initBackend("wasm");

const IMAGE_SIZE = 8;
const LABELED = 4;
const UNLABELED = 8;
/** 4 labeled + 2 x 8 unlabeled = 20 images, so FixMatch runs 2 micro-batches of 10. */
const MAX_FORWARD_IMAGES = 12;
const MAX_STEPS = 100;
/** Stop early after this long, so a slow machine still finishes in about 20 s per test. */
const TIME_BUDGET_MS = 20_000;
const MIN_STEPS = 10;

interface MemorySnapshot {
  numTensors: number;
  numBytes: number;
  numDataIds: number;
}

function memorySnapshot(): MemorySnapshot {
  const memory = tf.memory();
  return { numTensors: memory.numTensors, numBytes: memory.numBytes, numDataIds: tf.engine().backend.numDataIds() };
}

function randomImages(random: Random, count: number): Uint8Array {
  return Uint8Array.from({ length: count * IMAGE_SIZE * IMAGE_SIZE * 3 }, () => random.int(256));
}

/**
 * Runs `step` then the update as the trainer does, up to {@link MAX_STEPS}
 * times, and asserts that memory after each step equals memory after step 1.
 * Returns the number of steps run.
 */
async function assertFlatMemory(step: (model: WideResNet, iteration: number) => Promise<StepResult>): Promise<number> {
  const start = memorySnapshot();
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 3 });
  const sgd = new SGD({ weightDecayNames: model.weightDecayNames });
  const ema = new ExponentialMovingAverage(model.parameters, 0.999);
  const started = performance.now();
  let steps = 0;
  try {
    let afterFirst: MemorySnapshot | null = null;
    for (let iteration = 0; iteration < MAX_STEPS; iteration++) {
      const result = await step(model, iteration);
      assert.ok(Number.isFinite(result.losses.total_loss), `total_loss at step ${iteration + 1}`);
      applyUpdate(model, sgd, ema, result, cosineLearningRate(iteration, MAX_STEPS));
      steps++;
      const now = memorySnapshot();
      if (afterFirst === null) {
        afterFirst = now;
      } else {
        assert.equal(now.numTensors, afterFirst.numTensors, `numTensors after step ${steps}`);
        assert.equal(now.numBytes, afterFirst.numBytes, `numBytes after step ${steps}`);
        assert.equal(now.numDataIds, afterFirst.numDataIds, `backend buffers after step ${steps}`);
      }
      if (performance.now() - started > TIME_BUDGET_MS && steps >= MIN_STEPS) break;
    }
  } finally {
    sgd.dispose();
    ema.dispose();
    model.dispose();
  }
  const end = memorySnapshot();
  assert.equal(end.numTensors, start.numTensors, "numTensors after disposing model, SGD and EMA");
  assert.equal(end.numBytes, start.numBytes, "numBytes after disposing model, SGD and EMA");
  return steps;
}

Deno.test("fixmatch steps keep wasm memory flat", async () => {
  const random = new Random(11);
  const batch: FixMatchBatch = {
    labeled: randomImages(random, LABELED),
    labels: Int32Array.from({ length: LABELED }, () => random.int(10)),
    weak: randomImages(random, UNLABELED),
    strong: randomImages(random, UNLABELED),
    height: IMAGE_SIZE,
    width: IMAGE_SIZE,
  };
  let microBatches = 0;
  // Threshold 0.1 accepts pseudo-labels, so the masked unlabeled loss has gradients.
  const steps = await assertFlatMemory(async (model) => {
    const result = await fixmatchStep(model, batch, { threshold: 0.1 }, { maxForwardImages: MAX_FORWARD_IMAGES });
    microBatches = result.microBatches;
    return result;
  });
  assert.equal(microBatches, 2);
  assert.ok(steps >= MIN_STEPS, `ran ${steps} steps`);
});

Deno.test("mixmatch steps keep wasm memory flat", async () => {
  const random = new Random(12);
  const batch: MixMatchBatch = {
    labeled: randomImages(random, LABELED),
    labels: Int32Array.from({ length: LABELED }, () => random.int(10)),
    unlabeledViews: [randomImages(random, LABELED), randomImages(random, LABELED)],
    height: IMAGE_SIZE,
    width: IMAGE_SIZE,
  };
  const steps = await assertFlatMemory((model, iteration) =>
    mixmatchStep(model, batch, { lambdaU: 100 }, Random.derive(12, "mixup", iteration), { maxForwardImages: 3 })
  );
  assert.ok(steps >= MIN_STEPS, `ran ${steps} steps`);
});
