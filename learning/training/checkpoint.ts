/**
 * Training checkpoints: model weights and BN buffers, SGD momentum, the EMA
 * shadow and the log rows so far, saved as one folder per iteration. A
 * folder is written under a temporary name and renamed when complete, and
 * `latest.json` is replaced by rename too, so a crash at any moment leaves
 * the previous checkpoint usable.
 *
 * @example
 * ```ts
 * await saveCheckpoint(dir, { iteration: 500, model, sgd, ema, logRows });
 * const latest = await loadLatestCheckpoint(dir);
 * ```
 * @module
 */

import { type NamedTensor, readTensorFile, writeTensorFile } from "./tensor_file.ts";
import { writeFileSynced } from "../durable_write.ts";

/** The contents of a checkpoint. */
export interface CheckpointData {
  /** Iterations completed. */
  iteration: number;
  model: Map<string, NamedTensor>;
  momentum: Map<string, NamedTensor>;
  ema: Map<string, NamedTensor>;
  /** Training log rows up to `iteration`. */
  logRows: Record<string, number>[];
  /** Periodic test-accuracy rows up to `iteration`. */
  evalRows: Record<string, number>[];
}

const LATEST = "latest.json";

function folderName(iteration: number): string {
  return `iter-${String(iteration).padStart(7, "0")}`;
}

/** Saves a checkpoint and points latest.json at it; keeps the newest `keep` folders. */
export async function saveCheckpoint(dir: string, data: CheckpointData, keep = 2): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const name = folderName(data.iteration);
  const tmp = `${dir}/.tmp-${name}-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp);
  await writeTensorFile(`${tmp}/model`, data.model);
  await writeTensorFile(`${tmp}/momentum`, data.momentum);
  await writeTensorFile(`${tmp}/ema`, data.ema);
  await writeFileSynced(
    `${tmp}/state.json`,
    JSON.stringify({ iteration: data.iteration, log: data.logRows, eval: data.evalRows }) + "\n",
  );
  await Deno.remove(`${dir}/${name}`, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, `${dir}/${name}`);

  await writeFileSynced(`${dir}/.${LATEST}.tmp`, JSON.stringify({ folder: name, iteration: data.iteration }) + "\n");
  await Deno.rename(`${dir}/.${LATEST}.tmp`, `${dir}/${LATEST}`);

  const folders: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory && entry.name.startsWith("iter-")) folders.push(entry.name);
  }
  folders.sort();
  for (const old of folders.slice(0, Math.max(0, folders.length - keep))) {
    if (old !== name) await Deno.remove(`${dir}/${old}`, { recursive: true });
  }
  return `${dir}/${name}`;
}

/** Loads the checkpoint latest.json points at, or returns null when there is none. */
export async function loadLatestCheckpoint(dir: string): Promise<(CheckpointData & { path: string }) | null> {
  let pointer: { folder: string };
  try {
    pointer = JSON.parse(await Deno.readTextFile(`${dir}/${LATEST}`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`${dir}/${LATEST} is unreadable (${(error as Error).message}); delete ${dir} to restart training`);
  }
  const path = `${dir}/${pointer.folder}`;
  const state = JSON.parse(await Deno.readTextFile(`${path}/state.json`));
  return {
    path,
    iteration: state.iteration,
    logRows: state.log,
    evalRows: state.eval ?? [],
    model: await readTensorFile(`${path}/model`),
    momentum: await readTensorFile(`${path}/momentum`),
    ema: await readTensorFile(`${path}/ema`),
  };
}
