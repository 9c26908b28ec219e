/**
 * The labeled/unlabeled split of a training set for semi-supervised learning.
 *
 * As in TorchSSL, the labeled set has the same number of examples from every
 * class, and the unlabeled set is the whole training set, labeled examples
 * included (their labels are not used in the unlabeled loss).
 *
 * @example
 * ```ts
 * const { labeledIndices, unlabeledIndices } = makeLabeledSplit(dataset.train.labels, 10, 4000, 0);
 * console.log(labeledIndices.length, unlabeledIndices.length); // 4000 50000
 * ```
 * @module
 */

import { Random } from "../random.ts";

/** Indices into the training set. */
export interface LabeledSplit {
  /** `numLabels` indices, `numLabels / numClasses` per class, in increasing order. */
  labeledIndices: Int32Array;
  /** Every training index, 0 to `labels.length - 1`, in increasing order. */
  unlabeledIndices: Int32Array;
}

/**
 * Draws `numLabels / numClasses` examples of each class as the labeled set,
 * with the random stream `Random.derive(seed, "split", numLabels)`, so a seed
 * and label count always select the same examples.
 *
 * Throws an error when `numLabels` is not a positive multiple of
 * `numClasses`, when a class has fewer training examples than the per-class
 * count, or when a label is outside `[0, numClasses)`.
 *
 * @example
 * ```ts
 * const split = makeLabeledSplit(new Uint8Array([0, 1, 0, 1, 0, 1]), 2, 2, 7);
 * console.log(split.labeledIndices.length); // 2: one index of class 0 and one of class 1
 * ```
 */
export function makeLabeledSplit(
  labels: Uint8Array,
  numClasses: number,
  numLabels: number,
  seed: number,
): LabeledSplit {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`numClasses must be a positive integer, got ${numClasses}.`);
  }
  if (!Number.isInteger(numLabels) || numLabels <= 0 || numLabels % numClasses !== 0) {
    throw new Error(
      `numLabels must be a positive multiple of the class count ${numClasses} (for example ${numClasses * 4}, ` +
        `${numClasses * 25} or ${numClasses * 400}) so every class gets the same number of labels; got ${numLabels}.`,
    );
  }
  const perClass = numLabels / numClasses;

  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((label, index) => {
    if (label >= numClasses) {
      throw new Error(`labels[${index}] is ${label}, outside [0, ${numClasses}); check numClasses.`);
    }
    byClass[label].push(index);
  });
  const smallest = Math.min(...byClass.map((indices) => indices.length));
  byClass.forEach((indices, label) => {
    if (indices.length < perClass) {
      throw new Error(
        `numLabels ${numLabels} needs ${perClass} labeled examples per class, but class ${label} has only ` +
          `${indices.length} training examples; use at most ${smallest * numClasses} labels.`,
      );
    }
  });

  const random = Random.derive(seed, "split", numLabels);
  const labeled: number[] = [];
  for (const indices of byClass) {
    random.shuffle(indices);
    labeled.push(...indices.slice(0, perClass));
  }
  const labeledIndices = Int32Array.from(labeled).sort();

  const unlabeledIndices = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) unlabeledIndices[i] = i;
  return { labeledIndices, unlabeledIndices };
}
