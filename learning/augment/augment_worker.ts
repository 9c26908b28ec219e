/**
 * Web Worker entry that augments batches off the training thread; started by
 * {@linkcode AugmentPool}. Each message `{ id, request }` carries an
 * {@linkcode AugmentBatchRequest}; the reply is `{ id, result }` with the
 * image buffers transferred, or `{ id, error }` with the error message.
 *
 * @example
 * ```ts
 * const worker = new Worker(new URL("./augment_worker.ts", import.meta.url), { type: "module" });
 * ```
 * @module
 */

import { augmentBatch, type AugmentBatchRequest, type AugmentBatchResult } from "./augment_batch.ts";

/** Message sent to the worker. */
export interface AugmentWorkerRequest {
  id: number;
  request: AugmentBatchRequest;
}

/** Message sent back by the worker. */
export type AugmentWorkerReply = { id: number; result: AugmentBatchResult } | { id: number; error: string };

// Typed view of the worker global scope, so this file type-checks without the deno.worker lib.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<AugmentWorkerRequest>) => void) | null;
  postMessage(message: AugmentWorkerReply, transfer?: Transferable[]): void;
};

scope.onmessage = (event: MessageEvent<AugmentWorkerRequest>) => {
  const { id, request } = event.data;
  let result: AugmentBatchResult;
  try {
    result = augmentBatch(request);
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
    return;
  }
  const transfer: Transferable[] = [];
  if (result.weak !== undefined) transfer.push(result.weak.buffer as ArrayBuffer);
  if (result.strong !== undefined) transfer.push(result.strong.buffer as ArrayBuffer);
  scope.postMessage({ id, result }, transfer);
};
