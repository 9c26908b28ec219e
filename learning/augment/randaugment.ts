/**
 * RandAugment as TorchSSL uses it for FixMatch's strong view, and the strong
 * transform (RandAugment, then the weak flip and crop).
 *
 * TorchSSL's `RandAugment(3, 5)` picks 3 operations from `augment_list()`
 * with replacement, applies every one with a value uniform in its range, and
 * then always applies Cutout with value `uniform · 0.5`. The magnitude 5 is
 * unused. The FixMatch paper's variant applies each chosen operation with
 * probability 0.5: set `applyProbability`.
 *
 * The operations themselves are re-exported from `randaugment_ops.ts`.
 *
 * @example
 * ```ts
 * const rng = Random.derive(0, "strong", 3);
 * const { image: view, randAugment: record } = strongAugment(cifarImage, rng);
 * console.log(record.ops.map((op) => op.name), record.cutout);
 * ```
 * @module
 */

import type { Random } from "../random.ts";
import { checkImage } from "./_pil.ts";
import { cutout, drawCutoutCentre, RANDAUGMENT_OPS, randAugmentOp, type RandAugmentOpName } from "./randaugment_ops.ts";
import { weakAugment, type WeakAugmentOptions, type WeakAugmentRecord } from "./weak.ts";

export * from "./randaugment_ops.ts";

/** Settings of {@linkcode randAugment}. */
export interface RandAugmentOptions {
  /** Image width in pixels (default 32). */
  width?: number;
  /** Image height in pixels (default 32). */
  height?: number;
  /** Number of operations drawn with replacement (default 3, TorchSSL's n). */
  numOps?: number;
  /** Probability that each drawn operation is applied (default 1, TorchSSL; the FixMatch paper uses 0.5). */
  applyProbability?: number;
}

/** One drawn RandAugment operation. */
export interface RandAugmentStep {
  name: RandAugmentOpName;
  /** Value drawn uniformly in the operation's range. */
  value: number;
  /** False when the per-operation coin (applyProbability) skipped it. */
  applied: boolean;
}

/** The Cutout that closes every RandAugment draw. */
export interface CutoutStep {
  /** Side as a fraction of the width, uniform in [0, 0.5); 0 leaves the image unchanged. */
  value: number;
  /** Centre column, in (1, width]. */
  centreX: number;
  /** Centre row, in (1, height]. */
  centreY: number;
}

/** Everything one RandAugment draw did, enough to replay it with {@linkcode replayRandAugment}. */
export interface RandAugmentRecord {
  ops: RandAugmentStep[];
  cutout: CutoutStep;
}

/** Record of one strong augmentation: the RandAugment draw and the flip and crop. */
export interface StrongAugmentRecord {
  randAugment: RandAugmentRecord;
  weak: WeakAugmentRecord;
}

/** Settings of {@linkcode strongAugment}: RandAugment settings plus the weak crop and flip settings. */
export type StrongAugmentOptions = RandAugmentOptions & Pick<WeakAugmentOptions, "padding" | "flipProbability">;

function readRandAugmentOptions(options: RandAugmentOptions): Required<RandAugmentOptions> {
  const { width = 32, height = 32, numOps = 3, applyProbability = 1 } = options;
  if (!Number.isInteger(numOps) || numOps < 0) {
    throw new RangeError(`numOps must be a non-negative integer, got ${numOps}`);
  }
  if (!(applyProbability >= 0 && applyProbability <= 1)) {
    throw new RangeError(`applyProbability must be in [0, 1], got ${applyProbability}`);
  }
  return { width, height, numOps, applyProbability };
}

/**
 * Draws a RandAugment plan from `rng` without touching an image. Per
 * operation it draws, in order: the operation index (`int(14)`), the value
 * (`uniform`), the apply coin (`uniform`, always drawn so the same seed picks
 * the same operations for every applyProbability). Then the Cutout value
 * (`uniform · 0.5`) and its centre (two `uniform`s, see `drawCutoutCentre`).
 *
 * @example
 * ```ts
 * const plan = drawRandAugment(Random.derive(1, "plan"), { applyProbability: 0.5 });
 * ```
 */
export function drawRandAugment(rng: Random, options: RandAugmentOptions = {}): RandAugmentRecord {
  const { width, height, numOps, applyProbability } = readRandAugmentOptions(options);
  const ops: RandAugmentStep[] = [];
  for (let i = 0; i < numOps; i++) {
    const op = RANDAUGMENT_OPS[rng.int(RANDAUGMENT_OPS.length)];
    const value = op.min + (op.max - op.min) * rng.uniform();
    const applied = rng.uniform() < applyProbability;
    ops.push({ name: op.name, value, applied });
  }
  const value = rng.uniform() * 0.5;
  const [centreX, centreY] = drawCutoutCentre(width, height, rng.uniform(), rng.uniform());
  return { ops, cutout: { value, centreX, centreY } };
}

/**
 * Applies a recorded RandAugment draw: the applied operations in order, then Cutout.
 *
 * @example
 * ```ts
 * const again = replayRandAugment(image, record, { width: 32, height: 32 });
 * ```
 */
export function replayRandAugment(
  image: Uint8Array,
  record: RandAugmentRecord,
  options: Pick<RandAugmentOptions, "width" | "height"> = {},
): Uint8Array {
  const { width = 32, height = 32 } = options;
  checkImage(image, width, height);
  let current = image;
  for (const step of record.ops) {
    if (step.applied) current = randAugmentOp(step.name).apply(current, width, height, step.value);
  }
  const { value, centreX, centreY } = record.cutout;
  return cutout(current, width, height, value, centreX, centreY);
}

/**
 * Draws and applies TorchSSL's RandAugment (see {@linkcode drawRandAugment}
 * for the order of draws). Returns the new image and what was applied.
 *
 * @example
 * ```ts
 * const { image: view, record } = randAugment(image, Random.derive(0, "ra", 5), { applyProbability: 0.5 });
 * ```
 */
export function randAugment(
  image: Uint8Array,
  rng: Random,
  options: RandAugmentOptions = {},
): { image: Uint8Array; record: RandAugmentRecord } {
  const { width = 32, height = 32 } = options;
  checkImage(image, width, height);
  const record = drawRandAugment(rng, options);
  return { image: replayRandAugment(image, record, { width, height }), record };
}

/**
 * Applies TorchSSL's strong transform: RandAugment, then the weak flip and
 * reflect-pad crop, both drawn from `rng` in that order.
 *
 * @example
 * ```ts
 * const { image: view, randAugment: ra, weak } = strongAugment(image, Random.derive(0, "strong", 9));
 * ```
 */
export function strongAugment(
  image: Uint8Array,
  rng: Random,
  options: StrongAugmentOptions = {},
): StrongAugmentRecord & { image: Uint8Array } {
  const { width = 32, height = 32, padding, flipProbability } = options;
  const augmented = randAugment(image, rng, options);
  const { image: view, ...weak } = weakAugment(augmented.image, rng, { width, height, padding, flipProbability });
  return { image: view, randAugment: augmented.record, weak };
}
