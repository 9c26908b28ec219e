/// <reference lib="deno.worker" />
/**
 * Web Worker entry that runs one train job; see train_cell.ts.
 *
 * @module
 */

import { runTrainJob, type TrainJob } from "./train_cell.ts";
import { stageLogger } from "../pipeline/log.ts";

/** Messages the worker sends back. */
export type TrainWorkerReply = { done: true } | { error: string };

self.onmessage = async (event: MessageEvent<{ job: TrainJob; key: string }>) => {
  const { job, key } = event.data;
  const log = stageLogger("train", key);
  try {
    await runTrainJob(job, (message) => log.info(message));
    self.postMessage({ done: true } satisfies TrainWorkerReply);
  } catch (error) {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    self.postMessage({ error: text } satisfies TrainWorkerReply);
  }
};
