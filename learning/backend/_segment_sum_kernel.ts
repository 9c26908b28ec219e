/**
 * `UnsortedSegmentSum` for the wasm backend, which tfjs-backend-wasm 4.22
 * lacks. tfjs uses it for the gradient of `tf.gather`, so without it a loss
 * that gathers rows (MixMatch's interleave) cannot be differentiated. The
 * sums run in JavaScript on the wasm heap's data; the tensors involved are
 * small (logits and index vectors).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";

const KERNEL = "UnsortedSegmentSum";

function unsortedSegmentSum(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = args.inputs.x as tf.TensorInfo;
  const segmentIds = args.inputs.segmentIds as tf.TensorInfo;
  const numSegments = args.attrs!.numSegments as number;
  if (x.dtype !== "float32" && x.dtype !== "int32") {
    throw new Error(`${KERNEL} on wasm supports float32 and int32, got ${x.dtype}`);
  }
  const values = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const ids = backend.typedArrayFromHeap(segmentIds) as Int32Array;
  const rows = segmentIds.shape.reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(segmentIds.shape.length).reduce((a, b) => a * b, 1);
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const out = backend.makeOutput(outShape, x.dtype);
  const target = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
  target.fill(0);
  for (let row = 0; row < rows; row++) {
    const segment = ids[row];
    // TensorFlow drops rows whose segment id is out of range.
    if (segment < 0 || segment >= numSegments) continue;
    const from = row * inner;
    const to = segment * inner;
    for (let k = 0; k < inner; k++) target[to + k] += values[from + k];
  }
  return out;
}

/** Registers the kernel for "wasm" unless one is already registered. */
export function registerWasmSegmentSum(): void {
  if (tf.getKernel(KERNEL, "wasm") === undefined) {
    tf.registerKernel({ kernelName: KERNEL, backendName: "wasm", kernelFunc: unsortedSegmentSum as tf.KernelFunc });
  }
}
