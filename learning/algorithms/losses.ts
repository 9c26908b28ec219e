/**
 * Loss functions of FixMatch and MixMatch, following TorchSSL's `ce_loss` and
 * `consistency_loss`.
 *
 * Each loss takes a `reduction`: `"mean"` (the default, TorchSSL's value) or
 * `"sum"`, which lets a step split its batch into micro-batches and still
 * divide by the full batch size.
 *
 * @example
 * ```ts
 * const supLoss = crossEntropy(logitsLabeled, labels);
 * const unsupLoss = maskedPseudoLabelCrossEntropy(logitsStrong, pseudoLabels, mask);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** Reduction of the per-sample loss values: their mean or their sum. */
export type Reduction = "mean" | "sum";

/**
 * Returns `x` unchanged in the forward pass with a zero gradient, like PyTorch's `detach()`.
 *
 * @example
 * ```ts
 * const probs = tf.softmax(stopGradient(logitsWeak));
 * ```
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return detach(x) as T;
}

const detach = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: (inputs[0] as tf.Tensor).clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

/**
 * Returns the cross-entropy of `logits` [N, C] with hard `labels` [N] (int32):
 * the mean (or sum) over samples of `−log_softmax(logits)[label]`.
 *
 * @example
 * ```ts
 * crossEntropy(tf.tensor2d([[0, 0]]), tf.tensor1d([1], "int32")); // log 2
 * ```
 */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, reduction: Reduction = "mean"): tf.Scalar {
  return tf.tidy(() => {
    checkRows("crossEntropy", logits, labels);
    const targets = tf.oneHot(labels.toInt(), logits.shape[1]) as tf.Tensor2D;
    return reduce(perSampleSoftCrossEntropy(logits, targets), reduction);
  });
}

/**
 * Returns the cross-entropy of `logits` [N, C] with soft `targets` [N, C]:
 * the mean (or sum) over samples of `Σ_k −target_k · log_softmax(logits)_k`.
 *
 * @example
 * ```ts
 * softCrossEntropy(tf.tensor2d([[0, 0]]), tf.tensor2d([[0.5, 0.5]])); // log 2
 * ```
 */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D, reduction: Reduction = "mean"): tf.Scalar {
  return tf.tidy(() => {
    checkSameShape("softCrossEntropy", logits, targets);
    return reduce(perSampleSoftCrossEntropy(logits, targets), reduction);
  });
}

/**
 * Returns FixMatch's unlabeled loss: cross-entropy of `logits` [N, C] (strong views)
 * with hard `pseudoLabels` [N] (int32), times `mask` [N] (1 = pseudo-label accepted),
 * averaged over all N unlabeled samples, not only over the accepted ones.
 *
 * @example
 * ```ts
 * const loss = maskedPseudoLabelCrossEntropy(logitsStrong, pseudoLabels, mask);
 * ```
 */
export function maskedPseudoLabelCrossEntropy(
  logits: tf.Tensor2D,
  pseudoLabels: tf.Tensor1D,
  mask: tf.Tensor1D,
  reduction: Reduction = "mean",
): tf.Scalar {
  return tf.tidy(() => {
    checkRows("maskedPseudoLabelCrossEntropy", logits, pseudoLabels);
    checkRows("maskedPseudoLabelCrossEntropy", logits, mask);
    const targets = tf.oneHot(pseudoLabels.toInt(), logits.shape[1]) as tf.Tensor2D;
    const perSample = tf.mul(perSampleSoftCrossEntropy(logits, targets), mask.toFloat()) as tf.Tensor1D;
    return reduce(perSample, reduction);
  });
}

/**
 * Returns MixMatch's unlabeled loss: the squared error between `softmax(logits)` [N, C]
 * and `targets` [N, C], averaged over all N·C elements (`"mean"`) or summed.
 *
 * @example
 * ```ts
 * const loss = softmaxMeanSquaredError(logitsUnlabeled, mixedTargetsUnlabeled);
 * ```
 */
export function softmaxMeanSquaredError(
  logits: tf.Tensor2D,
  targets: tf.Tensor2D,
  reduction: Reduction = "mean",
): tf.Scalar {
  return tf.tidy(() => {
    checkSameShape("softmaxMeanSquaredError", logits, targets);
    const squared = tf.square(tf.sub(tf.softmax(logits), targets));
    return reduction === "mean" ? tf.mean(squared) : tf.sum(squared);
  });
}

function perSampleSoftCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
}

function reduce(perSample: tf.Tensor1D, reduction: Reduction): tf.Scalar {
  if (reduction === "mean") return tf.mean(perSample);
  if (reduction === "sum") return tf.sum(perSample);
  throw new Error(`unknown reduction "${reduction}"; use "mean" or "sum"`);
}

function checkRows(name: string, logits: tf.Tensor, perSample: tf.Tensor): void {
  if (logits.rank !== 2 || perSample.rank !== 1 || perSample.shape[0] !== logits.shape[0]) {
    throw new Error(`${name}: expected logits [N, C] and a vector [N], got [${logits.shape}] and [${perSample.shape}]`);
  }
}

function checkSameShape(name: string, logits: tf.Tensor, targets: tf.Tensor): void {
  if (logits.rank !== 2 || !tf.util.arraysEqual(logits.shape, targets.shape)) {
    throw new Error(
      `${name}: expected logits and targets of the same shape [N, C], got [${logits.shape}] and [${targets.shape}]`,
    );
  }
}
