/**
 * One MixMatch training step (Berthelot et al., 2019), as TorchSSL's `MixMatch.train()`.
 *
 * Label guessing runs every unlabeled view through the model in train mode
 * without gradient and without touching the BN running statistics, averages
 * the softmax outputs and sharpens them. Labeled and unlabeled rows are then
 * mixed up, interleaved into chunks of the labeled batch size, and each chunk
 * runs as its own forward pass. Only chunk 0 updates the BN running statistics.
 *
 * @example
 * ```ts
 * const lambdaU = mixmatchLambdaU(step, totalSteps);
 * const result = mixmatchStep(model, batch, { lambdaU }, Random.derive(seed, "mixup", step));
 * applyUpdate(model, sgd, ema, result, lr);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { BatchNormStats } from "../nn/wide_resnet.ts";
import { normalizeImages } from "../nn/normalize.ts";
import { Random } from "../random.ts";
import { softCrossEntropy, softmaxMeanSquaredError } from "./losses.ts";
import { drawMixup, mixup, type MixupDraw, sharpen } from "./mixup.ts";
import { interleave, interleaveOrder } from "./interleave.ts";
import {
  accumulateGradients,
  disposeStats,
  parameterGradients,
  readConcatenated,
  sum,
  type TrainableModel,
} from "./_gradients.ts";
import { imageCount, type ImageSize } from "./_batches.ts";
import type { StepOptions, StepResult } from "./train_step.ts";

/** A MixMatch batch: uint8 NHWC RGB images, as produced by the data pipeline. */
export interface MixMatchBatch extends ImageSize {
  /** Labeled images (one augmented view each). */
  labeled: Uint8Array;
  /** Class of each labeled image. */
  labels: Int32Array;
  /** K augmented views of the same unlabeled images (K = 2 in MixMatch), same order in every view. */
  unlabeledViews: Uint8Array[];
}

/** MixMatch hyperparameters; the defaults are TorchSSL's. */
export interface MixMatchConfig {
  /** Weight λu of the unlabeled loss at this step, already ramped (see `mixmatchLambdaU`). */
  lambdaU: number;
  /** Sharpening temperature T (default 0.5). */
  temperature?: number;
  /** Mixup Beta(α, α) parameter (default 0.5, TorchSSL's CIFAR-10 setting). */
  alpha?: number;
  /** Draw one mixup λ per sample instead of one per batch (default false, as TorchSSL). */
  perSampleLambda?: boolean;
}

/** Result of {@linkcode mixmatchStep}. */
export interface MixMatchStepResult extends StepResult {
  /** De-interleaved logits [N, C] of the mixed batch: labeled rows first, then each view's rows. */
  logits: tf.Tensor2D;
  /** Sharpened guess q [unlabeled, C] shared by all views. */
  guessedLabels: tf.Tensor2D;
  /** Mixed, normalised NHWC inputs [N, H, W, 3] before interleaving, N = labeled + K · unlabeled. */
  mixedInputs: tf.Tensor4D;
  /** Mixed targets [N, C]; each row sums to 1. */
  mixedTargets: tf.Tensor2D;
  /** Mixup coefficients and permutation used. */
  mixing: MixupDraw;
}

/** Output of {@linkcode guessLabels}. The caller disposes the tensors. */
export interface LabelGuess {
  /** Train-mode logits of each view. */
  viewLogits: tf.Tensor2D[];
  /** Mean of the views' softmax outputs, renormalised. */
  averageProbs: tf.Tensor2D;
  /** `sharpen(averageProbs, temperature)`. */
  guessedLabels: tf.Tensor2D;
}

/**
 * Guesses labels for unlabeled images from K normalised views [U, H, W, 3]: each view
 * runs in train mode (BN with that view's batch statistics) without gradient, and the
 * BN running statistics are left unchanged, as TorchSSL's `Bn_Controller` freezes them.
 *
 * @example
 * ```ts
 * const guess = guessLabels(model, [view1, view2], 0.5);
 * ```
 */
export function guessLabels(
  model: TrainableModel,
  views: tf.Tensor4D[],
  temperature: number,
  maxForwardImages: number = Infinity,
): LabelGuess {
  if (views.length === 0) throw new Error("guessLabels: no unlabeled views given");
  const viewLogits = views.map((view) => trainModeLogits(model, view, maxForwardImages));
  return tf.tidy(() => {
    // Average the views' predictions, renormalise, then sharpen with temperature T.
    const summed = tf.addN(viewLogits.map((logits) => tf.softmax(logits)));
    const mean = tf.div(summed, tf.scalar(views.length));
    const averageProbs = tf.div(mean, tf.sum(mean, 1, true)) as tf.Tensor2D;
    return { viewLogits, averageProbs, guessedLabels: sharpen(averageProbs, temperature) };
  });
}

/**
 * Computes one MixMatch step and the gradients of `sup_loss + λu · unsup_loss`, where
 * `sup_loss` is the soft cross-entropy on the mixed labeled rows and `unsup_loss` the
 * mean squared error between softmax and mixed targets on the unlabeled rows. The
 * mixup λ and permutation come from `mixing`: a `Random` to draw them, or fixed values.
 * The model is not changed: pass the result to `applyUpdate`.
 *
 * @example
 * ```ts
 * const result = mixmatchStep(model, batch, { lambdaU: 50 }, { lambda: 0.6859, permutation });
 * ```
 */
export async function mixmatchStep(
  model: TrainableModel,
  batch: MixMatchBatch,
  config: MixMatchConfig,
  mixing: Random | MixupDraw,
  options: StepOptions = {},
): Promise<MixMatchStepResult> {
  const temperature = config.temperature ?? 0.5;
  const alpha = config.alpha ?? 0.5;
  const lambdaU = config.lambdaU;
  if (!(lambdaU >= 0) || !Number.isFinite(lambdaU)) {
    throw new RangeError(`mixmatchStep: config.lambdaU must be a finite number >= 0, got ${lambdaU}`);
  }
  const maxForwardImages = options.maxForwardImages ?? Infinity;
  const { labeledCount, unlabeledCount } = checkBatch(batch);
  const views = batch.unlabeledViews.length;
  const total = labeledCount + views * unlabeledCount;

  // Label guessing and mixup (no gradient).
  const draw = mixing instanceof Random ? drawMixup(mixing, total, alpha, config.perSampleLambda ?? false) : mixing;
  const { guessedLabels, mixedInputs, mixedTargets } = guessAndMix(model, batch, draw, temperature, maxForwardImages);
  const numClasses = guessedLabels.shape[1];

  // Interleave so every forward pass mixes labeled and unlabeled rows. Chunk c contains
  // rows order[c · labeled ..] of the mixed batch.
  const numChunks = total / labeledCount;
  const order = interleaveOrder(numChunks, labeledCount);
  const unlabeledElements = (total - labeledCount) * numClasses;

  let grads = new Map<string, tf.Tensor>();
  const runningStatsUpdates: BatchNormStats[][] = [];
  const chunkLogits: tf.Tensor2D[][] = [];
  const supParts: tf.Scalar[] = [];
  const unsupParts: tf.Scalar[] = [];
  try {
    for (let chunk = 0; chunk < numChunks; chunk++) {
      chunkLogits.push([]);
      const chunkRows = order.subarray(chunk * labeledCount, (chunk + 1) * labeledCount);
      for (const rows of splitRows(chunkRows, maxForwardImages)) {
        const part = runPart(model, mixedInputs, mixedTargets, rows, labeledCount, unlabeledElements, lambdaU);
        grads = accumulateGradients(grads, part.grads);
        // Only chunk 0 updates the BN running statistics; TorchSSL freezes them for the other chunks.
        if (chunk === 0) runningStatsUpdates.push(part.stats);
        else disposeStats(part.stats);
        chunkLogits[chunk].push(part.logits);
        supParts.push(part.supLoss);
        unsupParts.push(part.unsupLoss);
      }
    }

    const supLoss = sum(await readConcatenated(supParts));
    const unsupLoss = sum(await readConcatenated(unsupParts));

    // De-interleave: the same swap puts the logits back in mixed-batch order.
    const logits = tf.tidy(() => {
      const chunks = chunkLogits.map((parts) => tf.concat(parts) as tf.Tensor2D);
      return tf.concat(interleave(chunks, labeledCount)) as tf.Tensor2D;
    });
    return {
      grads,
      losses: { sup_loss: supLoss, unsup_loss: unsupLoss, total_loss: supLoss + lambdaU * unsupLoss },
      logits,
      runningStatsUpdates,
      microBatches: supParts.length,
      guessedLabels,
      mixedInputs,
      mixedTargets,
      mixing: draw,
    };
  } catch (error) {
    for (const grad of grads.values()) grad.dispose();
    for (const stats of runningStatsUpdates) disposeStats(stats);
    tf.dispose([guessedLabels, mixedInputs, mixedTargets]);
    throw error;
  } finally {
    tf.dispose([...chunkLogits.flat(), ...supParts, ...unsupParts]);
  }
}

interface MixedBatch {
  guessedLabels: tf.Tensor2D;
  mixedInputs: tf.Tensor4D;
  mixedTargets: tf.Tensor2D;
}

/** Guesses labels for the unlabeled views, then mixes up cat(labeled, views) with cat(onehot, q, ..., q). */
function guessAndMix(
  model: TrainableModel,
  batch: MixMatchBatch,
  draw: MixupDraw,
  temperature: number,
  maxForwardImages: number,
): MixedBatch {
  const height = batch.height ?? 32;
  const width = batch.width ?? 32;
  const labeledInputs = normalizeImages(batch.labeled, batch.labels.length, height, width);
  const unlabeledCount = batch.unlabeledViews[0].length / (height * width * 3);
  const viewInputs = batch.unlabeledViews.map((view) => normalizeImages(view, unlabeledCount, height, width));
  let guess: LabelGuess | null = null;
  try {
    guess = guessLabels(model, viewInputs, temperature, maxForwardImages);
    const guessedLabels = guess.guessedLabels;
    const mixed = tf.tidy(() => {
      const inputs = tf.concat([labeledInputs, ...viewInputs]) as tf.Tensor4D;
      const oneHot = tf.cast(tf.oneHot(tf.tensor1d(batch.labels, "int32"), guessedLabels.shape[1]), "float32");
      const targets = tf.concat([oneHot, ...viewInputs.map(() => guessedLabels)]) as tf.Tensor2D;
      return mixup(inputs, targets, draw);
    });
    return { guessedLabels, ...mixed };
  } catch (error) {
    guess?.guessedLabels.dispose();
    throw error;
  } finally {
    tf.dispose([labeledInputs, ...viewInputs, ...(guess?.viewLogits ?? []), ...(guess ? [guess.averageProbs] : [])]);
  }
}

interface PartResult {
  grads: Map<string, tf.Tensor>;
  stats: BatchNormStats[];
  logits: tf.Tensor2D;
  /** This part's share of the full-batch losses. */
  supLoss: tf.Scalar;
  unsupLoss: tf.Scalar;
}

/** Runs the mixed rows `rows` as one train-mode forward and returns their share of the losses and gradients. */
function runPart(
  model: TrainableModel,
  mixedInputs: tf.Tensor4D,
  mixedTargets: tf.Tensor2D,
  rows: Int32Array,
  labeledCount: number,
  unlabeledElements: number,
  lambdaU: number,
): PartResult {
  const labeledAt = [...rows.keys()].filter((j) => rows[j] < labeledCount);
  const unlabeledAt = [...rows.keys()].filter((j) => rows[j] >= labeledCount);
  const [x, targets] = tf.tidy(() => {
    const index = tf.tensor1d(rows, "int32");
    return [tf.gather(mixedInputs, index) as tf.Tensor4D, tf.gather(mixedTargets, index) as tf.Tensor2D];
  });
  let stats: BatchNormStats[] = [];
  let logits: tf.Tensor2D | null = null;
  let supPart: tf.Scalar | null = null;
  let unsupPart: tf.Scalar | null = null;

  const grads = parameterGradients(model, () => {
    const forward = model.apply(x, true);
    stats = forward.batchStats;
    logits = tf.keep(forward.logits);
    const rowsOf = (at: number[], t: tf.Tensor2D) => tf.gather(t, tf.tensor1d(at, "int32")) as tf.Tensor2D;

    // Supervised loss: soft cross-entropy with the mixed targets, averaged over the labeled batch.
    const supLoss = labeledAt.length === 0 ? tf.scalar(0) : tf.div(
      softCrossEntropy(rowsOf(labeledAt, forward.logits), rowsOf(labeledAt, targets), "sum"),
      tf.scalar(labeledCount),
    );

    // Unsupervised loss: squared error between softmax and mixed targets, averaged over
    // all unlabeled rows and classes.
    const unsupLoss = unlabeledAt.length === 0 ? tf.scalar(0) : tf.div(
      softmaxMeanSquaredError(rowsOf(unlabeledAt, forward.logits), rowsOf(unlabeledAt, targets), "sum"),
      tf.scalar(unlabeledElements),
    );

    supPart = tf.keep(supLoss) as tf.Scalar;
    unsupPart = tf.keep(unsupLoss) as tf.Scalar;

    // Total loss: sup_loss + λu · unsup_loss.
    return tf.add(supLoss, tf.mul(tf.scalar(lambdaU), unsupLoss)) as tf.Scalar;
  });
  tf.dispose([x, targets]);
  return { grads, stats, logits: logits!, supLoss: supPart!, unsupLoss: unsupPart! };
}

/** Train-mode logits of `x` without gradient; BN batch statistics are discarded. */
function trainModeLogits(model: TrainableModel, x: tf.Tensor4D, maxForwardImages: number): tf.Tensor2D {
  const parts = splitRows(Int32Array.from({ length: x.shape[0] }, (_, i) => i), maxForwardImages);
  const logits = parts.map((rows) => {
    const piece = rows.length === x.shape[0]
      ? x
      : tf.tidy(() => tf.gather(x, tf.tensor1d(rows, "int32")) as tf.Tensor4D);
    const forward = model.apply(piece, true);
    disposeStats(forward.batchStats);
    if (piece !== x) piece.dispose();
    return forward.logits;
  });
  if (logits.length === 1) return logits[0];
  const joined = tf.concat(logits) as tf.Tensor2D;
  tf.dispose(logits);
  return joined;
}

/** Splits `rows` into the fewest near-equal contiguous parts of at most `maxImages` rows. */
function splitRows(rows: Int32Array, maxImages: number): Int32Array[] {
  if (!(maxImages >= 1)) throw new RangeError(`maxForwardImages must be >= 1, got ${maxImages}`);
  const parts = Math.max(1, Math.ceil(rows.length / maxImages));
  return Array.from(
    { length: parts },
    (_, i) => rows.subarray(Math.floor((i * rows.length) / parts), Math.floor(((i + 1) * rows.length) / parts)),
  );
}

function checkBatch(batch: MixMatchBatch): { labeledCount: number; unlabeledCount: number } {
  const labeledCount = imageCount("mixmatchStep", "labeled", batch.labeled, batch);
  if (batch.labels.length !== labeledCount) {
    throw new Error(`mixmatchStep: ${batch.labels.length} labels for ${labeledCount} labeled images`);
  }
  if (!Array.isArray(batch.unlabeledViews) || batch.unlabeledViews.length === 0) {
    throw new Error("mixmatchStep: batch.unlabeledViews must hold at least one view (MixMatch uses K = 2)");
  }
  const counts = batch.unlabeledViews.map((view, k) => imageCount("mixmatchStep", `unlabeledViews[${k}]`, view, batch));
  const unlabeledCount = counts[0];
  if (counts.some((count) => count !== unlabeledCount)) {
    throw new Error(`mixmatchStep: every unlabeled view must hold the same images, got counts [${counts}]`);
  }
  if (labeledCount === 0 || unlabeledCount === 0) {
    throw new Error(
      `mixmatchStep: need at least one labeled and one unlabeled image, got ${labeledCount} and ${unlabeledCount}`,
    );
  }
  if ((counts.length * unlabeledCount) % labeledCount !== 0) {
    throw new Error(
      `mixmatchStep: the ${counts.length} x ${unlabeledCount} unlabeled rows must be a multiple of the ` +
        `${labeledCount} labeled rows, because TorchSSL interleaves chunks of the labeled batch size`,
    );
  }
  return { labeledCount, unlabeledCount };
}
