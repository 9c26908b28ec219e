/**
 * Classification metrics: top-1 accuracy, per-class accuracy and the
 * confusion matrix, from true and predicted labels.
 *
 * @example
 * ```ts
 * const metrics = classificationMetrics(Uint8Array.of(0, 1, 1), Int32Array.of(0, 1, 0), 2);
 * console.log(metrics.accuracy); // 0.666...
 * ```
 * @module
 */

/** Metrics of one evaluation. */
export interface ClassificationMetrics {
  /** Share of correct top-1 predictions. */
  accuracy: number;
  /** Accuracy within each true class (NaN for a class with no images). */
  perClassAccuracy: number[];
  /** confusion[true][predicted] = image count. */
  confusion: number[][];
  count: number;
}

/** Computes accuracy, per-class accuracy and the confusion matrix. */
export function classificationMetrics(
  labels: ArrayLike<number>,
  predictions: ArrayLike<number>,
  numClasses: number,
): ClassificationMetrics {
  if (labels.length !== predictions.length) {
    throw new Error(`classificationMetrics: ${labels.length} labels but ${predictions.length} predictions`);
  }
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    const truth = labels[i];
    const predicted = predictions[i];
    if (truth < 0 || truth >= numClasses || predicted < 0 || predicted >= numClasses) {
      throw new Error(
        `classificationMetrics: label ${truth} or prediction ${predicted} at ${i} is outside [0, ${numClasses})`,
      );
    }
    confusion[truth][predicted]++;
    if (truth === predicted) correct++;
  }
  const perClassAccuracy = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total === 0 ? NaN : row[c] / total;
  });
  return {
    accuracy: labels.length === 0 ? NaN : correct / labels.length,
    perClassAccuracy,
    confusion,
    count: labels.length,
  };
}

/** Returns the mean and the sample standard deviation (0 for one value). */
export function meanAndStd(values: number[]): { mean: number; std: number } {
  if (values.length === 0) return { mean: NaN, std: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length === 1) return { mean, std: 0 };
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
  return { mean, std: Math.sqrt(variance) };
}

/**
 * Picks `count` test indices taking the first unused image of each class in
 * turn, so a subset keeps the classes balanced. Returns all indices in order
 * when `count` covers the whole set.
 */
export function balancedSubset(labels: ArrayLike<number>, numClasses: number, count: number): Int32Array {
  if (count >= labels.length) return Int32Array.from({ length: labels.length }, (_, i) => i);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]].push(i);
  const picked: number[] = [];
  for (let round = 0; picked.length < count; round++) {
    for (let c = 0; c < numClasses && picked.length < count; c++) {
      if (round < byClass[c].length) picked.push(byClass[c][round]);
    }
  }
  return Int32Array.from(picked.sort((a, b) => a - b));
}
