/**
 * Convolution gradient kernels for the TensorFlow.js cpu backend.
 *
 * The cpu backend of `@tensorflow/tfjs-backend-cpu` 4.22 computes
 * `Conv2DBackpropFilter` with a `TensorBuffer.get` call per multiply-add.
 * For x [64, 32, 32, 32] and a 3x3x32x32 filter it took 160 s, against
 * 0.74 s for the forward `Conv2D` and 2.5 s for its `Conv2DBackpropInput`.
 * These are single runs on a 2-core x86-64 machine shared with other jobs,
 * where timings vary by up to 40%. With
 * {@link registerCpuTrainingKernels}, which replaces both gradients with the
 * forward-convolution form used for wasm, they took 1.9 s and 0.7 s.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { registerCpuTrainingKernels } from "./cpu_kernels.ts";
 *
 * await tf.setBackend("cpu");
 * registerCpuTrainingKernels();
 * ```
 * @module
 */

import {
  convGradientKernelsRegistered,
  registerConvGradientKernels,
  unregisterConvGradientKernels,
} from "./_conv_gradient_kernels.ts";

const BACKEND_NAME = "cpu";

/**
 * Registers `Conv2DBackpropFilter` and `Conv2DBackpropInput` for the cpu
 * backend, both computed by its `Conv2D` kernel. NHWC convolutions with
 * unequal strides or a padding side of filter size or more, and all NCHW
 * ones, fall back to the package's kernels. Calling it again does nothing.
 *
 * @example
 * ```ts
 * registerCpuTrainingKernels();
 * ```
 */
export function registerCpuTrainingKernels(): void {
  registerConvGradientKernels(BACKEND_NAME);
}

/**
 * Restores the cpu kernels that {@link registerCpuTrainingKernels} replaced.
 *
 * @example
 * ```ts
 * unregisterCpuTrainingKernels(); // back to the tfjs-backend-cpu kernels
 * ```
 */
export function unregisterCpuTrainingKernels(): void {
  unregisterConvGradientKernels(BACKEND_NAME);
}

/**
 * Returns true when this module's kernels are the registered cpu
 * `Conv2DBackpropFilter` and `Conv2DBackpropInput`.
 *
 * @example
 * ```ts
 * console.log(cpuTrainingKernelsRegistered());
 * ```
 */
export function cpuTrainingKernelsRegistered(): boolean {
  return convGradientKernelsRegistered(BACKEND_NAME);
}
