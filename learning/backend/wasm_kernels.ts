/**
 * Convolution gradient kernels that make training possible on the
 * TensorFlow.js wasm backend.
 *
 * `@tensorflow/tfjs-backend-wasm` 4.22 has no `Conv2DBackpropFilter` kernel,
 * so the gradient of any convolution with respect to its filter throws. Its
 * `Conv2DBackpropInput` is a plain C++ loop, 7 to 20 times slower than its
 * XNNPACK `Conv2D` on the WideResNet-28-2 layers at batch 64. {@link registerWasmTrainingKernels}
 * registers both gradients as forward convolutions run by that `Conv2D`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { registerWasmTrainingKernels } from "./wasm_kernels.ts";
 *
 * await tf.setBackend("wasm");
 * registerWasmTrainingKernels();
 * const x = tf.randomNormal([2, 8, 8, 3]);
 * const w = tf.randomNormal([3, 3, 3, 8]) as tf.Tensor4D;
 * const dw = tf.grad((w: tf.Tensor4D) => tf.conv2d(x as tf.Tensor4D, w, 1, "same").sum())(w);
 * ```
 * @module
 */

import {
  convGradientKernelsRegistered,
  registerConvGradientKernels,
  unregisterConvGradientKernels,
} from "./_conv_gradient_kernels.ts";
import { registerWasmSegmentSum } from "./_segment_sum_kernel.ts";

const BACKEND_NAME = "wasm";

/**
 * Registers `Conv2DBackpropFilter` and `Conv2DBackpropInput` for the wasm
 * backend, both computed by the backend's XNNPACK `Conv2D` kernel, and the
 * missing `UnsortedSegmentSum` that the gradient of `tf.gather` needs. Input
 * gradients with unequal height and width strides, or with a padding side
 * of filter size or more, fall back to the package's own kernel. Filter
 * gradients support NHWC only. Calling it again does nothing. It may run
 * before or after `tf.setBackend("wasm")`, but only after
 * `@tensorflow/tfjs-backend-wasm` is imported.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-wasm";
 * registerWasmTrainingKernels();
 * ```
 */
export function registerWasmTrainingKernels(): void {
  registerConvGradientKernels(BACKEND_NAME);
  registerWasmSegmentSum();
}

/**
 * Restores the wasm kernels that {@link registerWasmTrainingKernels}
 * replaced, which leaves `Conv2DBackpropFilter` unregistered again. Meant
 * for benchmarks and tests that compare against the package's kernels.
 *
 * @example
 * ```ts
 * registerWasmTrainingKernels();
 * unregisterWasmTrainingKernels(); // back to the tfjs-backend-wasm kernels
 * ```
 */
export function unregisterWasmTrainingKernels(): void {
  unregisterConvGradientKernels(BACKEND_NAME);
}

/**
 * Returns true when this module's kernels are the registered wasm
 * `Conv2DBackpropFilter` and `Conv2DBackpropInput`.
 *
 * @example
 * ```ts
 * registerWasmTrainingKernels();
 * console.log(wasmTrainingKernelsRegistered()); // true
 * ```
 */
export function wasmTrainingKernelsRegistered(): boolean {
  return convGradientKernelsRegistered(BACKEND_NAME);
}
