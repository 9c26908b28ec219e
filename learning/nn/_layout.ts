/**
 * Exact conversions between PyTorch and TensorFlow.js weight layouts:
 * conv OIHW <-> HWIO, linear [out, in] <-> [in, out]. Values are only moved,
 * never rounded.
 *
 * @module
 */

import type { TensorRole } from "./_architecture.ts";

/** Returns the TensorFlow.js shape of a tensor given its PyTorch shape. */
export function tfjsShape(role: TensorRole, torchShape: number[]): number[] {
  if (role === "conv_weight") {
    const [outChannels, inChannels, kh, kw] = torchShape;
    return [kh, kw, inChannels, outChannels];
  }
  if (role === "fc_weight") {
    const [outFeatures, inFeatures] = torchShape;
    return [inFeatures, outFeatures];
  }
  return [...torchShape];
}

/** Converts values from the PyTorch layout to the TensorFlow.js layout. */
export function torchToTfjs(role: TensorRole, torchShape: number[], data: Float32Array): Float32Array {
  if (role === "conv_weight") return oihwToHwio(torchShape, data);
  if (role === "fc_weight") return transpose2d(torchShape[0], torchShape[1], data);
  return Float32Array.from(data);
}

/** Converts values from the TensorFlow.js layout back to the PyTorch layout. */
export function tfjsToTorch(role: TensorRole, torchShape: number[], data: Float32Array): Float32Array {
  if (role === "conv_weight") return hwioToOihw(torchShape, data);
  if (role === "fc_weight") return transpose2d(torchShape[1], torchShape[0], data);
  return Float32Array.from(data);
}

function oihwToHwio([outChannels, inChannels, kh, kw]: number[], data: Float32Array): Float32Array {
  const result = new Float32Array(data.length);
  for (let o = 0; o < outChannels; o++) {
    for (let i = 0; i < inChannels; i++) {
      for (let h = 0; h < kh; h++) {
        for (let w = 0; w < kw; w++) {
          result[((h * kw + w) * inChannels + i) * outChannels + o] = data[((o * inChannels + i) * kh + h) * kw + w];
        }
      }
    }
  }
  return result;
}

function hwioToOihw([outChannels, inChannels, kh, kw]: number[], data: Float32Array): Float32Array {
  const result = new Float32Array(data.length);
  for (let o = 0; o < outChannels; o++) {
    for (let i = 0; i < inChannels; i++) {
      for (let h = 0; h < kh; h++) {
        for (let w = 0; w < kw; w++) {
          result[((o * inChannels + i) * kh + h) * kw + w] = data[((h * kw + w) * inChannels + i) * outChannels + o];
        }
      }
    }
  }
  return result;
}

/** Transposes a row-major [rows, columns] matrix. */
function transpose2d(rows: number, columns: number, data: Float32Array): Float32Array {
  const result = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      result[c * rows + r] = data[r * columns + c];
    }
  }
  return result;
}
