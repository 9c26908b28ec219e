/**
 * The training loop shared by FixMatch and MixMatch: sample and augment a
 * batch, take the algorithm's step, apply SGD, BN running statistics and
 * EMA, log, checkpoint. A rerun resumes from the latest checkpoint and ends
 * with the same weights as an uninterrupted run.
 *
 * @example
 * ```ts
 * const result = await trainModel({ algorithm: "fixmatch", train, labeledIndices, seed: 0, recipe, checkpointDir, log });
 * ```
 * @module
 */

import { Random } from "../random.ts";
import type { ImageSet } from "../data/dataset.ts";
import { WideResNet, type WideResNetOptions } from "../nn/wide_resnet.ts";
import { SGD } from "../optim/sgd.ts";
import { ExponentialMovingAverage } from "../optim/ema.ts";
import { cosineLearningRate, emaDecay, mixmatchLambdaU } from "../optim/schedules.ts";
import { fixmatchStep } from "../algorithms/fixmatch.ts";
import { mixmatchStep } from "../algorithms/mixmatch.ts";
import { applyUpdate, disposeStepResult, type StepLosses, type StepResult } from "../algorithms/train_step.ts";
import { loadLatestCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import type { NamedTensor } from "./tensor_file.ts";
import { type Augmenter, type BatchPlan, fixmatchBatch, inlineAugment, mixmatchBatch } from "./batches.ts";
import { AugmentPool } from "../augment/augment_pool.ts";
import { predictLabels } from "../predict.ts";
import type { FixMatchBatch } from "../algorithms/fixmatch.ts";
import type { MixMatchBatch } from "../algorithms/mixmatch.ts";

/** Optimisation settings (the train section of the config). */
export interface OptimRecipe {
  iterations: number;
  batch_size: number;
  lr: number;
  lr_cycles: number;
  momentum: number;
  nesterov: boolean;
  weight_decay: number;
  ema_decay: number;
  ema_warmup: boolean;
  checkpoint_every: number;
  log_every: number;
}

/** FixMatch settings (the fixmatch section of the config). */
export interface FixMatchRecipe {
  threshold: number;
  uratio: number;
  lambda_u: number;
  randaugment: { num_ops: number; apply_probability: number };
}

/** MixMatch settings (the mixmatch section of the config). */
export interface MixMatchRecipe {
  uratio: number;
  num_views: number;
  temperature: number;
  alpha: number;
  mixup: "batch" | "sample";
  lambda_u: number;
  ramp_up: number;
}

/** Everything one training run needs. */
export interface TrainModelOptions {
  algorithm: "fixmatch" | "mixmatch";
  train: ImageSet;
  labeledIndices: Int32Array;
  seed: number;
  model: WideResNetOptions;
  optim: OptimRecipe;
  fixmatch: FixMatchRecipe;
  mixmatch: MixMatchRecipe;
  /** Images one forward/backward may hold; larger steps are split. */
  maxForwardImages: number;
  /** Worker threads that augment the next batch while the current step trains; 0 augments inline. */
  augmentWorkers: number;
  /** Test accuracy of the EMA model every `every` iterations and at the end; absent: none. */
  evaluation?: PeriodicEvaluation;
  /** Folder for checkpoints; survives interruption. */
  checkpointDir: string;
  log: (message: string) => void;
}

/** Test images for the periodic evaluation during training. */
export interface PeriodicEvaluation {
  test: ImageSet;
  indices: Int32Array;
  every: number;
  batchSize: number;
}

/** One row of the training log. */
export type LogRow = Record<string, number>;

/** The trained model, its EMA and the logs. */
export interface TrainModelResult {
  model: WideResNet;
  ema: ExponentialMovingAverage;
  rows: LogRow[];
  /** Periodic evaluations: iteration and EMA-model test accuracy. */
  evalRows: LogRow[];
  resumedFrom: number;
}

/** Columns of the training log, in CSV order. */
export const LOG_COLUMNS = [
  "iteration",
  "sup_loss",
  "unsup_loss",
  "total_loss",
  "lambda_u",
  "mask_rate",
  "lr",
  "ema_decay",
  "micro_batches",
  "data_wait_s",
  "step_s",
  "img_per_s",
] as const;

function tensorsOf(
  map: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
): Map<string, NamedTensor> {
  return new Map(
    [...map].map(([name, t]) => [name, { shape: t.shape, data: t.data }]),
  );
}

function snapshot(model: WideResNet, sgd: SGD, ema: ExponentialMovingAverage) {
  return {
    model: tensorsOf(model.stateDict()),
    momentum: tensorsOf(sgd.state()),
    ema: tensorsOf(ema.state()),
  };
}

/** The outcome of one algorithm step, before the update is applied. */
interface AlgorithmStep {
  result: StepResult;
  lambdaU: number;
  /** Share of pseudo-labels accepted (FixMatch), NaN for MixMatch. */
  maskRate: number;
}

/** Runs FixMatch's or MixMatch's step on a batch; the model is not changed yet. */
async function algorithmStep(
  options: TrainModelOptions,
  model: WideResNet,
  batch: FixMatchBatch | MixMatchBatch,
  iteration: number,
): Promise<AlgorithmStep> {
  const execution = { maxForwardImages: options.maxForwardImages };
  if (options.algorithm === "fixmatch") {
    const lambdaU = options.fixmatch.lambda_u;
    const config = { threshold: options.fixmatch.threshold, lambdaU };
    const result = await fixmatchStep(model, batch as FixMatchBatch, config, execution);
    return { result, lambdaU, maskRate: result.acceptedRate };
  }
  const { mixmatch, optim } = options;
  const lambdaU = mixmatchLambdaU(iteration, optim.iterations, mixmatch.lambda_u, mixmatch.ramp_up);
  const config = {
    temperature: mixmatch.temperature,
    alpha: mixmatch.alpha,
    lambdaU,
    perSampleLambda: mixmatch.mixup === "sample",
  };
  const mixing = Random.derive(options.seed, "mixup", iteration);
  const result = await mixmatchStep(model, batch as MixMatchBatch, config, mixing, execution);
  return { result, lambdaU, maskRate: NaN };
}

/** Returns a function that samples and augments the batch of an iteration. */
function batchSource(
  options: TrainModelOptions,
  augment: Augmenter,
): (iteration: number) => Promise<FixMatchBatch | MixMatchBatch> {
  const { optim, seed, train, labeledIndices } = options;
  const uratio = options.algorithm === "fixmatch" ? options.fixmatch.uratio : options.mixmatch.uratio;
  return (iteration) => {
    const plan: BatchPlan = { seed, iteration, batchSize: optim.batch_size, uratio };
    if (options.algorithm === "mixmatch") {
      return mixmatchBatch(train, labeledIndices, plan, options.mixmatch.num_views, augment);
    }
    const randAugment = {
      numOps: options.fixmatch.randaugment.num_ops,
      applyProbability: options.fixmatch.randaugment.apply_probability,
    };
    return fixmatchBatch(train, labeledIndices, plan, randAugment, augment);
  };
}

/** Returns how many images one step puts through the network with gradient. */
function imagesPerStep(options: TrainModelOptions): number {
  const { algorithm, optim } = options;
  const uratio = algorithm === "fixmatch" ? options.fixmatch.uratio : options.mixmatch.uratio;
  const views = algorithm === "fixmatch" ? 2 : options.mixmatch.num_views;
  return optim.batch_size * (1 + uratio * views);
}

/** Trains a WideResNet with FixMatch or MixMatch, resuming from a checkpoint if there is one. */
export async function trainModel(options: TrainModelOptions): Promise<TrainModelResult> {
  const { optim, algorithm, seed, log } = options;
  const model = new WideResNet({ ...options.model, seed });
  const sgd = new SGD({
    momentum: optim.momentum,
    nesterov: optim.nesterov,
    weightDecay: optim.weight_decay,
    weightDecayNames: model.weightDecayNames,
  });
  const ema = new ExponentialMovingAverage(model.parameters, optim.ema_decay);
  let rows: LogRow[] = [];
  let evalRows: LogRow[] = [];
  let start = 0;

  const checkpoint = await loadLatestCheckpoint(options.checkpointDir);
  if (checkpoint) {
    model.loadStateDict(checkpoint.model);
    sgd.loadState(checkpoint.momentum);
    ema.loadState(checkpoint.ema);
    rows = checkpoint.logRows;
    evalRows = checkpoint.evalRows;
    start = checkpoint.iteration;
    log(`resuming from checkpoint ${checkpoint.path} at iteration ${start}/${optim.iterations}`);
  }

  const images = imagesPerStep(options);
  const unlabeled = optim.batch_size * (algorithm === "fixmatch" ? options.fixmatch.uratio : options.mixmatch.uratio);
  log(
    `${algorithm}: ${optim.iterations} iterations, batch ${optim.batch_size} labeled + ${unlabeled} unlabeled ` +
      `(${images} images through the network per step); ` +
      (Number.isFinite(options.maxForwardImages) ? `at most ${options.maxForwardImages} images per forward, ` : "") +
      (images > options.maxForwardImages
        ? "so steps are split into micro-batches, each with its own BN batch statistics"
        : "BN statistics cover the whole step as in TorchSSL"),
  );

  const pool = options.augmentWorkers > 0 ? new AugmentPool({ workers: options.augmentWorkers }) : null;
  const prepare = batchSource(options, pool ? (request) => pool.augmentBatch(request) : inlineAugment);
  let next = start < optim.iterations ? prepare(start) : null;
  let lastCheckpoint: string | null = checkpoint?.path ?? null;
  const loopStarted = performance.now();

  try {
    for (let iteration = start; iteration < optim.iterations; iteration++) {
      const dataStarted = performance.now();
      const batch = await next!;
      const dataWait = (performance.now() - dataStarted) / 1000;
      // Augment the next batch in the workers while this step trains.
      next = iteration + 1 < optim.iterations ? prepare(iteration + 1) : null;

      const stepStarted = performance.now();
      const lr = cosineLearningRate(iteration, optim.iterations, optim.lr, optim.lr_cycles);
      const decay = emaDecay(iteration, optim.ema_decay, optim.ema_warmup);
      const { result, lambdaU, maskRate } = await algorithmStep(options, model, batch, iteration);
      const losses = result.losses;
      if (![losses.sup_loss, losses.unsup_loss, losses.total_loss].every(Number.isFinite)) {
        disposeStepResult(result);
        throw new DivergedError(iteration, losses, lastCheckpoint);
      }
      applyUpdate(model, sgd, ema, result, lr, decay);
      const stepSeconds = (performance.now() - stepStarted) / 1000;

      rows.push({
        iteration: iteration + 1,
        sup_loss: losses.sup_loss,
        unsup_loss: losses.unsup_loss,
        total_loss: losses.total_loss,
        lambda_u: lambdaU,
        mask_rate: maskRate,
        lr,
        ema_decay: decay,
        micro_batches: result.microBatches,
        data_wait_s: dataWait,
        step_s: stepSeconds,
        img_per_s: images / (stepSeconds + dataWait),
      });

      const done = iteration + 1;
      if (done % optim.log_every === 0 || done === optim.iterations) {
        const perIteration = (performance.now() - loopStarted) / 1000 / (done - start);
        const eta = perIteration * (optim.iterations - done);
        const mask = Number.isNaN(maskRate) ? "" : ` mask ${maskRate.toFixed(3)}`;
        log(
          `iteration ${done}/${optim.iterations} sup_loss ${losses.sup_loss.toFixed(4)} ` +
            `unsup_loss ${losses.unsup_loss.toFixed(4)}${mask} lr ${lr.toFixed(5)} ` +
            `${(images / perIteration).toFixed(1)} img/s ETA ${formatSeconds(eta)}`,
        );
      }

      const evaluation = options.evaluation;
      if (evaluation && (done % evaluation.every === 0 || done === optim.iterations)) {
        const started = performance.now();
        const accuracy = emaTestAccuracy(model, ema, evaluation);
        evalRows.push({ iteration: done, ema_accuracy: accuracy });
        log(
          `evaluation at iteration ${done}: EMA model top-1 ${(accuracy * 100).toFixed(2)}% on ` +
            `${evaluation.indices.length} test images (${formatSeconds((performance.now() - started) / 1000)})`,
        );
      }

      if (done % optim.checkpoint_every === 0 || done === optim.iterations) {
        const state = snapshot(model, sgd, ema);
        lastCheckpoint = await saveCheckpoint(options.checkpointDir, {
          iteration: done,
          logRows: rows,
          evalRows,
          ...state,
        });
      }
    }
    return { model, ema, rows, evalRows, resumedFrom: start };
  } finally {
    // A prefetch still in flight after an error is abandoned with the pool.
    next?.catch(() => {});
    pool?.close();
    // Momentum buffers are saved in the checkpoints and not needed after training.
    sgd.dispose();
  }
}

function emaTestAccuracy(model: WideResNet, ema: ExponentialMovingAverage, evaluation: PeriodicEvaluation): number {
  const restore = ema.applyTo(model.parameters);
  try {
    const predicted = predictLabels(model, evaluation.test.images, evaluation.indices, evaluation.batchSize);
    let correct = 0;
    for (let i = 0; i < predicted.length; i++) {
      if (predicted[i] === evaluation.test.labels[evaluation.indices[i]]) correct++;
    }
    return correct / predicted.length;
  } finally {
    restore();
  }
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m${Math.round(seconds % 60)}s` : `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}

/** Training produced a NaN or infinite loss. */
export class DivergedError extends Error {
  /** The 1-based iteration whose loss was not finite. */
  readonly iteration: number;
  readonly losses: StepLosses;
  /** Folder of the last checkpoint written before the divergence, or null when there is none. */
  readonly checkpoint: string | null;

  constructor(iteration: number, losses: StepLosses, checkpoint: string | null) {
    // String() rather than JSON.stringify, which would print NaN and Infinity as null.
    const terms = `sup_loss ${String(losses.sup_loss)}, unsup_loss ${String(losses.unsup_loss)}, ` +
      `total_loss ${String(losses.total_loss)}`;
    const checkpointNote = checkpoint === null
      ? "No checkpoint was written before it."
      : `The last checkpoint before it is kept at ${checkpoint}.`;
    super(
      `training diverged at iteration ${iteration + 1}: ${terms}. ${checkpointNote} ` +
        `Lower train.lr (a new cache key, so training starts again) or check the input data, then rerun.`,
    );
    this.name = "DivergedError";
    this.iteration = iteration + 1;
    this.losses = losses;
    this.checkpoint = checkpoint;
  }
}

/** Returns the EMA model's state dict: EMA parameters with the live BN buffers, as TorchSSL evaluates. */
export function emaStateDict(
  model: WideResNet,
  ema: ExponentialMovingAverage,
): Map<string, NamedTensor> {
  const restore = ema.applyTo(model.parameters);
  try {
    return tensorsOf(model.stateDict());
  } finally {
    restore();
  }
}
