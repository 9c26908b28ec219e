/**
 * Gradient helpers shared by the FixMatch and MixMatch steps.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { BatchNormStats, ForwardResult } from "../nn/wide_resnet.ts";

/** The part of the model a training step uses. */
export interface TrainableModel {
  readonly parameters: Map<string, tf.Variable>;
  readonly weightDecayNames: ReadonlySet<string>;
  apply(x: tf.Tensor4D, training: boolean): ForwardResult;
  updateRunningStats(stats: BatchNormStats[]): void;
}

/**
 * Runs `loss` under a gradient tape and returns the gradients keyed by parameter
 * name. Parameters the loss does not depend on get no entry, so SGD skips them as
 * PyTorch skips parameters whose `.grad` is None.
 */
export function parameterGradients(model: TrainableModel, loss: () => tf.Scalar): Map<string, tf.Tensor> {
  const variables = [...model.parameters.values()];
  const { value, grads } = tf.variableGrads(loss, variables);
  value.dispose();
  const result = new Map<string, tf.Tensor>();
  for (const [name, variable] of model.parameters) {
    const grad = grads[variable.name];
    if (grad !== undefined) result.set(name, grad);
  }
  return result;
}

/** Adds `next` into `total` (disposing the replaced tensors and `next`) and returns `total`. */
export function accumulateGradients(
  total: Map<string, tf.Tensor>,
  next: Map<string, tf.Tensor>,
): Map<string, tf.Tensor> {
  for (const [name, grad] of next) {
    const previous = total.get(name);
    if (previous === undefined) {
      total.set(name, grad);
    } else {
      total.set(name, tf.add(previous, grad));
      previous.dispose();
      grad.dispose();
    }
  }
  return total;
}

/** Disposes the mean and variance tensors of BN batch statistics. */
export function disposeStats(stats: readonly BatchNormStats[]): void {
  for (const stat of stats) {
    stat.mean.dispose();
    stat.variance.dispose();
  }
}

/**
 * Reads the values of `parts` (flattened and concatenated) without blocking: webgpu
 * cannot read synchronously under Deno. Does not dispose `parts`.
 */
export async function readConcatenated(parts: tf.Tensor[]): Promise<Float32Array | Int32Array> {
  const all = tf.tidy(() => tf.concat(parts.map((part) => tf.reshape(part, [-1]))));
  try {
    return (await all.data()) as Float32Array | Int32Array;
  } finally {
    all.dispose();
  }
}

/** Returns the sum of `values` in double precision. */
export function sum(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}
