/**
 * Weak and strong augmentation of a batch of uint8 NHWC RGB images, on the
 * calling thread. {@linkcode AugmentPool} runs the same function in workers.
 *
 * Image i of a batch draws from its own streams
 * `Random.derive(seed, ...labels, indexOffset + i, "weak")` and
 * `Random.derive(seed, ...labels, indexOffset + i, "strong")`, so results
 * do not depend on how a batch is split between workers, and the weak view
 * is the same whether or not the strong view is requested.
 *
 * @example
 * ```ts
 * const { weak, strong } = augmentBatch({
 *   images, count: 448, seed: 0, labels: ["fixmatch", "unlabeled", iteration], kind: "both",
 * });
 * ```
 * @module
 */

import { Random } from "../random.ts";
import { strongAugment, type StrongAugmentOptions, type StrongAugmentRecord } from "./randaugment.ts";
import { weakAugment, type WeakAugmentOptions, type WeakAugmentRecord } from "./weak.ts";

/** Views to make: the weak view, the strong view, or both. */
export type AugmentKind = "weak" | "strong" | "both";

/** A batch to augment. */
export interface AugmentBatchRequest {
  /** `count` images, uint8 NHWC RGB, `count * height * width * 3` bytes. */
  images: Uint8Array;
  count: number;
  /** Image width in pixels (default 32). */
  width?: number;
  /** Image height in pixels (default 32). */
  height?: number;
  /** Run seed. */
  seed: number;
  /** Stream labels, e.g. `["fixmatch", "unlabeled", iteration]`. */
  labels: (string | number)[];
  kind: AugmentKind;
  /** Index of the first image within the whole batch (default 0); used when a batch is split. */
  indexOffset?: number;
  /** Weak view settings (padding, flip probability). */
  weak?: Pick<WeakAugmentOptions, "padding" | "flipProbability">;
  /** Strong view settings (numOps, applyProbability, padding, flip probability). */
  strong?: Omit<StrongAugmentOptions, "width" | "height">;
}

/** Augmented views of a batch, laid out as the input batch. */
export interface AugmentBatchResult {
  /** Weak views (kinds "weak" and "both"). */
  weak?: Uint8Array;
  /** Strong views (kinds "strong" and "both"). */
  strong?: Uint8Array;
  /** Per image: flip and crop drawn for the weak view. */
  weakRecords?: WeakAugmentRecord[];
  /** Per image: RandAugment draw and flip and crop of the strong view. */
  strongRecords?: StrongAugmentRecord[];
}

/**
 * Returns the stream for one view of one image:
 * `Random.derive(seed, ...labels, imageIndex, view)`.
 *
 * @example
 * ```ts
 * const rng = viewRandom(0, ["fixmatch", 12], 5, "strong");
 * ```
 */
export function viewRandom(
  seed: number,
  labels: readonly (string | number)[],
  imageIndex: number,
  view: "weak" | "strong",
): Random {
  return Random.derive(seed, ...labels, imageIndex, view);
}

/**
 * Throws unless the request describes a valid batch.
 *
 * @example
 * ```ts
 * checkAugmentRequest({ images, count: 2, seed: 0, labels: [], kind: "weak" });
 * ```
 */
export function checkAugmentRequest(request: AugmentBatchRequest): void {
  const { images, count, width = 32, height = 32, kind, indexOffset = 0 } = request;
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`count must be a non-negative integer, got ${count}`);
  }
  if (!(images instanceof Uint8Array) || images.length !== count * width * height * 3) {
    throw new RangeError(
      `images must be a Uint8Array of count * height * width * 3 = ${count * width * height * 3} bytes, got ${
        images instanceof Uint8Array ? images.length : typeof images
      }`,
    );
  }
  if (kind !== "weak" && kind !== "strong" && kind !== "both") {
    throw new RangeError(`kind must be "weak", "strong" or "both", got ${JSON.stringify(kind)}`);
  }
  if (!Number.isInteger(indexOffset) || indexOffset < 0) {
    throw new RangeError(`indexOffset must be a non-negative integer, got ${indexOffset}`);
  }
}

/**
 * Makes the requested views of every image in the batch.
 *
 * @example
 * ```ts
 * const { weak } = augmentBatch({ images, count: 64, seed: 1, labels: ["mixmatch", 0, "view1"], kind: "weak" });
 * ```
 */
export function augmentBatch(request: AugmentBatchRequest): AugmentBatchResult {
  checkAugmentRequest(request);
  const { images, count, width = 32, height = 32, seed, labels, kind, indexOffset = 0 } = request;
  const imageBytes = width * height * 3;
  const result: AugmentBatchResult = {};
  if (kind !== "strong") {
    const weak = new Uint8Array(images.length);
    const records: WeakAugmentRecord[] = [];
    for (let i = 0; i < count; i++) {
      const image = images.subarray(i * imageBytes, (i + 1) * imageBytes);
      const rng = viewRandom(seed, labels, indexOffset + i, "weak");
      const { image: view, ...record } = weakAugment(image, rng, { ...request.weak, width, height });
      weak.set(view, i * imageBytes);
      records.push(record);
    }
    result.weak = weak;
    result.weakRecords = records;
  }
  if (kind !== "weak") {
    const strong = new Uint8Array(images.length);
    const records: StrongAugmentRecord[] = [];
    for (let i = 0; i < count; i++) {
      const image = images.subarray(i * imageBytes, (i + 1) * imageBytes);
      const rng = viewRandom(seed, labels, indexOffset + i, "strong");
      const { image: view, ...record } = strongAugment(image, rng, { ...request.strong, width, height });
      strong.set(view, i * imageBytes);
      records.push(record);
    }
    result.strong = strong;
    result.strongRecords = records;
  }
  return result;
}
