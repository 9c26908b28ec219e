/**
 * Functional layers with PyTorch semantics on NHWC tensors.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { NATIVE_BACKEND_NAME, NATIVE_KERNELS } from "../backend/native_backend.ts";

/** Returns true when the active backend has the fused native training kernels. */
function onNative(): boolean {
  return tf.getBackend() === NATIVE_BACKEND_NAME;
}

/**
 * Applies PyTorch's `Conv2d(kernel_size=k, stride, padding=(k - 1) / 2, bias=True)`
 * to NHWC input with an HWIO kernel.
 *
 * The padding is symmetric: tfjs reads a numeric `pad` as that many zero
 * rows and columns on every side, so a stride-2 output row i reads input
 * rows 2i - 1 .. 2i + 1 as in PyTorch. TensorFlow's "same" padding is not
 * equivalent for stride 2, because on an even-sized input it pads 0 rows
 * before and 1 after.
 *
 * The gradient is custom. The kernel gradient is computed as a forward
 * convolution (see `kernelGradient`), because the cpu backend's
 * Conv2DBackpropFilter kernel of tfjs 4.22 takes about 20 s for one 3x3
 * 32->32 layer on 8 images of 32x32 (2-core x86 machine), 100 times slower
 * than the forward convolution.
 */
export function conv2d(x: tf.Tensor4D, kernel: tf.Tensor4D, bias: tf.Tensor1D, stride: number): tf.Tensor4D {
  const [kernelHeight, kernelWidth] = kernel.shape;
  if (kernelHeight !== kernelWidth || kernelHeight % 2 !== 1) {
    throw new Error(`conv2d: expected a square kernel of odd size, got ${kernelHeight}x${kernelWidth}`);
  }
  const padding = (kernelHeight - 1) / 2;
  const op = tf.customGrad((input, filter, offset, save) => {
    const x4 = input as tf.Tensor4D;
    const filter4 = filter as tf.Tensor4D;
    (save as tf.GradSaveFunc)([x4, filter4]);
    const value = tf.fused.conv2d({
      x: x4,
      filter: filter4,
      strides: stride,
      pad: padding,
      bias: offset as tf.Tensor1D,
    });
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [savedX, savedFilter] = saved as tf.Tensor4D[];
      const dy4 = dy as tf.Tensor4D;
      return [
        tf.conv2dTranspose(dy4, savedFilter, savedX.shape, stride, padding),
        kernelGradient(savedX, dy4, kernelHeight, stride, padding),
        channelSum(dy4),
      ];
    };
    return { value, gradFunc };
  });
  return op(x, kernel, bias) as tf.Tensor4D;
}

/**
 * Computes d loss / d kernel [k, k, in, out] of a convolution with symmetric
 * padding as one forward convolution with the roles of batch and channels
 * swapped:
 *
 *   dW[a, b, i, o] = sum over n, u, v of xPadded[n, a + s*u, b + s*v, i] * dy[n, u, v, o]
 *
 * is a stride-1 convolution of x transposed to [in, H, W, N] with dy
 * transposed to [outH, outW, N, out] as the kernel, dilated by the stride s.
 * With stride 2 its output can be one row and column larger than k (the last
 * padded row is never read by the forward pass), and that part is cut off.
 */
export function kernelGradient(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  kernelSize: number,
  stride: number,
  padding: number,
): tf.Tensor4D {
  if (onNative()) {
    // The native backend has a oneDNN backward-weights kernel.
    const attrs = {
      strides: stride,
      pad: padding,
      dataFormat: "NHWC",
      filterShape: [kernelSize, kernelSize, x.shape[3], dy.shape[3]],
    };
    return tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const channelsAsBatch = tf.transpose(x, [3, 1, 2, 0]);
    const dyAsKernel = tf.transpose(dy, [1, 2, 0, 3]);
    let gradient = tf.conv2d(channelsAsBatch, dyAsKernel, 1, padding, "NHWC", stride);
    if (gradient.shape[1] !== kernelSize || gradient.shape[2] !== kernelSize) {
      gradient = tf.slice(gradient, [0, 0, 0, 0], [-1, kernelSize, kernelSize, -1]);
    }
    return tf.transpose(gradient, [1, 2, 0, 3]);
  });
}

/**
 * Sums NHWC values per channel as a [1, N*H*W] x [N*H*W, C] matrix product.
 * On the cpu backend this avoids the transpose that `tf.sum(x, [0, 1, 2])`
 * makes first, and its matMul accumulates each block of products in double.
 */
export function channelSum(x: tf.Tensor4D): tf.Tensor1D {
  // The native Sum kernel reduces leading axes in one pass with double accumulators.
  if (onNative()) return tf.sum(x, [0, 1, 2]);
  return tf.tidy(() => {
    const channels = x.shape[3];
    const rows = x.size / channels;
    return tf.reshape(tf.matMul(tf.ones([1, rows]), tf.reshape(x, [rows, channels])), [channels]);
  });
}

/** Computes the per-channel mean and biased variance over batch, height and width in two passes. */
export function batchMoments(x: tf.Tensor4D): { mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const count = x.size / x.shape[3];
  const mean = tf.div(channelSum(x), count) as tf.Tensor1D;
  const variance = tf.tidy(() =>
    tf.div(channelSum(tf.squaredDifference(x, mean) as tf.Tensor4D), count) as tf.Tensor1D
  );
  return { mean, variance };
}

/** Output of a train-mode BN: the normalised values and the batch statistics used. */
export interface TrainBatchNormResult {
  y: tf.Tensor4D;
  mean: tf.Tensor1D;
  /** Biased batch variance. */
  variance: tf.Tensor1D;
}

/**
 * Applies train-mode BN: normalises with the batch mean and biased batch
 * variance, then scales by gamma and shifts by beta.
 *
 * The gradient is the closed form of PyTorch's batch-norm backward, with
 * xHat = (x - mean) / sqrt(variance + eps) and M = N*H*W:
 *   dBeta = sum(dy), dGamma = sum(dy * xHat),
 *   dx = gamma / sqrt(variance + eps) * (dy - dBeta / M - xHat * dGamma / M).
 * It replaces tfjs' generic gradient chain through `tf.moments` and
 * `tf.batchNorm`, which spends most of its time in broadcasting multiplies and
 * transposing sums on the cpu backend. No gradient flows through the returned
 * `mean` and `variance`, and the caller must dispose them (they are kept).
 */
export function trainBatchNorm(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): TrainBatchNormResult {
  if (onNative()) return nativeTrainBatchNorm(x, gamma, beta, eps);
  let stats: { mean: tf.Tensor1D; variance: tf.Tensor1D } | null = null;
  const op = tf.customGrad((input, scale, offset, save) => {
    const x4 = input as tf.Tensor4D;
    // customGrad runs this function inside tf.tidy, so the statistics are kept
    // explicitly. The caller owns them.
    stats = batchMoments(x4);
    tf.keep(stats.mean);
    tf.keep(stats.variance);
    (save as tf.GradSaveFunc)([x4, scale as tf.Tensor, stats.mean, stats.variance]);
    const value = tf.batchNorm(x4, stats.mean, stats.variance, offset as tf.Tensor1D, scale as tf.Tensor1D, eps);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [savedX, savedGamma, savedMean, savedVariance] = saved;
      const dy4 = dy as tf.Tensor4D;
      const count = savedX.size / savedGamma.size;
      const xHat = tf.batchNorm(
        savedX as tf.Tensor4D,
        savedMean as tf.Tensor1D,
        savedVariance as tf.Tensor1D,
        undefined,
        undefined,
        eps,
      );
      const dBeta = channelSum(dy4);
      const dGamma = channelSum(tf.mul(dy4, xHat));
      const factor = tf.mul(savedGamma, tf.rsqrt(tf.add(savedVariance, eps)));
      const xHatCoefficient = tf.neg(tf.div(tf.mul(factor, dGamma), count));
      const constant = tf.neg(tf.div(tf.mul(factor, dBeta), count));
      const dx = tf.add(tf.add(tf.mul(dy4, factor), tf.mul(xHat, xHatCoefficient)), constant);
      return [dx, dGamma, dBeta];
    };
    return { value, gradFunc };
  });
  const y = op(x, gamma, beta) as tf.Tensor4D;
  const { mean, variance } = stats!;
  return { y, mean, variance };
}

/** Computes {@link trainBatchNorm} with two fused native kernels, forward and backward, in the same closed form. */
function nativeTrainBatchNorm(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): TrainBatchNormResult {
  let stats: { mean: tf.Tensor1D; variance: tf.Tensor1D } | null = null;
  const op = tf.customGrad((input, scale, offset, save) => {
    const [value, mean, variance] = tf.engine().runKernel(
      NATIVE_KERNELS.batchNormTrain,
      { x: input as tf.Tensor, gamma: scale as tf.Tensor, beta: offset as tf.Tensor },
      { eps },
    ) as tf.Tensor[];
    stats = { mean: tf.keep(mean as tf.Tensor1D), variance: tf.keep(variance as tf.Tensor1D) };
    (save as tf.GradSaveFunc)([input as tf.Tensor, scale as tf.Tensor, mean, variance]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [savedX, savedGamma, savedMean, savedVariance] = saved;
      return tf.engine().runKernel(
        NATIVE_KERNELS.batchNormTrainGrad,
        { dy, x: savedX, gamma: savedGamma, mean: savedMean, variance: savedVariance },
        { eps },
      ) as tf.Tensor[];
    };
    return { value, gradFunc };
  });
  const y = op(x, gamma, beta) as tf.Tensor4D;
  const { mean, variance } = stats!;
  return { y, mean, variance };
}

/**
 * Applies LeakyReLU with negative slope `slope`. On the native backend the
 * gradient is one fused kernel instead of tfjs' compare, multiply and select.
 */
export function leakyRelu(x: tf.Tensor4D, slope: number): tf.Tensor4D {
  if (!onNative()) return tf.leakyRelu(x, slope);
  const op = tf.customGrad((input, save) => {
    (save as tf.GradSaveFunc)([input as tf.Tensor]);
    const value = tf.leakyRelu(input as tf.Tensor4D, slope);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor =>
      tf.engine().runKernel(NATIVE_KERNELS.leakyReluGrad, { dy, x: saved[0] }, { alpha: slope }) as tf.Tensor;
    return { value, gradFunc };
  });
  return op(x) as tf.Tensor4D;
}

/** Applies eval-mode BN: `(x - mean) / sqrt(variance + eps) * gamma + beta` per channel. */
export function batchNorm(
  x: tf.Tensor4D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): tf.Tensor4D {
  return tf.batchNorm(x, mean, variance, beta, gamma, eps);
}
