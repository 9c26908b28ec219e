/**
 * A small generated dataset for smoke tests: 32x32 RGB images whose class
 * decides a colour and a stripe direction, with per-image noise, so a
 * network can learn it in a few steps and the pipeline runs without files.
 *
 * @example
 * ```ts
 * const dataset = syntheticDataset({ trainPerClass: 20, testPerClass: 10, seed: 0 });
 * console.log(dataset.train.count); // 200
 * ```
 * @module
 */

import { Random } from "../random.ts";
import type { Dataset, ImageSet } from "./dataset.ts";
import { CIFAR10_CLASS_NAMES } from "./cifar10.ts";

/** Sizes of the generated dataset. */
export interface SyntheticOptions {
  trainPerClass: number;
  testPerClass: number;
  seed?: number;
}

const SIZE = 32;

function makeSplit(perClass: number, random: Random): ImageSet {
  const classes = CIFAR10_CLASS_NAMES.length;
  const count = perClass * classes;
  const images = new Uint8Array(count * SIZE * SIZE * 3);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % classes;
    labels[i] = label;
    const base = [(label * 73) % 256, (label * 151 + 40) % 256, (label * 199 + 90) % 256];
    const vertical = label % 2 === 0;
    const period = 2 + (label % 5);
    const offset = random.int(period);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const stripe = (((vertical ? x : y) + offset) % period) < period / 2 ? 60 : -60;
        for (let c = 0; c < 3; c++) {
          const value = base[c] + stripe + Math.round(random.normal() * 12);
          images[((i * SIZE + y) * SIZE + x) * 3 + c] = Math.max(0, Math.min(255, value));
        }
      }
    }
  }
  return { images, labels, count, height: SIZE, width: SIZE, channels: 3 };
}

/** Generates the synthetic dataset, the same for the same options. */
export function syntheticDataset(options: SyntheticOptions): Dataset {
  const seed = options.seed ?? 0;
  return {
    name: "synthetic",
    classNames: [...CIFAR10_CLASS_NAMES],
    train: makeSplit(options.trainPerClass, Random.derive(seed, "synthetic", "train")),
    test: makeSplit(options.testPerClass, Random.derive(seed, "synthetic", "test")),
  };
}
