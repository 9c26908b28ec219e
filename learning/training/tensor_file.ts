/**
 * A file of named float32 tensors: a JSON index (`<name>.json`) next to the
 * raw little-endian data (`<name>.bin`), the layout the golden references
 * use, so weights can be compared or loaded with a few lines of NumPy.
 *
 * @example
 * ```ts
 * await writeTensorFile("out/weights", model.stateDict());
 * const tensors = await readTensorFile("out/weights");
 * ```
 * @module
 */

import { writeFileSynced } from "../durable_write.ts";

/** One named tensor. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

interface TensorIndexEntry {
  name: string;
  shape: number[];
  offset_elements: number;
  numel: number;
}

interface TensorIndex {
  format: "semisup-tensors";
  dtype: "float32";
  byte_order: "little";
  total_elements: number;
  tensors: TensorIndexEntry[];
}

/**
 * Writes tensors as `<base>.bin` and `<base>.json`, with every byte synced
 * to disk before returning.
 */
export async function writeTensorFile(base: string, tensors: ReadonlyMap<string, NamedTensor>): Promise<void> {
  const entries: TensorIndexEntry[] = [];
  let total = 0;
  for (const [name, tensor] of tensors) {
    const numel = tensor.shape.reduce((a, b) => a * b, 1);
    if (numel !== tensor.data.length) {
      throw new Error(
        `tensor ${name}: shape [${tensor.shape}] has ${numel} elements but data has ${tensor.data.length}`,
      );
    }
    entries.push({ name, shape: tensor.shape, offset_elements: total, numel });
    total += numel;
  }
  const data = new Float32Array(total);
  for (const entry of entries) data.set(tensors.get(entry.name)!.data, entry.offset_elements);
  const index: TensorIndex = {
    format: "semisup-tensors",
    dtype: "float32",
    byte_order: "little",
    total_elements: total,
    tensors: entries,
  };
  await writeFileSynced(`${base}.bin`, new Uint8Array(data.buffer));
  await writeFileSynced(`${base}.json`, new TextEncoder().encode(JSON.stringify(index, null, 1) + "\n"));
}

/** Reads tensors written by {@linkcode writeTensorFile}. */
export async function readTensorFile(base: string): Promise<Map<string, NamedTensor>> {
  const index = JSON.parse(await Deno.readTextFile(`${base}.json`)) as TensorIndex;
  if (index.format !== "semisup-tensors" || index.dtype !== "float32") {
    throw new Error(`${base}.json is not a semisup tensor index (format ${index.format}, dtype ${index.dtype})`);
  }
  const bytes = await Deno.readFile(`${base}.bin`);
  if (bytes.byteLength !== index.total_elements * 4) {
    throw new Error(
      `${base}.bin has ${bytes.byteLength} bytes, its index expects ${
        index.total_elements * 4
      }; the file is truncated or from another run`,
    );
  }
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, index.total_elements);
  const tensors = new Map<string, NamedTensor>();
  for (const entry of index.tensors) {
    tensors.set(entry.name, {
      shape: entry.shape,
      data: all.slice(entry.offset_elements, entry.offset_elements + entry.numel),
    });
  }
  return tensors;
}
