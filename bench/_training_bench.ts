/**
 * Times FixMatch and MixMatch training iterations on the active TensorFlow.js
 * backend, as learning/training/train_model.ts runs them: the algorithm's
 * step with micro-batches of at most `maxForwardImages` images, then SGD,
 * the BN running statistics and the EMA (`applyUpdate`).
 *
 * The batches are synthetic uint8 images drawn once from the seed, and the
 * augmentation is skipped, so the times cover the step and the update but not
 * data loading or RandAugment. Every iteration reuses the same batch.
 *
 * @example
 * ```ts
 * import { benchTraining } from "./_training_bench.ts";
 *
 * const result = await benchTraining({
 *   algorithm: "mixmatch", iterations: 1, warmup: 0, batchSize: 8, fixmatchUratio: 7, seed: 0,
 *   maxForwardImages: Infinity,
 * });
 * console.log(result.secondsPerIteration, result.imagesPerSecond);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Random } from "../learning/random.ts";
import { WideResNet, type WideResNetOptions } from "../learning/nn/wide_resnet.ts";
import { SGD } from "../learning/optim/sgd.ts";
import { ExponentialMovingAverage } from "../learning/optim/ema.ts";
import { cosineLearningRate } from "../learning/optim/schedules.ts";
import { type FixMatchBatch, fixmatchStep } from "../learning/algorithms/fixmatch.ts";
import { type MixMatchBatch, mixmatchStep } from "../learning/algorithms/mixmatch.ts";
import { applyUpdate, type StepLosses, type StepResult } from "../learning/algorithms/train_step.ts";

/** A training algorithm the benchmark times. */
export type BenchAlgorithm = "fixmatch" | "mixmatch";

/** Unlabeled images per labeled image in a MixMatch batch (TorchSSL's CIFAR-10 setting). */
export const MIXMATCH_URATIO = 1;

/** Augmented views per unlabeled image in MixMatch (K). */
export const MIXMATCH_VIEWS = 2;

/** MixMatch's unlabeled-loss weight λu after its ramp-up (TorchSSL's CIFAR-10 setting), used at every iteration. */
export const MIXMATCH_LAMBDA_U = 100;

const NUM_CLASSES = 10;

/** Settings of {@link benchTraining}. */
export interface TrainingBenchOptions {
  algorithm: BenchAlgorithm;
  /** Timed iterations. */
  iterations: number;
  /** Iterations run before the timed ones and not timed. */
  warmup: number;
  /** Labeled images per iteration. */
  batchSize: number;
  /** FixMatch's unlabeled images per labeled image (μ). */
  fixmatchUratio: number;
  /** Seed of the model weights, the images and the mixup draws. */
  seed: number;
  /** Images per forward pass; larger steps are split into micro-batches (Infinity: no limit). */
  maxForwardImages: number;
  /** Model options; the default is WRN-28-2. */
  model?: Omit<WideResNetOptions, "seed">;
  /** Side of the square synthetic images in pixels (default 32). */
  imageSize?: number;
  /** Receives one line per iteration. */
  log?: (message: string) => void;
}

/** Tensor counts (`tf.memory().numTensors`) at three points of the run. */
export interface TensorCountTrace {
  /** After the model, SGD and EMA exist, before the first step. */
  start: number;
  /** After the first iteration, which creates the SGD momentum buffers. */
  afterFirst: number;
  /** After the last iteration. */
  end: number;
}

/** Measurements of {@link benchTraining}. */
export interface TrainingMeasurement {
  algorithm: BenchAlgorithm;
  labeledBatchSize: number;
  unlabeledBatchSize: number;
  /** Images through the network with gradient per iteration: labeled + views · unlabeled. */
  imagesPerIteration: number;
  /** Forward passes with gradient per iteration. */
  microBatches: number;
  warmup: number;
  iterations: number;
  /** Seconds of each timed iteration, in order. */
  iterationSeconds: number[];
  /** Median of `iterationSeconds`. */
  secondsPerIteration: number;
  /** `imagesPerIteration / secondsPerIteration`. */
  imagesPerSecond: number;
  /** Losses of the first iteration (warm-up or timed), to compare backends. */
  firstLosses: StepLosses;
  tensors: TensorCountTrace;
}

/**
 * Builds the model, SGD and EMA as training does, then runs `warmup` plus
 * `iterations` training iterations on a synthetic batch and times each one.
 * Uses the active backend and disposes everything it created.
 *
 * @example
 * ```ts
 * const result = await benchTraining({
 *   algorithm: "fixmatch", iterations: 3, warmup: 1, batchSize: 64, fixmatchUratio: 7, seed: 0,
 *   maxForwardImages: 96,
 * });
 * console.log(`${result.imagesPerSecond.toFixed(1)} images/s`);
 * ```
 */
export async function benchTraining(options: TrainingBenchOptions): Promise<TrainingMeasurement> {
  const { algorithm, iterations, warmup, batchSize, seed } = options;
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new RangeError(`benchTraining: iterations must be a positive integer, got ${iterations}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`benchTraining: warmup must be a non-negative integer, got ${warmup}`);
  }
  const log = options.log ?? (() => {});
  const imageSize = options.imageSize ?? 32;
  const uratio = algorithm === "fixmatch" ? options.fixmatchUratio : MIXMATCH_URATIO;
  const unlabeledBatchSize = batchSize * uratio;
  const imagesPerIteration = batchSize + 2 * unlabeledBatchSize;
  const batch = algorithm === "fixmatch"
    ? syntheticFixMatchBatch(seed, batchSize, unlabeledBatchSize, imageSize)
    : syntheticMixMatchBatch(seed, batchSize, unlabeledBatchSize, imageSize);

  // The same objects and settings as trainModel builds from configs/base.yaml.
  const model = new WideResNet({ ...options.model, seed });
  const sgd = new SGD({ momentum: 0.9, nesterov: true, weightDecay: 5e-4, weightDecayNames: model.weightDecayNames });
  const ema = new ExponentialMovingAverage(model.parameters, 0.999);
  const syncTensor = model.parameters.get("fc.bias")!;

  const total = warmup + iterations;
  const iterationSeconds: number[] = [];
  let firstLosses: StepLosses | null = null;
  let microBatches = 0;
  const tensors: TensorCountTrace = { start: tf.memory().numTensors, afterFirst: 0, end: 0 };
  try {
    for (let iteration = 0; iteration < total; iteration++) {
      const started = performance.now();
      const result = await runStep(algorithm, model, batch, seed, iteration, options.maxForwardImages);
      firstLosses ??= { ...result.losses };
      microBatches = result.microBatches;
      applyUpdate(model, sgd, ema, result, cosineLearningRate(iteration, total));
      // Reading a parameter waits for the update on backends that run asynchronously.
      await syncTensor.data();
      const seconds = (performance.now() - started) / 1000;

      if (iteration === 0) tensors.afterFirst = tf.memory().numTensors;
      const timed = iteration >= warmup;
      if (timed) iterationSeconds.push(seconds);
      log(
        `${algorithm} ${timed ? "iteration" : "warm-up"} ${timed ? iteration - warmup + 1 : iteration + 1}/` +
          `${timed ? iterations : warmup}: ${seconds.toFixed(2)} s, total_loss ${result.losses.total_loss.toFixed(4)}`,
      );
    }
    tensors.end = tf.memory().numTensors;
  } finally {
    sgd.dispose();
    ema.dispose();
    model.dispose();
  }

  const secondsPerIteration = median(iterationSeconds);
  return {
    algorithm,
    labeledBatchSize: batchSize,
    unlabeledBatchSize,
    imagesPerIteration,
    microBatches,
    warmup,
    iterations,
    iterationSeconds,
    secondsPerIteration,
    imagesPerSecond: imagesPerIteration / secondsPerIteration,
    firstLosses: firstLosses!,
    tensors,
  };
}

function runStep(
  algorithm: BenchAlgorithm,
  model: WideResNet,
  batch: FixMatchBatch | MixMatchBatch,
  seed: number,
  iteration: number,
  maxForwardImages: number,
): Promise<StepResult> {
  const execution = { maxForwardImages };
  if (algorithm === "fixmatch") {
    return fixmatchStep(model, batch as FixMatchBatch, { threshold: 0.95, lambdaU: 1 }, execution);
  }
  const config = { lambdaU: MIXMATCH_LAMBDA_U, temperature: 0.5, alpha: 0.5 };
  const mixing = Random.derive(seed, "mixup", iteration);
  return mixmatchStep(model, batch as MixMatchBatch, config, mixing, execution);
}

function randomImages(random: Random, count: number, imageSize: number): Uint8Array {
  const images = new Uint8Array(count * imageSize * imageSize * 3);
  for (let i = 0; i < images.length; i++) images[i] = random.int(256);
  return images;
}

function randomLabels(random: Random, count: number): Int32Array {
  return Int32Array.from({ length: count }, () => random.int(NUM_CLASSES));
}

/**
 * Draws a FixMatch batch of uniform random pixels: `labeled` labeled images
 * and `unlabeled` weak and strong views.
 *
 * @example
 * ```ts
 * const batch = syntheticFixMatchBatch(0, 64, 448);
 * console.log(batch.strong.length); // 448 * 32 * 32 * 3
 * ```
 */
export function syntheticFixMatchBatch(
  seed: number,
  labeled: number,
  unlabeled: number,
  imageSize = 32,
): FixMatchBatch {
  const random = Random.derive(seed, "bench", "fixmatch_batch");
  return {
    labeled: randomImages(random, labeled, imageSize),
    labels: randomLabels(random, labeled),
    weak: randomImages(random, unlabeled, imageSize),
    strong: randomImages(random, unlabeled, imageSize),
    height: imageSize,
    width: imageSize,
  };
}

/**
 * Draws a MixMatch batch of uniform random pixels: `labeled` labeled images
 * and {@link MIXMATCH_VIEWS} views of `unlabeled` images.
 *
 * @example
 * ```ts
 * const batch = syntheticMixMatchBatch(0, 64, 64);
 * console.log(batch.unlabeledViews.length); // 2
 * ```
 */
export function syntheticMixMatchBatch(
  seed: number,
  labeled: number,
  unlabeled: number,
  imageSize = 32,
): MixMatchBatch {
  const random = Random.derive(seed, "bench", "mixmatch_batch");
  return {
    labeled: randomImages(random, labeled, imageSize),
    labels: randomLabels(random, labeled),
    unlabeledViews: Array.from({ length: MIXMATCH_VIEWS }, () => randomImages(random, unlabeled, imageSize)),
    height: imageSize,
    width: imageSize,
  };
}

/**
 * Returns the median of `values` (the mean of the two middle values for an
 * even count).
 *
 * @example
 * ```ts
 * median([3, 1, 2]); // 2
 * median([4, 1, 3, 2]); // 2.5
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median: no values given");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Reads the process's peak resident set size (`VmHWM` in /proc/self/status)
 * in bytes; returns null where that file is missing (not Linux).
 *
 * @example
 * ```ts
 * const bytes = await readPeakRssBytes();
 * console.log(bytes === null ? "unknown" : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
 * ```
 */
export async function readPeakRssBytes(): Promise<number | null> {
  let status: string;
  try {
    status = await Deno.readTextFile("/proc/self/status");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : null;
}
