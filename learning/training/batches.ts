/**
 * Sampling and augmenting the batches of one training iteration.
 *
 * Every random choice of iteration k comes from streams derived from
 * (seed, k), so iteration k sees the same images and augmentations whether
 * the run started at 0 or resumed from a checkpoint. Indices are drawn with
 * replacement, as TorchSSL's RandomSampler(replacement=True) does.
 *
 * @example
 * ```ts
 * const batch = fixmatchBatch(train, labeledIndices, { seed: 0, iteration: 12, batchSize: 64, uratio: 7 });
 * ```
 * @module
 */

import { Random } from "../random.ts";
import type { ImageSet } from "../data/dataset.ts";
import { weakAugment } from "../augment/weak.ts";
import { type RandAugmentOptions, strongAugment } from "../augment/randaugment.ts";
import type { FixMatchBatch } from "../algorithms/fixmatch.ts";

/** Where the batch of an iteration comes from. */
export interface BatchPlan {
  seed: number;
  iteration: number;
  /** Labeled images per iteration. */
  batchSize: number;
  /** Unlabeled images per labeled image (mu). */
  uratio: number;
}

/** A MixMatch batch: labeled weak views and K weak views of each unlabeled image. */
export interface MixMatchBatch {
  labeled: Uint8Array;
  labels: Int32Array;
  unlabeledViews: Uint8Array[];
  height: number;
  width: number;
}

/** Draws `count` indices with replacement from `population` (indices or a size). */
export function sampleWithReplacement(random: Random, population: Int32Array | number, count: number): Int32Array {
  const out = new Int32Array(count);
  if (typeof population === "number") {
    for (let i = 0; i < count; i++) out[i] = random.int(population);
  } else {
    for (let i = 0; i < count; i++) out[i] = population[random.int(population.length)];
  }
  return out;
}

function imageAt(set: ImageSet, index: number): Uint8Array {
  const bytes = set.height * set.width * set.channels;
  return set.images.subarray(index * bytes, (index + 1) * bytes);
}

function augmentAll(
  set: ImageSet,
  indices: Int32Array,
  stream: (i: number) => Random,
  augment: (image: Uint8Array, random: Random) => Uint8Array,
): Uint8Array {
  const bytes = set.height * set.width * set.channels;
  const out = new Uint8Array(indices.length * bytes);
  for (let i = 0; i < indices.length; i++) out.set(augment(imageAt(set, indices[i]), stream(i)), i * bytes);
  return out;
}

function labelsOf(set: ImageSet, indices: Int32Array): Int32Array {
  return Int32Array.from(indices, (i) => set.labels[i]);
}

/** Samples and augments a FixMatch batch: weak labeled, weak and strong unlabeled views. */
export function fixmatchBatch(
  train: ImageSet,
  labeledIndices: Int32Array,
  plan: BatchPlan,
  randAugment: RandAugmentOptions,
): FixMatchBatch {
  const { seed, iteration, batchSize, uratio } = plan;
  const size = { width: train.width, height: train.height };
  const labeledPick = sampleWithReplacement(Random.derive(seed, "labeled", iteration), labeledIndices, batchSize);
  const unlabeledPick = sampleWithReplacement(Random.derive(seed, "unlabeled", iteration), train.count, batchSize * uratio);
  const weak = (image: Uint8Array, random: Random) => weakAugment(image, random, size).image;

  return {
    ...size,
    labeled: augmentAll(train, labeledPick, (i) => Random.derive(seed, "labeled-weak", iteration, i), weak),
    labels: labelsOf(train, labeledPick),
    weak: augmentAll(train, unlabeledPick, (i) => Random.derive(seed, "unlabeled-weak", iteration, i), weak),
    strong: augmentAll(
      train,
      unlabeledPick,
      (i) => Random.derive(seed, "unlabeled-strong", iteration, i),
      (image, random) => strongAugment(image, random, { ...randAugment, ...size }).image,
    ),
  };
}

/** Samples and augments a MixMatch batch: weak labeled views and `numViews` weak views per unlabeled image. */
export function mixmatchBatch(
  train: ImageSet,
  labeledIndices: Int32Array,
  plan: BatchPlan,
  numViews: number,
): MixMatchBatch {
  const { seed, iteration, batchSize, uratio } = plan;
  const size = { width: train.width, height: train.height };
  const labeledPick = sampleWithReplacement(Random.derive(seed, "labeled", iteration), labeledIndices, batchSize);
  const unlabeledPick = sampleWithReplacement(Random.derive(seed, "unlabeled", iteration), train.count, batchSize * uratio);
  const weak = (image: Uint8Array, random: Random) => weakAugment(image, random, size).image;

  const unlabeledViews: Uint8Array[] = [];
  for (let view = 0; view < numViews; view++) {
    unlabeledViews.push(augmentAll(train, unlabeledPick, (i) => Random.derive(seed, "unlabeled-weak", iteration, view, i), weak));
  }
  return {
    ...size,
    labeled: augmentAll(train, labeledPick, (i) => Random.derive(seed, "labeled-weak", iteration, i), weak),
    labels: labelsOf(train, labeledPick),
    unlabeledViews,
  };
}
