/**
 * train: one cached run per (algorithm, label count, seed). Checkpoints go to
 * the stage's work folder, so an interrupted run resumes where it stopped.
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import { type CellResult, forced, type RunContext, stageCode } from "../pipeline/runner.ts";
import { type StageResult, writeFileSynced } from "../pipeline/cache.ts";
import type { StudyConfig } from "../pipeline/config.ts";
import { loadDataset } from "../learning/data/dataset.ts";
import { type BackendInfo, initBackend } from "../learning/backend/backends.ts";
import type { WideResNetOptions } from "../learning/nn/wide_resnet.ts";
import { writeTensorFile } from "../learning/training/tensor_file.ts";
import { emaStateDict, LOG_COLUMNS, trainModel } from "../learning/training/train_model.ts";
import { readSplit, splitCell } from "./split.ts";

/** The WideResNet options of a config. */
export function modelOptions(config: StudyConfig, seed: number): WideResNetOptions {
  return {
    depth: config.model.depth,
    widenFactor: config.model.widen_factor,
    bnMomentum: config.model.bn_momentum,
    bnEps: config.model.bn_eps,
    leakySlope: config.model.leaky_slope,
    seed,
  };
}

/** The train cell id. */
export function trainCell(algorithm: string, labels: number, seed: number): string {
  return `${algorithm}-${labels}-s${seed}`;
}

/** Trains every cell of the study matrix. */
export async function run(context: RunContext): Promise<Map<string, CellResult>> {
  const { config, store } = context;
  const dataset = context.outputs.get("download") as StageResult;
  const splits = context.outputs.get("split") as Map<string, CellResult>;
  const code = await stageCode("train");
  const results = new Map<string, CellResult>();
  // The resolved backend (not "auto") enters the key: results differ slightly between backends.
  const backend: BackendInfo = await initBackend(config.backend);

  for (const algorithm of config.study.algorithms) {
    for (const labels of config.study.labels) {
      for (const seed of config.study.seeds) {
        const cell = trainCell(algorithm, labels, seed);
        const split = splits.get(splitCell(labels, seed))!;
        const maxForwardImages = config.train.max_forward_images;
        const params = {
          algorithm,
          labels,
          seed,
          backend: backend.name,
          max_forward_images: maxForwardImages,
          model: config.model,
          train: config.train,
          [algorithm]: config[algorithm],
        };
        const result = await store.run(
          { stage: "train", code, params, inputs: { split: split.key, dataset: dataset.key } },
          async ({ dir, workDir, log }) => {
            const limit = maxForwardImages === "backend" ? backend.maxForwardImages : maxForwardImages;
            log.info(`${cell} on backend ${backend.name} (${backend.description})`);
            const { train } = await loadDataset(dataset.dir);
            const { labeledIndices } = await readSplit(split.dir);
            const started = performance.now();
            const trained = await trainModel({
              algorithm,
              train,
              labeledIndices,
              seed,
              model: modelOptions(config, seed),
              optim: config.train,
              fixmatch: config.fixmatch,
              mixmatch: config.mixmatch,
              maxForwardImages: limit,
              augmentWorkers: config.augment_workers,
              checkpointDir: `${workDir}/checkpoints`,
              log: (message) => log.info(message),
            });
            const seconds = (performance.now() - started) / 1000;

            await writeTensorFile(`${dir}/model`, trained.model.stateDict());
            await writeTensorFile(`${dir}/ema_model`, emaStateDict(trained.model, trained.ema));
            const records = trained.rows.map((row) => LOG_COLUMNS.map((column) => row[column]));
            await writeFileSynced(`${dir}/train_log.csv`, stringify([[...LOG_COLUMNS], ...records]));
            const last = trained.rows[trained.rows.length - 1];
            await writeFileSynced(
              `${dir}/summary.json`,
              JSON.stringify(
                {
                  cell,
                  backend: backend.name,
                  max_forward_images: limit,
                  iterations: config.train.iterations,
                  resumed_from: trained.resumedFrom,
                  wall_seconds_this_run: seconds,
                  final: last,
                },
                null,
                2,
              ) + "\n",
            );
            trained.model.dispose();
            trained.ema.dispose();
          },
          { force: forced(context, "train") },
        );
        results.set(cell, { ...result, cell });
      }
    }
  }
  return results;
}
