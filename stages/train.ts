/**
 * train: one cached run per (algorithm, label count, seed). Checkpoints go to
 * the stage's work folder, so an interrupted run resumes where it stopped.
 * With `parallel_cells` above 1, cells train at the same time in worker
 * threads.
 *
 * @module
 */

import { type CellResult, forced, type RunContext, stageCode } from "../pipeline/runner.ts";
import type { StageResult } from "../pipeline/cache.ts";
import { stageLogger } from "../pipeline/log.ts";
import { type StudyConfig, trainConfigFor } from "../pipeline/config.ts";
import { type BackendInfo, initBackend } from "../learning/backend/backends.ts";
import { backendManifestInfo, checkTrainingBackend, runTrainJob, type TrainJob } from "./train_cell.ts";
import type { TrainWorkerReply } from "./_train_worker.ts";
import { splitCell } from "./split.ts";

export { modelOptions } from "./train_cell.ts";

/** Returns the train cell id, such as `fixmatch-40-s0`. */
export function trainCell(algorithm: string, labels: number, seed: number): string {
  return `${algorithm}-${labels}-s${seed}`;
}

/**
 * Returns the parameters in a train cell's cache key: the cell, the backend, the
 * model section, the train section with the cell's own iteration count, and
 * only the cell's own algorithm section, so a FixMatch hyperparameter never
 * invalidates MixMatch cells. `<algorithm>.iterations` enters only through
 * `train.iterations`, so setting it to the shared count keeps the key.
 */
export function trainParams(
  config: StudyConfig,
  algorithm: "fixmatch" | "mixmatch",
  labels: number,
  seed: number,
  backend: string,
): Record<string, unknown> {
  const { iterations: _iterations, ...hyperparameters } = config[algorithm];
  return {
    algorithm,
    labels,
    seed,
    backend,
    model: config.model,
    train: trainConfigFor(config, algorithm),
    [algorithm]: hyperparameters,
  };
}

function runInWorker(job: TrainJob, key: string): Promise<void> {
  const worker = new Worker(new URL("./_train_worker.ts", import.meta.url), { type: "module" });
  return new Promise<void>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<TrainWorkerReply>) => {
      worker.terminate();
      if ("error" in event.data) reject(new Error(`train worker for ${job.cell} failed: ${event.data.error}`));
      else resolve();
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      worker.terminate();
      reject(new Error(`train worker for ${job.cell} crashed: ${event.message}`));
    };
    worker.postMessage({ job, key });
  });
}

/**
 * Returns how many cells train at once: one per core on single-threaded
 * backends, one on native and on other multi-threaded backends.
 *
 * @example
 * ```ts
 * parallelCells("auto", backend, 6); // 2 on wasm with 2 cores, 1 on native
 * ```
 */
export function parallelCells(setting: number | "auto", backend: BackendInfo, cells: number): number {
  if (backend.name === "native") {
    // The native kernels share oneDNN's scratch memory and OpenMP threads within
    // a process, so cells in parallel workers give different weights run to run.
    if (setting !== "auto" && setting > 1) {
      stageLogger("train").warn(
        `parallel_cells ${setting} ignored on the native backend, which trains one cell at a time on all cores`,
      );
    }
    return 1;
  }
  if (setting !== "auto") return Math.min(setting, cells);
  const singleThreaded = backend.name === "wasm" || backend.name === "cpu";
  return singleThreaded ? Math.max(1, Math.min(navigator.hardwareConcurrency ?? 1, cells)) : 1;
}

/** Trains every cell of the study matrix. */
export async function run(context: RunContext): Promise<Map<string, CellResult>> {
  const { config, store } = context;
  const dataset = context.outputs.get("download") as StageResult;
  const splits = context.outputs.get("split") as Map<string, CellResult>;
  const code = await stageCode("train");
  // The resolved backend (not "auto") enters the key: results differ slightly between backends.
  const backend: BackendInfo = await initBackend(config.backend);
  checkTrainingBackend(backend);

  const cells: { cell: string; algorithm: "fixmatch" | "mixmatch"; labels: number; seed: number }[] = [];
  for (const algorithm of config.study.algorithms) {
    for (const labels of config.study.labels) {
      for (const seed of config.study.seeds) {
        cells.push({ cell: trainCell(algorithm, labels, seed), algorithm, labels, seed });
      }
    }
  }
  const parallel = parallelCells(config.parallel_cells, backend, cells.length);
  if (parallel > 1) {
    stageLogger("train").info(`training up to ${parallel} cells at once, each in its own worker thread`);
  }

  const trainOne = async ({ cell, algorithm, labels, seed }: (typeof cells)[number]): Promise<CellResult> => {
    const split = splits.get(splitCell(labels, seed))!;
    const params = trainParams(config, algorithm, labels, seed, backend.cacheId);
    const result = await store.run(
      {
        stage: "train",
        code,
        params,
        inputs: { split: split.key, dataset: dataset.key },
        info: backendManifestInfo(backend),
      },
      async ({ dir, workDir, key, log }) => {
        const job: TrainJob = {
          cell,
          algorithm,
          seed,
          config,
          datasetDir: dataset.dir,
          splitDir: split.dir,
          dir,
          workDir,
        };
        if (parallel > 1) await runInWorker(job, key);
        else await runTrainJob(job, (message) => log.info(message));
      },
      { force: forced(context, "train") },
    );
    return { ...result, cell };
  };

  const results = new Map<string, CellResult>();
  let nextCell = 0;
  const lane = async () => {
    while (nextCell < cells.length) {
      const item = cells[nextCell++];
      results.set(item.cell, await trainOne(item));
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  // Keep the study order whatever order the lanes finished in.
  return new Map(cells.map(({ cell }) => [cell, results.get(cell)!]));
}
