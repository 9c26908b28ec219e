/**
 * One train cell as a plain-data job, so it can run on the main thread or
 * in a Web Worker (each worker has its own tfjs and wasm heap, which lets
 * single-threaded backends train several cells at once).
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import { writeFileSynced } from "../pipeline/cache.ts";
import { type StudyConfig, trainConfigFor } from "../pipeline/config.ts";
import { loadDataset } from "../learning/data/dataset.ts";
import { type BackendInfo, initBackend } from "../learning/backend/backends.ts";
import type { WideResNetOptions } from "../learning/nn/wide_resnet.ts";
import { writeTensorFile } from "../learning/training/tensor_file.ts";
import { emaStateDict, LOG_COLUMNS, trainModel } from "../learning/training/train_model.ts";
import { readSplit } from "./split.ts";
import { balancedSubset } from "../learning/metrics.ts";

/** Everything a train cell needs, as structured-cloneable data. */
export interface TrainJob {
  cell: string;
  algorithm: "fixmatch" | "mixmatch";
  seed: number;
  config: StudyConfig;
  datasetDir: string;
  splitDir: string;
  /** Temporary artifact folder to write into. */
  dir: string;
  /** Folder that survives interruption, for checkpoints. */
  workDir: string;
}

/**
 * Throws when the backend cannot run the train and evaluate stages: they read
 * tensors synchronously (checkpoints, metrics), which tfjs' webgpu backend
 * cannot do under Deno because it draws through an OffscreenCanvas.
 */
export function checkTrainingBackend(backend: BackendInfo): void {
  if (backend.name === "webgpu") {
    throw new Error(
      "backend webgpu cannot train or evaluate yet: checkpoints and metrics read tensors synchronously, " +
        "which tfjs' webgpu backend cannot do under Deno. Use --backend wasm (the default) or tensorflow-gpu.",
    );
  }
}

/** Returns the manifest fields that record which backend built an artifact. */
export function backendManifestInfo(backend: BackendInfo): Record<string, string> {
  return { backend: backend.description, backend_version: backend.version };
}

/** Returns the WideResNet options of a config. */
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

/** Trains one cell and writes model, EMA model, training log and summary into `job.dir`. */
export async function runTrainJob(job: TrainJob, log: (message: string) => void): Promise<void> {
  const { config, cell } = job;
  const trainConfig = trainConfigFor(config, job.algorithm);
  const backend = await initBackend(config.backend);
  const limit = config.train.max_forward_images === "backend"
    ? backend.maxForwardImages
    : config.train.max_forward_images;
  log(`${cell} on backend ${backend.name} (${backend.description})`);
  const { train, test, classNames } = await loadDataset(job.datasetDir);
  const { labeledIndices } = await readSplit(job.splitDir);

  const started = performance.now();
  const trained = await trainModel({
    algorithm: job.algorithm,
    train,
    labeledIndices,
    seed: job.seed,
    model: modelOptions(config, job.seed),
    optim: trainConfig,
    fixmatch: config.fixmatch,
    mixmatch: config.mixmatch,
    maxForwardImages: limit,
    augmentWorkers: config.augment_workers,
    evaluation: trainConfig.eval_every > 0
      ? {
        test,
        indices: balancedSubset(test.labels, classNames.length, trainConfig.eval_images),
        every: trainConfig.eval_every,
        batchSize: config.evaluate.batch_size,
      }
      : undefined,
    checkpointDir: `${job.workDir}/checkpoints`,
    log,
  });
  const seconds = (performance.now() - started) / 1000;

  await writeTensorFile(`${job.dir}/model`, trained.model.stateDict());
  await writeTensorFile(`${job.dir}/ema_model`, emaStateDict(trained.model, trained.ema));
  const records = trained.rows.map((row) => LOG_COLUMNS.map((column) => row[column]));
  await writeFileSynced(`${job.dir}/train_log.csv`, stringify([[...LOG_COLUMNS], ...records]));
  const evalRecords = trained.evalRows.map((row) => [row.iteration, row.ema_accuracy]);
  await writeFileSynced(`${job.dir}/eval_log.csv`, stringify([["iteration", "ema_accuracy"], ...evalRecords]));
  const summary = {
    cell,
    backend: backend.name,
    max_forward_images: limit,
    iterations: trainConfig.iterations,
    resumed_from: trained.resumedFrom,
    wall_seconds_this_run: seconds,
    final: trained.rows[trained.rows.length - 1],
  };
  await writeFileSynced(`${job.dir}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  trained.model.dispose();
  trained.ema.dispose();
}
