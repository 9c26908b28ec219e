/**
 * The "native" TensorFlow.js backend: tfjs-backend-cpu's tensor storage and
 * kernels, with the kernels that dominate WideResNet training replaced by
 * calls into a shared library built from `native/semisup_native.cpp`
 * (oneDNN convolutions and sgemm, OpenMP element-wise loops on all cores).
 *
 * Tensors live in ordinary JavaScript typed arrays, which the library reads
 * and writes in place through Deno's FFI. There is no 4 GiB heap as on wasm,
 * so a FixMatch step of 960 images runs as one batch. Each native kernel
 * handles float32 tensors in the layouts training uses: NHWC convolutions
 * with dilation 1, and element-wise ops with any broadcasting up to rank 6.
 * Every other case goes to the tfjs-backend-cpu kernel of the same name,
 * which stays registered for this backend.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { registerNativeBackend } from "./native_backend.ts";
 *
 * await registerNativeBackend();
 * await tf.setBackend("native");
 * tf.conv2d(tf.ones([1, 8, 8, 3]), tf.ones([3, 3, 3, 4]), 1, "same").print();
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import { loadNativeLibrary, nativeError, type NativeLibrary } from "./_native_library.ts";

/** Name under which the backend registers with TensorFlow.js. */
export const NATIVE_BACKEND_NAME = "native";

type KernelArgs = Parameters<tf.KernelFunc>[0];
type Attrs = Record<string, unknown>;

/**
 * Kernel names of the fused training kernels that only this backend has;
 * learning/nn/_layers.ts calls them through `tf.engine().runKernel`.
 */
export const NATIVE_KERNELS = {
  /** Inputs x, gamma, beta; attr eps; outputs y, batch mean, biased batch variance. */
  batchNormTrain: "SemisupBatchNormTrain",
  /** Inputs dy, x, gamma, mean, variance; attr eps; outputs dx, dGamma, dBeta. */
  batchNormTrainGrad: "SemisupBatchNormTrainGrad",
  /** Inputs dy, x; attr alpha; output dx. */
  leakyReluGrad: "SemisupLeakyReluGrad",
} as const;

/**
 * Float32Arrays for kernel outputs, reused after their tensor is disposed,
 * as PyTorch's caching allocator reuses blocks. A fresh array of a
 * 960-image activation (126 MB) costs page faults and garbage-collector work
 * that took longer than the element-wise kernel writing it.
 */
class BufferPool {
  #free = new Map<number, Float32Array[]>();
  #owned = new WeakSet<ArrayBuffer>();
  #idleBytes = 0;
  constructor(readonly maxIdleBytes: number) {}

  take(length: number): Float32Array {
    const reused = this.#free.get(length)?.pop();
    if (reused !== undefined) {
      this.#idleBytes -= reused.byteLength;
      return reused;
    }
    const array = new Float32Array(length);
    this.#owned.add(array.buffer);
    return array;
  }

  owns(values: unknown): boolean {
    return ArrayBuffer.isView(values) && this.#owned.has(values.buffer as ArrayBuffer);
  }

  give(array: Float32Array): void {
    if (this.#idleBytes + array.byteLength > this.maxIdleBytes) return;
    let list = this.#free.get(array.length);
    if (list === undefined) this.#free.set(array.length, list = []);
    list.push(array);
    this.#idleBytes += array.byteLength;
  }
}

/**
 * Idle pooled bytes kept for reuse; more is left to the garbage collector.
 * A training step frees its whole activation set at its end (about 12 GB
 * for a 960-image FixMatch step), and the next step needs all of it again.
 * So the cap is a share of the machine's memory, not a fixed size.
 */
const MAX_IDLE_POOL_BYTES = Math.floor(0.6 * Deno.systemMemoryInfo().total);

/** Arrays smaller than this are not pooled: allocating them is cheap. */
const MIN_POOLED_LENGTH = 4096;

const pool = new BufferPool(MAX_IDLE_POOL_BYTES);

/**
 * MathBackendCPU under another name, whose native kernels write into pooled
 * arrays. A pooled array goes back to the pool when its tensor is disposed,
 * so nothing outside may keep it: reads return copies, and a fallback kernel
 * output that views a pooled array (tfjs-backend-cpu's Slice returns a
 * subarray) is copied.
 */
class NativeBackend extends MathBackendCPU {
  override readSync(dataId: object): tf.backend_util.BackendValues {
    const values = super.readSync(dataId);
    return pool.owns(values) ? (values as Float32Array).slice() : values;
  }

  override disposeData(dataId: object, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const disposed = super.disposeData(dataId, force);
    if (disposed && values instanceof Float32Array && pool.owns(values)) pool.give(values);
    return disposed;
  }
}

/** Returns a float32 array of `length` for a kernel output, pooled when large. */
function allocate(length: number): Float32Array {
  return length >= MIN_POOLED_LENGTH ? pool.take(length) : new Float32Array(length);
}

/**
 * Copies each fallback kernel output that shares a pooled array under a new
 * tensor. Fallback kernels allocate their own outputs, so a pooled output
 * array belongs to an input: a subarray view (tfjs-backend-cpu's Slice), or
 * the input's array under a new data id. Outputs that reuse an input's data
 * id (Reshape, Identity) share its reference count and are left alone.
 */
function detachFromPool(args: KernelArgs, result: tf.TensorInfo | tf.TensorInfo[]): tf.TensorInfo | tf.TensorInfo[] {
  const backend = args.backend as MathBackendCPU;
  const inputIds = new Set(Object.values(args.inputs).map((input) => input?.dataId));
  for (const info of Array.isArray(result) ? result : [result]) {
    if (inputIds.has(info.dataId)) continue;
    const entry = backend.data.get(info.dataId);
    if (entry !== undefined && pool.owns(entry.values)) entry.values = (entry.values as Float32Array).slice();
  }
  return result;
}

let library: NativeLibrary | null = null;

/**
 * Loads the native library (building it when needed), then registers the
 * "native" backend and its kernels. Throws `NativeLibraryError` with install
 * instructions when the library cannot be built or loaded. A second call does nothing.
 *
 * @example
 * ```ts
 * await registerNativeBackend();
 * await tf.setBackend("native");
 * ```
 */
export async function registerNativeBackend(): Promise<NativeLibrary> {
  if (library !== null) return library;
  const loadedLibrary = await loadNativeLibrary();
  if (tf.findBackendFactory(NATIVE_BACKEND_NAME) === null) {
    tf.registerBackend(NATIVE_BACKEND_NAME, () => new NativeBackend(), 0);
  }
  const nativeKernels = createKernels(loadedLibrary);
  for (const config of tf.getKernelsForBackend("cpu")) {
    if (tf.getKernel(config.kernelName, NATIVE_BACKEND_NAME) !== undefined) continue;
    const native = nativeKernels.get(config.kernelName);
    const fallback = config.kernelFunc;
    tf.registerKernel({
      kernelName: config.kernelName,
      backendName: NATIVE_BACKEND_NAME,
      setupFunc: config.setupFunc,
      disposeFunc: config.disposeFunc,
      kernelFunc: (args) => {
        const result = native?.(args);
        if (result !== undefined && result !== null) return result;
        return detachFromPool(args, fallback(args) as tf.TensorInfo | tf.TensorInfo[]);
      },
    });
  }
  for (const name of Object.values(NATIVE_KERNELS)) {
    if (tf.getKernel(name, NATIVE_BACKEND_NAME) !== undefined) continue;
    const native = nativeKernels.get(name)!;
    tf.registerKernel({ kernelName: name, backendName: NATIVE_BACKEND_NAME, kernelFunc: (args) => native(args)! });
  }
  library = loadedLibrary;
  return library;
}

/** A native kernel body; returning null hands the call to the cpu kernel. */
type NativeKernel = (args: KernelArgs) => tf.TensorInfo | null;

function createKernels(lib: NativeLibrary): Map<string, NativeKernel> {
  const fn = lib.symbols;
  const check = (status: number): void => {
    if (status !== 0) throw new Error(`native backend: ${nativeError(lib)}`);
  };
  const kernels = new Map<string, NativeKernel>();

  // Convolutions.
  const conv = (args: KernelArgs, withBias: boolean): tf.TensorInfo | null => {
    const { x, filter, bias } = args.inputs as Record<string, tf.TensorInfo>;
    const attrs = args.attrs as Attrs;
    if (withBias && (attrs.activation ?? "linear") !== "linear") return null;
    if (withBias && args.inputs.preluActivationWeights !== undefined) return null;
    const info = convInfo(x.shape, filter.shape, attrs);
    if (info === null || !allFloat32(x, filter) || (bias !== undefined && !isChannelVector(bias, info.outChannels))) {
      return null;
    }
    const out = allocate(tf.util.sizeFromShape(info.outShape));
    const biasValues = withBias && bias !== undefined ? values(args, bias) : null;
    check(fn.sn_conv2d_forward(info.dims, values(args, x), values(args, filter), biasValues, out));
    return output(args, info.outShape, out);
  };
  kernels.set("Conv2D", (args) => conv(args, false));
  kernels.set("FusedConv2D", (args) => conv(args, true));

  kernels.set("Conv2DBackpropInput", (args) => {
    const { dy, filter } = args.inputs as Record<string, tf.TensorInfo>;
    const attrs = args.attrs as Attrs;
    const inputShape = attrs.inputShape as number[];
    const info = convInfo(inputShape, filter.shape, attrs);
    if (info === null || !allFloat32(dy, filter) || !sameShape(dy.shape, info.outShape)) return null;
    const out = allocate(tf.util.sizeFromShape(inputShape));
    check(fn.sn_conv2d_backward_data(info.dims, values(args, dy), values(args, filter), out));
    return output(args, inputShape, out);
  });

  kernels.set("Conv2DBackpropFilter", (args) => {
    const { x, dy } = args.inputs as Record<string, tf.TensorInfo>;
    const attrs = args.attrs as Attrs;
    const filterShape = attrs.filterShape as number[];
    const info = convInfo(x.shape, filterShape, attrs);
    if (info === null || !allFloat32(x, dy) || !sameShape(dy.shape, info.outShape)) return null;
    const out = allocate(tf.util.sizeFromShape(filterShape));
    check(fn.sn_conv2d_backward_weights(info.dims, values(args, x), values(args, dy), out));
    return output(args, filterShape, out);
  });

  // Matrix products.
  kernels.set("BatchMatMul", (args) => {
    const { a, b } = args.inputs as Record<string, tf.TensorInfo>;
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!allFloat32(a, b) || a.shape.length < 2 || b.shape.length < 2) return null;
    const m = transposeA ? a.shape.at(-1)! : a.shape.at(-2)!;
    const k = transposeA ? a.shape.at(-2)! : a.shape.at(-1)!;
    const kB = transposeB ? b.shape.at(-1)! : b.shape.at(-2)!;
    const n = transposeB ? b.shape.at(-2)! : b.shape.at(-1)!;
    const batchA = a.shape.slice(0, -2);
    const batchB = b.shape.slice(0, -2);
    const countA = tf.util.sizeFromShape(batchA);
    const countB = tf.util.sizeFromShape(batchB);
    if (k !== kB || (countA !== countB && countA !== 1 && countB !== 1) || m * n * k === 0) return null;
    let batchShape: number[];
    try {
      batchShape = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
    } catch {
      return null; // the cpu kernel raises its own error for batch shapes that do not broadcast
    }
    const batch = Math.max(countA, countB);
    if (tf.util.sizeFromShape(batchShape) !== batch) return null;
    const out = allocate(batch * m * n);
    check(fn.sn_matmul(
      big(batch),
      big(m),
      big(n),
      big(k),
      transposeA ? 1 : 0,
      transposeB ? 1 : 0,
      values(args, a),
      big(countA === 1 ? 0 : m * k),
      values(args, b),
      big(countB === 1 ? 0 : k * n),
      out,
    ));
    return output(args, [...batchShape, m, n], out);
  });

  // Any other broadcast of rank <= 6, through per-axis strides.
  const stridedBinary = (
    args: KernelArgs,
    op: number,
    a: tf.TensorInfo,
    b: tf.TensorInfo,
    outShape: number[],
  ): tf.TensorInfo | null => {
    const rank = outShape.length;
    if (rank < 1 || rank > 6) return null;
    const out = allocate(tf.util.sizeFromShape(outShape));
    check(fn.sn_binary_strided(
      op,
      values(args, a),
      broadcastStrides(a.shape, outShape),
      values(args, b),
      broadcastStrides(b.shape, outShape),
      out,
      new BigInt64Array(outShape.map(BigInt)),
      rank,
    ));
    return output(args, outShape, out);
  };

  // Element-wise binary ops, with the broadcasting training uses.
  const binaryOps: [string, number][] = [
    ["Add", 0],
    ["Sub", 1],
    ["Multiply", 2],
    ["RealDiv", 3],
    ["SquaredDifference", 4],
    ["Maximum", 5],
    ["Minimum", 6],
  ];
  for (const [name, op] of binaryOps) {
    kernels.set(name, (args) => {
      const { a, b } = args.inputs as Record<string, tf.TensorInfo>;
      if (!allFloat32(a, b) || sizeOf(a) === 0 || sizeOf(b) === 0) return null;
      const outShape = broadcastShape(a, b);
      if (outShape === null) return null;
      if (!isTrailingBlock(a.shape, outShape) || !isTrailingBlock(b.shape, outShape)) {
        return stridedBinary(args, op, a, b, outShape);
      }
      const n = tf.util.sizeFromShape(outShape);
      const out = allocate(n);
      check(fn.sn_binary(op, values(args, a), big(sizeOf(a)), values(args, b), big(sizeOf(b)), out, big(n)));
      return output(args, outShape, out);
    });
  }

  kernels.set("AddN", (args) => {
    const tensors = args.inputs as unknown as tf.TensorInfo[];
    if (
      tensors.length < 1 || !allFloat32(...tensors) || !tensors.every((t) => sameShape(t.shape, tensors[0].shape)) ||
      sizeOf(tensors[0]) === 0
    ) {
      return null;
    }
    const n = sizeOf(tensors[0]);
    const out = allocate(n);
    out.set(values(args, tensors[0]));
    for (const t of tensors.slice(1)) check(fn.sn_binary(0, out, big(n), values(args, t), big(n), out, big(n)));
    return output(args, tensors[0].shape, out);
  });

  // Element-wise unary ops.
  const unaryOps: [string, number][] = [
    ["Neg", 0],
    ["Relu", 1],
    ["LeakyRelu", 2],
    ["Rsqrt", 3],
    ["Sqrt", 4],
    ["Exp", 5],
    ["Log", 6],
    ["Square", 7],
    ["Abs", 8],
  ];
  for (const [name, op] of unaryOps) {
    kernels.set(name, (args) => {
      const { x } = args.inputs as Record<string, tf.TensorInfo>;
      if (!allFloat32(x) || sizeOf(x) === 0) return null;
      const alpha = Number((args.attrs as Attrs | undefined)?.alpha ?? 0);
      const out = allocate(sizeOf(x));
      check(fn.sn_unary(op, values(args, x), out, big(out.length), alpha));
      return output(args, x.shape, out);
    });
  }

  // Comparisons and select, as in LeakyRelu's gradient.
  const compareOps: [string, number][] = [
    ["Greater", 0],
    ["GreaterEqual", 1],
    ["Less", 2],
    ["LessEqual", 3],
    ["Equal", 4],
  ];
  for (const [name, op] of compareOps) {
    kernels.set(name, (args) => {
      const { a, b } = args.inputs as Record<string, tf.TensorInfo>;
      if (!allFloat32(a, b) || sizeOf(a) === 0 || sizeOf(b) === 0) return null;
      const outShape = broadcastShape(a, b);
      if (outShape === null || !isTrailingBlock(a.shape, outShape) || !isTrailingBlock(b.shape, outShape)) return null;
      const n = tf.util.sizeFromShape(outShape);
      const out = new Uint8Array(n);
      check(fn.sn_compare(op, values(args, a), big(sizeOf(a)), values(args, b), big(sizeOf(b)), out, big(n)));
      return output(args, outShape, out, "bool");
    });
  }

  kernels.set("Select", (args) => {
    const { condition, t, e } = args.inputs as Record<string, tf.TensorInfo>;
    if (condition.dtype !== "bool" || !allFloat32(t, e) || sizeOf(t) === 0) return null;
    if (!sameShape(condition.shape, t.shape) || !sameShape(t.shape, e.shape)) return null;
    const conditionValues = (args.backend as MathBackendCPU).data.get(condition.dataId).values;
    if (!(conditionValues instanceof Uint8Array)) return null;
    const out = allocate(sizeOf(t));
    check(fn.sn_select(conditionValues, values(args, t), values(args, e), out, big(out.length)));
    return output(args, t.shape, out);
  });

  // Batch norm over the last axis.
  kernels.set("FusedBatchNorm", (args) => {
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, tf.TensorInfo>;
    const eps = Number((args.attrs as Attrs).varianceEpsilon ?? 0.001);
    const channels = x.shape.at(-1) ?? 1;
    const operands = [mean, variance, scale, offset].filter((t) => t !== undefined);
    if (!allFloat32(x, ...operands) || !operands.every((t) => sizeOf(t) === 1 || isChannelVector(t, channels))) {
      return null;
    }
    const out = allocate(sizeOf(x));
    check(fn.sn_batch_norm(
      values(args, x),
      big(out.length),
      big(channels),
      values(args, mean),
      big(sizeOf(mean)),
      values(args, variance),
      big(sizeOf(variance)),
      scale === undefined ? null : values(args, scale),
      big(scale === undefined ? 0 : sizeOf(scale)),
      offset === undefined ? null : values(args, offset),
      big(offset === undefined ? 0 : sizeOf(offset)),
      eps,
      out,
    ));
    return output(args, x.shape, out);
  });

  // Sums and means over a contiguous block of axes.
  const reduce = (args: KernelArgs, mean: boolean): tf.TensorInfo | null => {
    const { x } = args.inputs as Record<string, tf.TensorInfo>;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    if (!allFloat32(x) || x.shape.length === 0 || sizeOf(x) === 0) return null;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    if (axes.length === 0 || !axes.every((a, i) => a === axes[0] + i)) return null;
    const outer = tf.util.sizeFromShape(x.shape.slice(0, axes[0]));
    const reduced = tf.util.sizeFromShape(axes.map((a) => x.shape[a]));
    const inner = tf.util.sizeFromShape(x.shape.slice(axes.at(-1)! + 1));
    const out = allocate(outer * inner);
    check(fn.sn_reduce_sum(values(args, x), big(outer), big(reduced), big(inner), mean ? 1 / reduced : 1, out));
    const outShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d)).filter((_, i) => keepDims || !axes.includes(i));
    return output(args, outShape, out);
  };
  kernels.set("Sum", (args) => reduce(args, false));
  kernels.set("Mean", (args) => reduce(args, true));

  kernels.set("Transpose", (args) => {
    const { x } = args.inputs as Record<string, tf.TensorInfo>;
    const { perm } = args.attrs as { perm: number[] };
    if (!allFloat32(x) || x.shape.length < 1 || x.shape.length > 6 || sizeOf(x) === 0) return null;
    const out = allocate(sizeOf(x));
    check(fn.sn_transpose(
      values(args, x),
      new BigInt64Array(x.shape.map(BigInt)),
      new BigInt64Array(perm.map(BigInt)),
      x.shape.length,
      out,
    ));
    return output(args, perm.map((p) => x.shape[p]), out);
  });

  // Fused training kernels, called by learning/nn/_layers.ts on this backend.
  kernels.set(NATIVE_KERNELS.batchNormTrain, (args) => {
    const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
    const eps = Number((args.attrs as Attrs).eps);
    const channels = x.shape.at(-1)!;
    if (!allFloat32(x, gamma, beta) || sizeOf(gamma) !== channels || sizeOf(beta) !== channels) {
      throw new Error(`${NATIVE_KERNELS.batchNormTrain}: expected float32 x [..., C] with gamma and beta [C]`);
    }
    const y = allocate(sizeOf(x));
    const mean = new Float32Array(channels);
    const variance = new Float32Array(channels);
    const rows = sizeOf(x) / channels;
    const gammaValues = values(args, gamma);
    const betaValues = values(args, beta);
    check(
      fn.sn_batch_norm_train(
        values(args, x),
        big(rows),
        big(channels),
        gammaValues,
        betaValues,
        eps,
        y,
        mean,
        variance,
      ),
    );
    return [
      output(args, x.shape, y),
      output(args, [channels], mean),
      output(args, [channels], variance),
    ] as unknown as tf.TensorInfo;
  });

  kernels.set(NATIVE_KERNELS.batchNormTrainGrad, (args) => {
    const { dy, x, gamma, mean, variance } = args.inputs as Record<string, tf.TensorInfo>;
    const eps = Number((args.attrs as Attrs).eps);
    const channels = x.shape.at(-1)!;
    if (!allFloat32(dy, x, gamma, mean, variance) || !sameShape(dy.shape, x.shape)) {
      throw new Error(`${NATIVE_KERNELS.batchNormTrainGrad}: expected float32 dy and x of one shape`);
    }
    const dx = allocate(sizeOf(x));
    const dGamma = new Float32Array(channels);
    const dBeta = new Float32Array(channels);
    check(fn.sn_batch_norm_train_backward(
      values(args, dy),
      values(args, x),
      big(sizeOf(x) / channels),
      big(channels),
      values(args, gamma),
      values(args, mean),
      values(args, variance),
      eps,
      dx,
      dGamma,
      dBeta,
    ));
    return [
      output(args, x.shape, dx),
      output(args, [channels], dGamma),
      output(args, [channels], dBeta),
    ] as unknown as tf.TensorInfo;
  });

  kernels.set(NATIVE_KERNELS.leakyReluGrad, (args) => {
    const { dy, x } = args.inputs as Record<string, tf.TensorInfo>;
    const alpha = Number((args.attrs as Attrs).alpha);
    if (!allFloat32(dy, x) || !sameShape(dy.shape, x.shape)) {
      throw new Error(`${NATIVE_KERNELS.leakyReluGrad}: expected float32 dy and x of one shape`);
    }
    const dx = allocate(sizeOf(x));
    check(fn.sn_leaky_relu_backward(values(args, dy), values(args, x), big(dx.length), alpha, dx));
    return output(args, x.shape, dx);
  });

  return kernels;
}

interface ConvInfo {
  /** n, h, w, ci, kh, kw, co, sh, sw, pt, pl, pb, pr, oh, ow, as the library reads them. */
  dims: BigInt64Array;
  outShape: number[];
  outChannels: number;
}

/**
 * Returns the geometry of an NHWC convolution with dilation 1 that oneDNN
 * computes as tfjs does, or null for any other (the cpu kernel takes it).
 */
function convInfo(xShape: number[], filterShape: number[], attrs: Attrs): ConvInfo | null {
  if (xShape.length !== 4 || filterShape.length !== 4 || (attrs.dataFormat ?? "NHWC") !== "NHWC") return null;
  const dilations = attrs.dilations ?? 1;
  if (!(dilations === 1 || (Array.isArray(dilations) && dilations.every((d) => d === 1)))) return null;
  if (xShape[3] !== filterShape[2]) return null;

  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as number | [number, number],
    1,
    attrs.pad as "same" | "valid" | number,
    attrs.dimRoundingMode as "floor" | "round" | "ceil" | undefined,
    false,
    "channelsLast",
  );
  const { top, left, bottom, right } = info.padInfo;
  if ([top, left, bottom, right].some((p) => p < 0)) return null;
  // oneDNN derives the output size by floor division; other rounding modes go to the cpu kernel.
  const floorHeight = Math.floor((info.inHeight + top + bottom - info.filterHeight) / info.strideHeight) + 1;
  const floorWidth = Math.floor((info.inWidth + left + right - info.filterWidth) / info.strideWidth) + 1;
  if (info.outHeight !== floorHeight || info.outWidth !== floorWidth) return null;
  if (tf.util.sizeFromShape(xShape) === 0 || tf.util.sizeFromShape(filterShape) === 0) return null;

  const dims = [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outChannels,
    info.strideHeight,
    info.strideWidth,
    top,
    left,
    bottom,
    right,
    info.outHeight,
    info.outWidth,
  ];
  return {
    dims: new BigInt64Array(dims.map(BigInt)),
    outShape: [info.batchSize, info.outHeight, info.outWidth, info.outChannels],
    outChannels: info.outChannels,
  };
}

function values(args: KernelArgs, tensor: tf.TensorInfo): Float32Array {
  const stored = (args.backend as MathBackendCPU).data.get(tensor.dataId).values;
  if (stored instanceof Float32Array) return stored;
  // Some tfjs-backend-cpu kernels store float32 results in other typed arrays.
  if (stored instanceof Int32Array || stored instanceof Uint8Array || stored instanceof Float64Array) {
    return Float32Array.from(stored);
  }
  const kind = stored === undefined ? "no values" : stored.constructor.name;
  throw new Error(
    `native backend: expected float32 values for a ${tensor.dtype} tensor of shape [${tensor.shape}], found ${kind}`,
  );
}

function output(
  args: KernelArgs,
  shape: number[],
  data: Float32Array | Uint8Array,
  dtype: tf.DataType = "float32",
): tf.TensorInfo {
  return (args.backend as MathBackendCPU).makeTensorInfo(shape, dtype, data);
}

function allFloat32(...tensors: (tf.TensorInfo | undefined)[]): boolean {
  return tensors.every((t) => t !== undefined && t.dtype === "float32");
}

/** Converts a size for an i64 parameter of the library. */
function big(value: number): bigint {
  return BigInt(value);
}

function sizeOf(tensor: tf.TensorInfo): number {
  return tf.util.sizeFromShape(tensor.shape);
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isChannelVector(tensor: tf.TensorInfo, channels: number): boolean {
  return sizeOf(tensor) === channels && tensor.shape.every((d, i) => i === tensor.shape.length - 1 || d === 1);
}

/** Returns the broadcast shape of two operands, or null when they do not broadcast. */
function broadcastShape(a: tf.TensorInfo, b: tf.TensorInfo): number[] | null {
  try {
    return tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  } catch {
    return null;
  }
}

/**
 * Returns true when `shape`, without leading ones, is a trailing block of
 * `outShape`: a scalar, a per-channel vector or the same shape. The library
 * then reads element i % size of the operand.
 */
function isTrailingBlock(shape: number[], outShape: number[]): boolean {
  const tail = withoutLeadingOnes(shape);
  return sameShape(tail, outShape.slice(outShape.length - tail.length));
}

/** Element strides of `shape` read as `outShape`: 0 along axes it broadcasts. */
function broadcastStrides(shape: number[], outShape: number[]): BigInt64Array {
  const strides = new BigInt64Array(outShape.length);
  let stride = 1;
  for (let i = outShape.length - 1, j = shape.length - 1; i >= 0; i--, j--) {
    const size = j >= 0 ? shape[j] : 1;
    strides[i] = size === 1 ? 0n : BigInt(stride);
    stride *= size;
  }
  return strides;
}

function withoutLeadingOnes(shape: number[]): number[] {
  let start = 0;
  while (start < shape.length && shape[start] === 1) start++;
  return shape.slice(start);
}
