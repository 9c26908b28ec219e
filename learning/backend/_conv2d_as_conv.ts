/**
 * Convolution gradients written as forward convolutions.
 *
 * Both gradients of a 2D convolution are themselves convolutions of
 * rearranged operands, so a backend with a fast `Conv2D` kernel can compute
 * them with that kernel plus a few reshapes and transposes. Every function
 * here works on `TensorInfo` values inside a kernel: it calls the backend's
 * own kernel functions directly (not `tf.*` ops, which would go through the
 * engine) and frees each intermediate with `backend.disposeData`.
 *
 * Notation (NHWC, dilation 1): x is [N, H, W, Ci], the filter w is
 * [KH, KW, Ci, Co], dy is [N, OH, OW, Co], s is the stride and the forward
 * pass is `y[n, oh, ow, co] = sum x_pad[n, oh*s + kh, ow*s + kw, ci] * w[kh, kw, ci, co]`.
 *
 * - Filter gradient: `dW[kh, kw, ci, co] = sum_{n, oh, ow}
 *   x_pad[n, oh*s + kh, ow*s + kw, ci] * dy[n, oh, ow, co]` is a stride-1
 *   convolution with dilation s. Its batch is Ci, its input channels are N
 *   and its filter is dy laid out as [OH, OW, N, Co].
 * - Input gradient, stride 1: dy padded by K - 1 - pad on each side,
 *   convolved with the spatially flipped filter with in and out channels
 *   swapped ([KH, KW, Co, Ci]).
 * - Input gradient, stride s > 1 (sub-pixel form): the rows r of dx with
 *   `(r + padTop) % s == p` only receive filter rows `p, p + s, p + 2s, ...`,
 *   so each of the s*s phases is a stride-1 convolution of dy with a
 *   sub-filter, and the phase outputs are interleaved into dx. This does the
 *   same multiply-adds as the forward pass, where inserting zeros into dy
 *   would do s*s times as many.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

type Shape4D = [number, number, number, number];
type Padding = tf.backend_util.ExplicitPadding | "valid" | "same" | number;

/** Attributes of the `Conv2DBackpropFilter` kernel (see tfjs-core). */
export interface BackpropFilterAttrs {
  strides: [number, number] | number;
  pad: Padding;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
  filterShape: Shape4D;
}

/** Attributes of the `Conv2DBackpropInput` kernel (see tfjs-core). */
export interface BackpropInputAttrs {
  strides: [number, number] | number;
  pad: Padding;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
  inputShape: Shape4D;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Placement of the sub-pixel phase outputs of a strided input gradient in dx. */
interface PhaseLayout {
  stride: number;
  /** Rows Q and columns Q' of each phase output. */
  rows: number;
  cols: number;
  padTop: number;
  padLeft: number;
  /** Shape of dx, [N, H, W, Ci]. */
  outShape: Shape4D;
}

/**
 * Runs kernels of one backend on `TensorInfo` values and frees every
 * intermediate it made when {@link KernelScope.dispose} is called.
 */
class KernelScope {
  readonly #backendName: string;
  readonly #backend: tf.KernelBackend;
  readonly #temporaries: tf.TensorInfo[] = [];

  constructor(backendName: string, backend: tf.KernelBackend) {
    this.#backendName = backendName;
    this.#backend = backend;
  }

  /** Runs kernel `name`; its output is freed by `dispose` unless `keep` is set. */
  run(
    name: string,
    inputs: tf.NamedTensorInfoMap | tf.TensorInfo[],
    attrs: Record<string, unknown>,
    keep = false,
  ): tf.TensorInfo {
    const config = tf.getKernel(name, this.#backendName);
    if (config === undefined) {
      throw new Error(
        `Kernel '${name}' is not registered for backend '${this.#backendName}', ` +
          `and the convolution gradients need it; import the backend package first.`,
      );
    }
    const args: KernelArgs = {
      inputs: inputs as tf.NamedTensorInfoMap,
      backend: this.#backend,
      attrs: attrs as tf.NamedAttrMap,
    };
    const out = config.kernelFunc(args) as tf.TensorInfo;
    if (!keep) this.#temporaries.push(out);
    return out;
  }

  reshape(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    return this.run("Reshape", { x }, { shape });
  }

  transpose(x: tf.TensorInfo, perm: number[], keep = false): tf.TensorInfo {
    return this.run("Transpose", { x }, { perm }, keep);
  }

  slice(x: tf.TensorInfo, begin: number[], size: number[], keep = false): tf.TensorInfo {
    return this.run("Slice", { x }, { begin, size }, keep);
  }

  /** Runs a stride-1 NHWC `Conv2D` with explicit [top, bottom] and [left, right] padding. */
  conv2d(
    x: tf.TensorInfo,
    filter: tf.TensorInfo,
    padHeight: [number, number],
    padWidth: [number, number],
    dilations: [number, number],
    keep = false,
  ): tf.TensorInfo {
    const attrs = {
      strides: [1, 1],
      pad: [[0, 0], padHeight, padWidth, [0, 0]],
      dataFormat: "NHWC",
      dilations,
      dimRoundingMode: undefined,
    };
    return this.run("Conv2D", { x, filter }, attrs, keep);
  }

  /**
   * Writes the sub-pixel phase outputs into one dx tensor: element
   * [n, q, q', c] of phase (ph, pw) lands at
   * [n, q*s + ph - padTop, q'*s + pw - padLeft, c] when that is inside dx.
   * A null phase leaves its positions 0. Runs in JavaScript because the wasm
   * backend's `Concat` copies one channel row per call: with `Concat` plus
   * `DepthToSpace`, dx of a WideResNet stride-2 layer took 2 times longer.
   */
  interleavePhases(phases: (tf.TensorInfo | null)[], layout: PhaseLayout): tf.TensorInfo {
    const { stride, rows, cols, padTop, padLeft, outShape } = layout;
    const [batchSize, height, width, channels] = outShape;
    const dx = new Float32Array(batchSize * height * width * channels);
    for (let phase = 0; phase < phases.length; phase++) {
      const info = phases[phase];
      if (info === null || info === undefined) continue;
      const values = this.#backend.readSync(info.dataId) as Float32Array;
      const rowOffset = Math.floor(phase / stride) - padTop;
      const colOffset = (phase % stride) - padLeft;
      for (let n = 0; n < batchSize; n++) {
        for (let q = 0; q < rows; q++) {
          const r = q * stride + rowOffset;
          if (r < 0 || r >= height) continue;
          const srcRow = (n * rows + q) * cols;
          const dstRow = (n * height + r) * width;
          for (let qc = 0; qc < cols; qc++) {
            const c = qc * stride + colOffset;
            if (c < 0 || c >= width) continue;
            let src = (srcRow + qc) * channels;
            let dst = (dstRow + c) * channels;
            for (let k = 0; k < channels; k++) dx[dst++] = values[src++];
          }
        }
      }
    }
    const dataId = this.#backend.write(dx, outShape, "float32");
    return { dataId, shape: outShape, dtype: "float32" };
  }

  dispose(): void {
    for (const t of this.#temporaries) this.#backend.disposeData(t.dataId);
    this.#temporaries.length = 0;
  }
}

function computeInfo(
  inputShape: Shape4D,
  filterShape: Shape4D,
  attrs: BackpropFilterAttrs | BackpropInputAttrs,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inputShape,
    filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
}

/**
 * Computes the filter gradient of an NHWC convolution with dilation 1 as one
 * forward `Conv2D` of the backend `backendName`.
 *
 * The forward convolution reads rows `oh*s + kh - padTop` of x. Rows past
 * the last window (possible when s > 1) are cut off, because the rewritten
 * convolution must output exactly KH rows and cannot take a negative bottom
 * padding.
 */
export function conv2dBackpropFilterAsConv(
  backendName: string,
  backend: tf.KernelBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  attrs: BackpropFilterAttrs,
): tf.TensorInfo {
  const info = computeInfo(x.shape as Shape4D, attrs.filterShape, attrs);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, padInfo } = info;

  // Rows (columns) of x that some window reads, and the bottom (right)
  // padding that makes the dilated dy filter end exactly on the last one.
  const spanHeight = filterHeight + strideHeight * (outHeight - 1) - padInfo.top;
  const spanWidth = filterWidth + strideWidth * (outWidth - 1) - padInfo.left;
  const usedHeight = Math.min(inHeight, spanHeight);
  const usedWidth = Math.min(inWidth, spanWidth);
  if (usedHeight <= 0 || usedWidth <= 0) {
    throw new Error(
      `Conv2DBackpropFilter: padding ${JSON.stringify(padInfo)} leaves no input pixel ` +
        `under any window of filter [${filterHeight}, ${filterWidth}]; use a padding below the filter size.`,
    );
  }

  const scope = new KernelScope(backendName, backend);
  try {
    // x [N, H, W, Ci] -> [Ci, H', W', N] as a 2D transpose, an optional crop
    // and a transpose that moves blocks of N values. For x [64, 32, 32, 32]
    // the two transposes took a third to a half of the time of one 4D
    // transpose on tfjs-backend-wasm 4.22.
    const xFlat = scope.reshape(x, [batchSize, inHeight * inWidth * inChannels]);
    let xByPixel = scope.reshape(
      scope.transpose(xFlat, [1, 0]),
      [inHeight, inWidth, inChannels * batchSize],
    );
    if (usedHeight < inHeight || usedWidth < inWidth) {
      xByPixel = scope.slice(xByPixel, [0, 0, 0], [usedHeight, usedWidth, inChannels * batchSize]);
    }
    const xByChannel = scope.reshape(
      scope.transpose(
        scope.reshape(xByPixel, [usedHeight * usedWidth, inChannels, batchSize]),
        [1, 0, 2],
      ),
      [inChannels, usedHeight, usedWidth, batchSize],
    );

    // dy [N, OH, OW, Co] -> [OH, OW, N, Co]: a filter with N in and Co out channels.
    const dyAsFilter = scope.reshape(
      scope.transpose(scope.reshape(dy, [batchSize, outHeight * outWidth, outChannels]), [1, 0, 2]),
      [outHeight, outWidth, batchSize, outChannels],
    );

    const dwByChannel = scope.conv2d(
      xByChannel,
      dyAsFilter,
      [padInfo.top, spanHeight - usedHeight],
      [padInfo.left, spanWidth - usedWidth],
      [strideHeight, strideWidth],
    );
    // [Ci, KH, KW, Co] -> [KH, KW, Ci, Co].
    return scope.transpose(dwByChannel, [1, 2, 0, 3], true);
  } finally {
    scope.dispose();
  }
}

/**
 * Returns true when {@link conv2dBackpropInputAsConv} handles these
 * attributes: NHWC, equal strides along height and width, and no padding
 * side of filter size or more.
 */
export function canBackpropInputAsConv(
  filterShape: readonly number[],
  attrs: BackpropInputAttrs,
): boolean {
  if (attrs.dataFormat !== "NHWC") return false;
  const info = computeInfo(attrs.inputShape, filterShape as Shape4D, attrs);
  const { padInfo, filterHeight, filterWidth } = info;
  return info.strideHeight === info.strideWidth &&
    Math.max(padInfo.top, padInfo.bottom) <= filterHeight - 1 &&
    Math.max(padInfo.left, padInfo.right) <= filterWidth - 1;
}

/**
 * Computes the input gradient of an NHWC convolution with forward `Conv2D`
 * calls of the backend `backendName`: one call for stride 1, one per
 * sub-pixel phase for larger strides. The caller checks
 * {@link canBackpropInputAsConv} first.
 */
export function conv2dBackpropInputAsConv(
  backendName: string,
  backend: tf.KernelBackend,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  attrs: BackpropInputAttrs,
): tf.TensorInfo {
  const info = computeInfo(attrs.inputShape, filter.shape as Shape4D, attrs);
  const scope = new KernelScope(backendName, backend);
  try {
    // flipped[a, b, co, ci] = w[KH - 1 - a, KW - 1 - b, ci, co].
    const flipped = scope.transpose(
      scope.run("Reverse", { x: filter }, { dims: [0, 1] }),
      [0, 1, 3, 2],
    );
    if (info.strideHeight === 1) {
      const { filterHeight, filterWidth, padInfo } = info;
      return scope.conv2d(
        dy,
        flipped,
        [filterHeight - 1 - padInfo.top, filterHeight - 1 - padInfo.bottom],
        [filterWidth - 1 - padInfo.left, filterWidth - 1 - padInfo.right],
        [1, 1],
        true,
      );
    }
    return backpropInputByPhases(scope, info, dy, flipped);
  } finally {
    scope.dispose();
  }
}

/** One axis of a sub-pixel phase: which flipped-filter taps it uses. */
interface PhaseAxis {
  /** Number of filter taps of this phase (0 when the stride exceeds the filter). */
  taps: number;
  /** First tap in the flipped filter; later taps follow every `stride` entries. */
  start: number;
}

function phaseAxis(filterSize: number, stride: number, phase: number): PhaseAxis {
  const taps = Math.max(0, Math.ceil((filterSize - phase) / stride));
  // Taps p, p + s, ..., p + (taps - 1)s of w are, in the flipped filter,
  // K - 1 - p - (taps - 1)s, ..., K - 1 - p: ascending with step s.
  return { taps, start: filterSize - 1 - phase - (taps - 1) * stride };
}

/**
 * Computes dx for stride s > 1 from s*s stride-1 convolutions.
 *
 * Phase (ph, pw) produces rows q of `dxPadded[q*s + ph]`, where dxPadded is
 * dx shifted down by padTop (right by padLeft); `dxPadded[q*s + p] =
 * sum_j dy[q - j] * w[p + j*s]`. Its rows span q in [0, Q) with
 * Q = ceil((H + padTop) / s), which covers every row of dx.
 */
function backpropInputByPhases(
  scope: KernelScope,
  info: tf.backend_util.Conv2DInfo,
  dy: tf.TensorInfo,
  flipped: tf.TensorInfo,
): tf.TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, padInfo } = info;
  const stride = info.strideHeight;
  const rows = Math.ceil((inHeight + padInfo.top) / stride);
  const cols = Math.ceil((inWidth + padInfo.left) / stride);

  const phases: (tf.TensorInfo | null)[] = [];
  for (let ph = 0; ph < stride; ph++) {
    const rowAxis = phaseAxis(filterHeight, stride, ph);
    for (let pw = 0; pw < stride; pw++) {
      const colAxis = phaseAxis(filterWidth, stride, pw);
      if (rowAxis.taps === 0 || colAxis.taps === 0) {
        phases.push(null); // no filter tap reaches this phase: its dx stays 0
        continue;
      }
      const subFilter = scope.run("StridedSlice", { x: flipped }, {
        begin: [rowAxis.start, colAxis.start, 0, 0],
        end: [
          rowAxis.start + (rowAxis.taps - 1) * stride + 1,
          colAxis.start + (colAxis.taps - 1) * stride + 1,
          outChannels,
          inChannels,
        ],
        strides: [stride, stride, 1, 1],
        beginMask: 0,
        endMask: 0,
        ellipsisMask: 0,
        newAxisMask: 0,
        shrinkAxisMask: 0,
      });
      // Top padding taps - 1 aligns dy[q - j] with tap j; the bottom padding
      // makes the output `rows` tall (rows >= OH when padBottom < KH).
      phases.push(scope.conv2d(
        dy,
        subFilter,
        [rowAxis.taps - 1, rows - outHeight],
        [colAxis.taps - 1, cols - outWidth],
        [1, 1],
      ));
    }
  }
  return scope.interleavePhases(phases, {
    stride,
    rows,
    cols,
    padTop: padInfo.top,
    padLeft: padInfo.left,
    outShape: [batchSize, inHeight, inWidth, inChannels],
  });
}
