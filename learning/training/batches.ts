/**
 * Sampling and augmenting the batches of one training iteration.
 *
 * Every random choice of iteration k comes from streams derived from
 * (seed, k). Iteration k therefore gets the same images and augmentations
 * whether the run started at 0 or resumed from a checkpoint, and whether the
 * augmentation ran inline or in worker threads. Indices are drawn with
 * replacement, as TorchSSL's RandomSampler(replacement=True) does.
 *
 * @example
 * ```ts
 * const augment = inlineAugment;
 * const batch = await fixmatchBatch(train, labeledIndices, { seed: 0, iteration: 12, batchSize: 64, uratio: 7 }, {}, augment);
 * ```
 * @module
 */

import { Random } from "../random.ts";
import type { ImageSet } from "../data/dataset.ts";
import { augmentBatch, type AugmentBatchRequest, type AugmentBatchResult } from "../augment/augment_batch.ts";
import type { RandAugmentOptions } from "../augment/randaugment.ts";
import type { FixMatchBatch } from "../algorithms/fixmatch.ts";
import type { MixMatchBatch } from "../algorithms/mixmatch.ts";
import { gatherImages } from "../predict.ts";

/** The seed, iteration and sizes that decide an iteration's batch. */
export interface BatchPlan {
  seed: number;
  iteration: number;
  /** Labeled images per iteration. */
  batchSize: number;
  /** Unlabeled images per labeled image (mu). */
  uratio: number;
}

/** Runs an augmentation request: inline, or in an `AugmentPool`. */
export type Augmenter = (
  request: AugmentBatchRequest,
) => Promise<AugmentBatchResult>;

/** Augments on the calling thread. */
export const inlineAugment: Augmenter = (request) => Promise.resolve(augmentBatch(request));

/** Draws `count` indices with replacement from `population` (indices or a size). */
export function sampleWithReplacement(
  random: Random,
  population: Int32Array | number,
  count: number,
): Int32Array {
  const out = new Int32Array(count);
  if (typeof population === "number") {
    for (let i = 0; i < count; i++) out[i] = random.int(population);
  } else {
    for (let i = 0; i < count; i++) {
      out[i] = population[random.int(population.length)];
    }
  }
  return out;
}

function pick(train: ImageSet, labeledIndices: Int32Array, plan: BatchPlan) {
  const { seed, iteration, batchSize, uratio } = plan;
  const labeled = sampleWithReplacement(
    Random.derive(seed, "labeled", iteration),
    labeledIndices,
    batchSize,
  );
  const unlabeled = sampleWithReplacement(
    Random.derive(seed, "unlabeled", iteration),
    train.count,
    batchSize * uratio,
  );
  const bytes = train.height * train.width * train.channels;
  return {
    labeledImages: gatherImages(train.images, labeled, bytes),
    labels: Int32Array.from(labeled, (i) => train.labels[i]),
    unlabeledImages: gatherImages(train.images, unlabeled, bytes),
    labeledCount: labeled.length,
    unlabeledCount: unlabeled.length,
  };
}

/** Builds the weak augmentation request for the labeled images of an iteration. */
function labeledRequest(
  picked: ReturnType<typeof pick>,
  size: { width: number; height: number },
  plan: BatchPlan,
): AugmentBatchRequest {
  return {
    images: picked.labeledImages,
    count: picked.labeledCount,
    ...size,
    seed: plan.seed,
    labels: ["labeled", plan.iteration],
    kind: "weak",
  };
}

/** Samples and augments a FixMatch batch: weak labeled views, weak and strong unlabeled views. */
export async function fixmatchBatch(
  train: ImageSet,
  labeledIndices: Int32Array,
  plan: BatchPlan,
  randAugment: RandAugmentOptions,
  augment: Augmenter,
): Promise<FixMatchBatch> {
  const size = { width: train.width, height: train.height };
  const picked = pick(train, labeledIndices, plan);
  const [labeled, unlabeled] = await Promise.all([
    augment(labeledRequest(picked, size, plan)),
    augment({
      images: picked.unlabeledImages,
      count: picked.unlabeledCount,
      ...size,
      seed: plan.seed,
      labels: ["unlabeled", plan.iteration],
      kind: "both",
      strong: {
        numOps: randAugment.numOps,
        applyProbability: randAugment.applyProbability,
      },
    }),
  ]);
  return {
    ...size,
    labeled: labeled.weak!,
    labels: picked.labels,
    weak: unlabeled.weak!,
    strong: unlabeled.strong!,
  };
}

/** Samples and augments a MixMatch batch: weak labeled views and `numViews` weak views per unlabeled image. */
export async function mixmatchBatch(
  train: ImageSet,
  labeledIndices: Int32Array,
  plan: BatchPlan,
  numViews: number,
  augment: Augmenter,
): Promise<MixMatchBatch> {
  const size = { width: train.width, height: train.height };
  const picked = pick(train, labeledIndices, plan);
  const requests = [
    augment(labeledRequest(picked, size, plan)),
  ];
  for (let view = 0; view < numViews; view++) {
    requests.push(augment({
      images: picked.unlabeledImages,
      count: picked.unlabeledCount,
      ...size,
      seed: plan.seed,
      labels: ["unlabeled", plan.iteration, view],
      kind: "weak",
    }));
  }
  const [labeled, ...views] = await Promise.all(requests);
  return {
    ...size,
    labeled: labeled.weak!,
    labels: picked.labels,
    unlabeledViews: views.map((v) => v.weak!),
  };
}
