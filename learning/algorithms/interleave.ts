/**
 * TorchSSL's interleave for MixMatch: swaps slices between the labeled chunk
 * and the unlabeled chunks so that every forward pass gets labeled and
 * unlabeled rows, which keeps BN batch statistics representative.
 *
 * The swap is its own inverse, so applying {@linkcode interleave} to the
 * chunks of logits puts the rows back (de-interleave).
 *
 * @example
 * ```ts
 * interleaveOrder(3, 4); // [0, 5, 10, 11, 4, 1, 6, 7, 8, 9, 2, 3]
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/**
 * Returns the slice boundaries TorchSSL uses inside each chunk of `batch` rows
 * when there are `nu` unlabeled chunks: `nu + 1` near-equal groups, the last ones larger.
 *
 * @example
 * ```ts
 * interleaveOffsets(4, 2); // [0, 1, 2, 4]
 * ```
 */
export function interleaveOffsets(batch: number, nu: number): number[] {
  if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(nu) || nu < 0) {
    throw new RangeError(`interleaveOffsets: need batch >= 1 and nu >= 0 integers, got ${batch} and ${nu}`);
  }
  const groups = new Array<number>(nu + 1).fill(Math.floor(batch / (nu + 1)));
  const remainder = batch - groups.reduce((a, b) => a + b, 0);
  for (let x = 0; x < remainder; x++) groups[groups.length - 1 - x] += 1;
  const offsets = [0];
  for (const group of groups) offsets.push(offsets[offsets.length - 1] + group);
  return offsets;
}

/**
 * Swaps slice `i` of chunk 0 with slice `i` of chunk `i` for i = 1..nu, on arrays.
 * `chunks` must all have `batch` elements. Returns new arrays.
 *
 * @example
 * ```ts
 * interleaveArrays([[0, 1], [2, 3]], 2); // [[0, 3], [2, 1]]
 * ```
 */
export function interleaveArrays<T>(chunks: readonly (readonly T[])[], batch: number): T[][] {
  checkChunkSizes(chunks.map((chunk) => chunk.length), batch);
  const offsets = interleaveOffsets(batch, chunks.length - 1);
  const slices = chunks.map((chunk) => offsets.slice(0, -1).map((start, p) => chunk.slice(start, offsets[p + 1])));
  for (let i = 1; i < chunks.length; i++) {
    [slices[0][i], slices[i][i]] = [slices[i][i], slices[0][i]];
  }
  return slices.map((parts) => parts.flat());
}

/**
 * Applies TorchSSL's interleave to tensors of `batch` rows each. Returns new tensors;
 * the inputs are not disposed.
 *
 * @example
 * ```ts
 * const chunks = interleave(tf.split(mixedInputs, 3), 4);
 * ```
 */
export function interleave<T extends tf.Tensor>(chunks: readonly T[], batch: number): T[] {
  checkChunkSizes(chunks.map((chunk) => chunk.shape[0]), batch);
  const order = interleaveOrder(chunks.length, batch);
  return tf.tidy(() => {
    const all = tf.concat(chunks as T[], 0);
    const result: T[] = [];
    for (let c = 0; c < chunks.length; c++) {
      const rows = tf.tensor1d(order.subarray(c * batch, (c + 1) * batch), "int32");
      result.push(tf.gather(all, rows) as T);
    }
    return result;
  });
}

/**
 * Returns the row order of the interleaved chunks: row i of `concat(interleave(chunks))`
 * is row `order[i]` of `concat(chunks)`. The permutation is its own inverse.
 *
 * @example
 * ```ts
 * interleaveOrder(3, 4); // [0, 5, 10, 11, 4, 1, 6, 7, 8, 9, 2, 3]
 * ```
 */
export function interleaveOrder(numChunks: number, batch: number): Int32Array {
  const rows = Array.from({ length: numChunks }, (_, c) => Array.from({ length: batch }, (_, r) => c * batch + r));
  return Int32Array.from(interleaveArrays(rows, batch).flat());
}

function checkChunkSizes(sizes: number[], batch: number): void {
  if (sizes.length === 0) throw new Error("interleave: no chunks given");
  if (sizes.some((size) => size !== batch)) {
    throw new Error(
      `interleave: every chunk must have ${batch} rows, got [${sizes}]; the unlabeled batch must be a multiple of the labeled batch`,
    );
  }
}
