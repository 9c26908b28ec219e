/**
 * One FixMatch training step (Sohn et al., 2020), as TorchSSL's `FixMatch.train()`.
 *
 * The labeled batch, the weak views and the strong views go through the model
 * in one train-mode forward, so BN normalises with statistics over all of them.
 * The weak view's prediction becomes a hard pseudo-label for the strong view
 * when its confidence reaches the threshold.
 *
 * @example
 * ```ts
 * const result = fixmatchStep(model, batch, { threshold: 0.95, lambdaU: 1 });
 * applyUpdate(model, sgd, ema, result, lr);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { BatchNormStats } from "../nn/wide_resnet.ts";
import { normalizeImages } from "../nn/normalize.ts";
import { crossEntropy, maskedPseudoLabelCrossEntropy, stopGradient } from "./losses.ts";
import {
  accumulateGradients,
  disposeStats,
  parameterGradients,
  readConcatenated,
  sum,
  type TrainableModel,
} from "./_gradients.ts";
import { imageCount, type ImageSize, type MicroBatch, planMicroBatches } from "./_batches.ts";
import type { StepOptions, StepResult } from "./train_step.ts";

export type { StepOptions } from "./train_step.ts";

/** A FixMatch batch: uint8 NHWC RGB images, as produced by the data pipeline. */
export interface FixMatchBatch extends ImageSize {
  /** Labeled images. */
  labeled: Uint8Array;
  /** Class of each labeled image. */
  labels: Int32Array;
  /** Weakly augmented unlabeled images (flip and crop). */
  weak: Uint8Array;
  /** Strongly augmented views of the same unlabeled images (RandAugment and Cutout), same order. */
  strong: Uint8Array;
}

/** FixMatch hyperparameters; the defaults are TorchSSL's. */
export interface FixMatchConfig {
  /** Confidence a weak-view prediction needs to become a pseudo-label (default 0.95). */
  threshold?: number;
  /** Weight λu of the unlabeled loss (default 1). */
  lambdaU?: number;
}

/** Result of {@linkcode fixmatchStep}. */
export interface FixMatchStepResult extends StepResult {
  /** Logits [labeled + 2 · unlabeled, C]: labeled rows, then weak, then strong. */
  logits: tf.Tensor2D;
  /** Argmax of the weak-view prediction per unlabeled image. */
  pseudoLabels: Int32Array;
  /** Weak-view confidence (maximum softmax probability) per unlabeled image. */
  confidence: Float32Array;
  /** 1 where the pseudo-label was accepted (confidence >= threshold), else 0. */
  mask: Float32Array;
  /**
   * Share of unlabeled images whose pseudo-label was accepted (mean of `mask`).
   * TorchSSL logs `1 − acceptedRate` as `train/mask_ratio`.
   */
  acceptedRate: number;
}

/**
 * Computes one FixMatch step: `sup_loss` = cross-entropy on the labeled batch,
 * `unsup_loss` = masked pseudo-label cross-entropy on the strong views, and the
 * gradients of `sup_loss + λu · unsup_loss`. The model is not changed: pass the
 * result to `applyUpdate`.
 *
 * @example
 * ```ts
 * const result = fixmatchStep(model, batch, { threshold: 0.95 }, { maxForwardImages: 256 });
 * ```
 */
export async function fixmatchStep(
  model: TrainableModel,
  batch: FixMatchBatch,
  config: FixMatchConfig = {},
  options: StepOptions = {},
): Promise<FixMatchStepResult> {
  const threshold = config.threshold ?? 0.95;
  const lambdaU = config.lambdaU ?? 1;
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new RangeError(`fixmatchStep: threshold must be in [0, 1], got ${threshold}`);
  }
  if (!(lambdaU >= 0) || !Number.isFinite(lambdaU)) {
    throw new RangeError(`fixmatchStep: lambdaU must be a finite number >= 0, got ${lambdaU}`);
  }
  const { labeledCount, unlabeledCount } = checkBatch(batch);
  const plan = planMicroBatches(labeledCount, unlabeledCount, 2, options.maxForwardImages);

  let grads = new Map<string, tf.Tensor>();
  const runningStatsUpdates: BatchNormStats[][] = [];
  const parts: MicroBatchResult[] = [];
  try {
    for (const micro of plan) {
      const part = runMicroBatch(model, batch, micro, { labeledCount, unlabeledCount, threshold, lambdaU });
      grads = accumulateGradients(grads, part.grads);
      runningStatsUpdates.push(part.stats);
      parts.push(part);
    }

    const [supParts, unsupParts, pseudoLabels, confidence, mask] = await Promise.all([
      readConcatenated(parts.map((part) => part.supLoss)),
      readConcatenated(parts.map((part) => part.unsupLoss)),
      readConcatenated(parts.map((part) => part.pseudoLabels)),
      readConcatenated(parts.map((part) => part.confidence)),
      readConcatenated(parts.map((part) => part.mask)),
    ]);
    const supLoss = sum(supParts);
    const unsupLoss = sum(unsupParts);
    const logits = tf.concat([
      ...parts.map((part) => part.logitsLabeled),
      ...parts.map((part) => part.logitsWeak),
      ...parts.map((part) => part.logitsStrong),
    ]) as tf.Tensor2D;
    return {
      grads,
      losses: { sup_loss: supLoss, unsup_loss: unsupLoss, total_loss: supLoss + lambdaU * unsupLoss },
      logits,
      runningStatsUpdates,
      microBatches: plan.length,
      pseudoLabels: Int32Array.from(pseudoLabels),
      confidence: Float32Array.from(confidence),
      mask: Float32Array.from(mask),
      acceptedRate: sum(mask) / mask.length,
    };
  } catch (error) {
    for (const grad of grads.values()) grad.dispose();
    for (const stats of runningStatsUpdates) disposeStats(stats);
    throw error;
  } finally {
    for (const part of parts) {
      tf.dispose([
        part.logitsLabeled,
        part.logitsWeak,
        part.logitsStrong,
        part.pseudoLabels,
        part.confidence,
        part.mask,
        part.supLoss,
        part.unsupLoss,
      ]);
    }
  }
}

interface MicroBatchResult {
  grads: Map<string, tf.Tensor>;
  stats: BatchNormStats[];
  /** This micro-batch's share of the full-batch losses. */
  supLoss: tf.Scalar;
  unsupLoss: tf.Scalar;
  logitsLabeled: tf.Tensor2D;
  logitsWeak: tf.Tensor2D;
  logitsStrong: tf.Tensor2D;
  pseudoLabels: tf.Tensor1D;
  confidence: tf.Tensor1D;
  mask: tf.Tensor1D;
}

interface LossSettings {
  labeledCount: number;
  unlabeledCount: number;
  threshold: number;
  lambdaU: number;
}

/**
 * Runs one train-mode forward of cat(labeled, weak, strong) for the rows of `micro`
 * and returns its gradients. Losses are divided by the full batch sizes, so the
 * micro-batches' gradients and losses add up to those of the full batch.
 */
function runMicroBatch(
  model: TrainableModel,
  batch: FixMatchBatch,
  micro: MicroBatch,
  settings: LossSettings,
): MicroBatchResult {
  const { labeledCount, unlabeledCount, threshold, lambdaU } = settings;
  const nLabeled = micro.labeled[1] - micro.labeled[0];
  const nUnlabeled = micro.unlabeled[1] - micro.unlabeled[0];
  const x = normalizeSlices(batch, micro.labeled, micro.unlabeled);
  const labels = tf.tensor1d(batch.labels.subarray(micro.labeled[0], micro.labeled[1]), "int32");
  let kept: Omit<MicroBatchResult, "grads"> | null = null;

  let grads: Map<string, tf.Tensor>;
  try {
    grads = parameterGradients(model, () => {
      const { logits, batchStats } = model.apply(x, true);
      const [logitsLabeled, logitsWeak, logitsStrong] = tf.split(logits, [
        nLabeled,
        nUnlabeled,
        nUnlabeled,
      ]) as tf.Tensor2D[];

      // Pseudo-labels: argmax of the weak view's prediction, without gradient;
      // accepted (mask 1) when its confidence reaches the threshold.
      const probsWeak = tf.softmax(stopGradient(logitsWeak));
      const confidence = tf.max(probsWeak, 1) as tf.Tensor1D;
      const pseudoLabels = tf.argMax(probsWeak, 1) as tf.Tensor1D;
      const mask = tf.cast(tf.greaterEqual(confidence, tf.scalar(threshold)), "float32") as tf.Tensor1D;

      // Supervised loss: cross-entropy on the labeled batch.
      const supLoss = nLabeled === 0
        ? tf.scalar(0)
        : tf.div(crossEntropy(logitsLabeled, labels, "sum"), tf.scalar(labeledCount));

      // Unsupervised loss: masked pseudo-label cross-entropy on the strong views,
      // averaged over ALL unlabeled images, not only the accepted ones.
      const unsupLoss = tf.div(
        maskedPseudoLabelCrossEntropy(logitsStrong, pseudoLabels, mask, "sum"),
        tf.scalar(unlabeledCount),
      );

      kept = {
        stats: batchStats,
        supLoss: tf.keep(supLoss) as tf.Scalar,
        unsupLoss: tf.keep(unsupLoss) as tf.Scalar,
        logitsLabeled: tf.keep(logitsLabeled),
        logitsWeak: tf.keep(logitsWeak),
        logitsStrong: tf.keep(logitsStrong),
        pseudoLabels: tf.keep(pseudoLabels),
        confidence: tf.keep(confidence),
        mask: tf.keep(mask),
      };

      // Total loss: sup_loss + λu · unsup_loss.
      return tf.add(supLoss, tf.mul(tf.scalar(lambdaU), unsupLoss)) as tf.Scalar;
    });
  } finally {
    x.dispose();
    labels.dispose();
  }
  return { ...kept!, grads };
}

function checkBatch(batch: FixMatchBatch): { labeledCount: number; unlabeledCount: number } {
  const labeledCount = imageCount("fixmatchStep", "labeled", batch.labeled, batch);
  const unlabeledCount = imageCount("fixmatchStep", "weak", batch.weak, batch);
  const strongCount = imageCount("fixmatchStep", "strong", batch.strong, batch);
  if (batch.labels.length !== labeledCount) {
    throw new Error(`fixmatchStep: ${batch.labels.length} labels for ${labeledCount} labeled images`);
  }
  if (strongCount !== unlabeledCount) {
    throw new Error(
      `fixmatchStep: ${strongCount} strong views for ${unlabeledCount} weak views; pass both views of every unlabeled image`,
    );
  }
  if (labeledCount === 0 || unlabeledCount === 0) {
    throw new Error(
      `fixmatchStep: need at least one labeled and one unlabeled image, got ${labeledCount} and ${unlabeledCount}`,
    );
  }
  return { labeledCount, unlabeledCount };
}

/** Normalises the labeled rows [a, b) and the weak and strong rows [c, d) into one batch. */
function normalizeSlices(batch: FixMatchBatch, [a, b]: [number, number], [c, d]: [number, number]): tf.Tensor4D {
  const height = batch.height ?? 32;
  const width = batch.width ?? 32;
  const bytes = height * width * 3;
  return tf.tidy(() => {
    const parts: tf.Tensor4D[] = [];
    if (b > a) parts.push(normalizeImages(batch.labeled.subarray(a * bytes, b * bytes), b - a, height, width));
    parts.push(normalizeImages(batch.weak.subarray(c * bytes, d * bytes), d - c, height, width));
    parts.push(normalizeImages(batch.strong.subarray(c * bytes, d * bytes), d - c, height, width));
    return tf.concat(parts) as tf.Tensor4D;
  });
}
