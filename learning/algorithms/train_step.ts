/**
 * Result of one FixMatch or MixMatch step and the update that applies it:
 * SGD step, BN running statistics, EMA.
 *
 * A step function only computes; {@linkcode applyUpdate} changes the model.
 *
 * @example
 * ```ts
 * const result = fixmatchStep(model, batch, { threshold: 0.95, lambdaU: 1 });
 * console.log(result.losses.total_loss, result.acceptedRate);
 * applyUpdate(model, sgd, ema, result, cosineLearningRate(step, totalSteps));
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { BatchNormStats } from "../nn/wide_resnet.ts";
import type { SGD } from "../optim/sgd.ts";
import type { ExponentialMovingAverage } from "../optim/ema.ts";
import { disposeStats, type TrainableModel } from "./_gradients.ts";

export type { TrainableModel } from "./_gradients.ts";

/** Execution options that do not change the loss. */
export interface StepOptions {
  /**
   * Maximum number of images per forward pass. A larger batch is split into
   * micro-batches whose gradients are summed; each micro-batch has its own BN
   * batch statistics. Default: no limit.
   */
  maxForwardImages?: number;
}

/** Loss terms of one step, named as TorchSSL logs them. */
export interface StepLosses {
  /** Labeled loss (mean over the labeled batch). */
  sup_loss: number;
  /** Unlabeled loss before weighting by λu. */
  unsup_loss: number;
  /** `sup_loss + λu · unsup_loss`, the loss the gradients belong to. */
  total_loss: number;
}

/** Result of a training step. The caller owns its tensors (see {@linkcode disposeStepResult}). */
export interface StepResult {
  /** Gradient of `total_loss` per parameter name, before weight decay. Parameters without a gradient are absent. */
  grads: Map<string, tf.Tensor>;
  losses: StepLosses;
  /** Logits of the forward passes with gradient, before the update, in batch order. */
  logits: tf.Tensor2D;
  /** BN batch statistics that update the running statistics, one list per forward pass, in order. */
  runningStatsUpdates: BatchNormStats[][];
  /** Number of forward passes with gradient (more than the minimum when the batch was split by `maxForwardImages`). */
  microBatches: number;
}

/**
 * Applies a step: SGD update with `result.grads` at learning rate `lr`, BN running
 * statistics in order, then the EMA update. Disposes the tensors of `result`.
 *
 * @example
 * ```ts
 * applyUpdate(model, sgd, ema, result, 0.03);
 * ```
 */
export function applyUpdate(
  model: TrainableModel,
  sgd: SGD,
  ema: ExponentialMovingAverage,
  result: StepResult,
  lr: number,
  emaDecay: number = ema.decay,
): void {
  try {
    sgd.step(model.parameters, result.grads, lr);
    for (const stats of result.runningStatsUpdates) model.updateRunningStats(stats);
    ema.update(model.parameters, emaDecay);
  } finally {
    disposeStepResult(result);
  }
}

/**
 * Disposes every tensor a step returned (gradients, logits, BN statistics and any
 * other tensor-valued field such as MixMatch's guessed labels).
 *
 * @example
 * ```ts
 * disposeStepResult(result);
 * ```
 */
export function disposeStepResult(result: StepResult): void {
  for (const grad of result.grads.values()) grad.dispose();
  result.grads.clear();
  for (const stats of result.runningStatsUpdates) disposeStats(stats);
  result.runningStatsUpdates.length = 0;
  for (const value of Object.values(result)) {
    if (value instanceof tf.Tensor) value.dispose();
  }
}
