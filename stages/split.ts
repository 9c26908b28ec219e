/**
 * split: draws the labeled subset for each (label count, seed) of the study.
 * The unlabeled set is the whole training set, as in TorchSSL.
 *
 * @module
 */

import { type CellResult, forced, type RunContext, stageCode } from "../pipeline/runner.ts";
import type { StageResult } from "../pipeline/cache.ts";
import { writeFileSynced } from "../pipeline/cache.ts";
import { loadDataset } from "../learning/data/dataset.ts";
import { makeLabeledSplit } from "../learning/data/split.ts";

/** Returns the split cell id for a label count and seed. */
export function splitCell(labels: number, seed: number): string {
  return `${labels}-s${seed}`;
}

/** Builds (or finds) one split artifact per (label count, seed). */
export async function run(context: RunContext): Promise<Map<string, CellResult>> {
  const { config, store } = context;
  const dataset = context.outputs.get("download") as StageResult;
  const code = await stageCode("split");
  const results = new Map<string, CellResult>();

  for (const labels of config.study.labels) {
    for (const seed of config.study.seeds) {
      const cell = splitCell(labels, seed);
      const result = await store.run(
        { stage: "split", code, params: { labels, seed }, inputs: { dataset: dataset.key } },
        async ({ dir, log }) => {
          const { train, classNames } = await loadDataset(dataset.dir);
          let split;
          try {
            split = makeLabeledSplit(train.labels, classNames.length, labels, seed);
          } catch (error) {
            throw new Error(`invalid label count ${labels} in study.labels (--labels): ${(error as Error).message}`);
          }
          const perClass = new Array(classNames.length).fill(0);
          for (const index of split.labeledIndices) perClass[train.labels[index]]++;
          log.info(
            `${labels} labels, seed ${seed}: ${perClass.join("/")} per class, |U| = ${split.unlabeledIndices.length}`,
          );
          await writeFileSynced(
            `${dir}/split.json`,
            JSON.stringify({
              labels,
              seed,
              num_classes: classNames.length,
              labeled_per_class: perClass,
              labeled_indices: Array.from(split.labeledIndices),
              unlabeled_count: split.unlabeledIndices.length,
            }) + "\n",
          );
        },
        { force: forced(context, "split") },
      );
      results.set(cell, { ...result, cell });
    }
  }
  return results;
}

/** Reads the labeled indices of a split artifact. */
export async function readSplit(dir: string): Promise<{ labeledIndices: Int32Array; unlabeledCount: number }> {
  const split = JSON.parse(await Deno.readTextFile(`${dir}/split.json`));
  return { labeledIndices: Int32Array.from(split.labeled_indices), unlabeledCount: split.unlabeled_count };
}
