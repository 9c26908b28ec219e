/**
 * Registration of the convolution gradient kernels from `_conv2d_as_conv.ts`
 * for one TensorFlow.js backend, keeping the kernels they replace as the
 * fallback for cases the rewrite does not handle.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  type BackpropFilterAttrs,
  type BackpropInputAttrs,
  canBackpropInputAsConv,
  conv2dBackpropFilterAsConv,
  conv2dBackpropInputAsConv,
} from "./_conv2d_as_conv.ts";

const FILTER_KERNEL = "Conv2DBackpropFilter";
const INPUT_KERNEL = "Conv2DBackpropInput";

type KernelArgs = Parameters<tf.KernelFunc>[0];

interface BackendKernels {
  configs: tf.KernelConfig[];
  /** The configs that were registered before ours, by kernel name. */
  replaced: Map<string, tf.KernelConfig | undefined>;
}

const kernelsByBackend = new Map<string, BackendKernels>();

function requireInput(args: KernelArgs, kernelName: string, name: string): tf.TensorInfo {
  const input = args.inputs[name];
  if (input === undefined) throw new Error(`${kernelName} is missing its input '${name}'.`);
  return input;
}

function runOriginal(
  state: BackendKernels,
  kernelName: string,
  backendName: string,
  args: KernelArgs,
  reason: string,
): tf.TensorInfo {
  const original = state.replaced.get(kernelName);
  if (original === undefined) {
    throw new Error(
      `${kernelName} on the ${backendName} backend does not support ${reason}, and the ` +
        `backend has no kernel of its own to fall back to; use NHWC convolutions with ` +
        `equal strides and padding smaller than the filter.`,
    );
  }
  return original.kernelFunc(args) as tf.TensorInfo;
}

function createKernels(backendName: string): BackendKernels {
  const state: BackendKernels = { configs: [], replaced: new Map() };

  const backpropFilter = (args: KernelArgs): tf.TensorInfo => {
    const attrs = args.attrs as unknown as BackpropFilterAttrs;
    if (attrs.dataFormat !== "NHWC") {
      return runOriginal(state, FILTER_KERNEL, backendName, args, `dataFormat '${attrs.dataFormat}'`);
    }
    const x = requireInput(args, FILTER_KERNEL, "x");
    const dy = requireInput(args, FILTER_KERNEL, "dy");
    return conv2dBackpropFilterAsConv(backendName, args.backend as tf.KernelBackend, x, dy, attrs);
  };

  const backpropInput = (args: KernelArgs): tf.TensorInfo => {
    const attrs = args.attrs as unknown as BackpropInputAttrs;
    const dy = requireInput(args, INPUT_KERNEL, "dy");
    const filter = requireInput(args, INPUT_KERNEL, "filter");
    if (!canBackpropInputAsConv(filter.shape, attrs)) {
      const reason = `strides ${JSON.stringify(attrs.strides)} with pad ` +
        `${JSON.stringify(attrs.pad)} and dataFormat '${attrs.dataFormat}'`;
      return runOriginal(state, INPUT_KERNEL, backendName, args, reason);
    }
    return conv2dBackpropInputAsConv(backendName, args.backend as tf.KernelBackend, dy, filter, attrs);
  };

  // The engine runs the setup functions of registered kernels when a backend
  // initializes, and a replaced kernel used as fallback needs its setup too.
  const setupOriginal = (kernelName: string) => (backend: object) => {
    state.replaced.get(kernelName)?.setupFunc?.(backend);
  };

  state.configs.push(
    {
      kernelName: FILTER_KERNEL,
      backendName,
      kernelFunc: backpropFilter,
      setupFunc: setupOriginal(FILTER_KERNEL),
    },
    {
      kernelName: INPUT_KERNEL,
      backendName,
      kernelFunc: backpropInput,
      setupFunc: setupOriginal(INPUT_KERNEL),
    },
  );
  return state;
}

/** Registers both gradient kernels for `backendName`; a second call does nothing. */
export function registerConvGradientKernels(backendName: string): void {
  if (tf.getKernel("Conv2D", backendName) === undefined) {
    throw new Error(
      `Backend '${backendName}' has no Conv2D kernel registered; import its package ` +
        `before registering the convolution gradient kernels.`,
    );
  }
  let state = kernelsByBackend.get(backendName);
  if (state === undefined) {
    state = createKernels(backendName);
    kernelsByBackend.set(backendName, state);
  }
  for (const config of state.configs) {
    const current = tf.getKernel(config.kernelName, backendName);
    if (current?.kernelFunc === config.kernelFunc) continue;
    state.replaced.set(config.kernelName, current);
    if (current !== undefined) tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel(config);
  }
}

/** Puts back the kernels that {@link registerConvGradientKernels} replaced. */
export function unregisterConvGradientKernels(backendName: string): void {
  const state = kernelsByBackend.get(backendName);
  if (state === undefined) return;
  for (const config of state.configs) {
    const current = tf.getKernel(config.kernelName, backendName);
    if (current?.kernelFunc !== config.kernelFunc) continue;
    tf.unregisterKernel(config.kernelName, backendName);
    const original = state.replaced.get(config.kernelName);
    if (original !== undefined) tf.registerKernel(original);
    state.replaced.delete(config.kernelName);
  }
}

/** Returns true when both kernels of this module are registered for `backendName`. */
export function convGradientKernelsRegistered(backendName: string): boolean {
  const state = kernelsByBackend.get(backendName);
  return state !== undefined &&
    state.configs.every((config) => tf.getKernel(config.kernelName, backendName)?.kernelFunc === config.kernelFunc);
}
