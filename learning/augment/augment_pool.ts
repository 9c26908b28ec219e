/**
 * A pool of Web Workers that augments batches in the background, so the
 * training loop can prepare the next iteration's views while the current
 * step trains.
 *
 * A batch is split into contiguous chunks, one per worker; every image keeps
 * its index in the whole batch for its random stream (see `augment_batch.ts`),
 * so the result equals {@linkcode augmentBatch} on the calling thread for any
 * number of workers.
 *
 * @example
 * ```ts
 * using pool = new AugmentPool({ workers: 2 });
 * let next = pool.augmentBatch({ images, count: 448, seed: 0, labels: ["fixmatch", 0], kind: "both" });
 * for (let iteration = 0; iteration < iterations; iteration++) {
 *   const views = await next;
 *   next = pool.augmentBatch({ images: nextImages, count: 448, seed: 0, labels: ["fixmatch", iteration + 1], kind: "both" });
 *   trainStep(views.weak!, views.strong!);
 * }
 * ```
 * @module
 */

import {
  augmentBatch,
  type AugmentBatchRequest,
  type AugmentBatchResult,
  checkAugmentRequest,
} from "./augment_batch.ts";
import type { AugmentWorkerReply, AugmentWorkerRequest } from "./augment_worker.ts";

/** Settings of {@linkcode AugmentPool}. */
export interface AugmentPoolOptions {
  /** Number of workers (default: hardware threads − 1, at least 1). */
  workers?: number;
}

interface PendingReply {
  resolve: (result: AugmentBatchResult) => void;
  reject: (error: Error) => void;
}

interface WorkerSlot {
  worker: Worker;
  pending: Map<number, PendingReply>;
  failure: Error | null;
}

/** Web Workers that run {@linkcode augmentBatch} on parts of a batch. */
export class AugmentPool {
  #slots: WorkerSlot[];
  #nextId = 0;
  #closed = false;

  /**
   * Starts the workers.
   *
   * @example
   * ```ts
   * const pool = new AugmentPool({ workers: 3 });
   * ```
   */
  constructor(options: AugmentPoolOptions = {}) {
    const workers = options.workers ?? Math.max(1, (navigator.hardwareConcurrency ?? 2) - 1);
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(`workers must be a positive integer, got ${workers}`);
    }
    const url = new URL("./augment_worker.ts", import.meta.url);
    this.#slots = Array.from({ length: workers }, () => this.#startWorker(url));
  }

  /** Number of workers. */
  get size(): number {
    return this.#slots.length;
  }

  #startWorker(url: URL): WorkerSlot {
    const slot: WorkerSlot = { worker: new Worker(url, { type: "module" }), pending: new Map(), failure: null };
    slot.worker.onmessage = (event: MessageEvent<AugmentWorkerReply>) => {
      const reply = event.data;
      const pending = slot.pending.get(reply.id);
      if (pending === undefined) return;
      slot.pending.delete(reply.id);
      if ("error" in reply) pending.reject(new Error(`augment worker failed: ${reply.error}`));
      else pending.resolve(reply.result);
    };
    slot.worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      slot.failure = new Error(`augment worker crashed: ${event.message}`);
      for (const pending of slot.pending.values()) pending.reject(slot.failure);
      slot.pending.clear();
    };
    return slot;
  }

  #send(slot: WorkerSlot, request: AugmentBatchRequest): Promise<AugmentBatchResult> {
    if (slot.failure !== null) return Promise.reject(slot.failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      const message: AugmentWorkerRequest = { id, request };
      slot.worker.postMessage(message, [request.images.buffer as ArrayBuffer]);
    });
  }

  /**
   * Augments a batch in the workers. `request.images` is copied, so the
   * caller may reuse it at once. Resolves to the same views and records as
   * {@linkcode augmentBatch} for the same request.
   *
   * @example
   * ```ts
   * const { strong } = await pool.augmentBatch({ images, count: 64, seed: 0, labels: ["step", 3], kind: "strong" });
   * ```
   */
  async augmentBatch(request: AugmentBatchRequest): Promise<AugmentBatchResult> {
    if (this.#closed) throw new Error("AugmentPool is closed; create a new pool");
    checkAugmentRequest(request);
    const { count, width = 32, height = 32, indexOffset = 0 } = request;
    if (count === 0) return augmentBatch(request);
    const imageBytes = width * height * 3;
    const chunks = Math.min(this.#slots.length, count);
    const starts = Array.from({ length: chunks + 1 }, (_, i) => Math.floor((i * count) / chunks));
    const parts = await Promise.all(
      Array.from({ length: chunks }, (_, i) => {
        const chunkCount = starts[i + 1] - starts[i];
        return this.#send(this.#slots[i], {
          ...request,
          images: request.images.slice(starts[i] * imageBytes, starts[i + 1] * imageBytes),
          count: chunkCount,
          indexOffset: indexOffset + starts[i],
        });
      }),
    );
    return joinResults(parts, starts, request.images.length, imageBytes);
  }

  /**
   * Stops the workers; pending batches are rejected.
   *
   * @example
   * ```ts
   * pool.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const slot of this.#slots) {
      slot.worker.terminate();
      for (const pending of slot.pending.values()) pending.reject(new Error("AugmentPool was closed"));
      slot.pending.clear();
    }
  }

  /** Stops the workers (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

function joinResults(
  parts: AugmentBatchResult[],
  starts: number[],
  totalBytes: number,
  imageBytes: number,
): AugmentBatchResult {
  const result: AugmentBatchResult = {};
  if (parts[0].weak !== undefined) {
    result.weak = new Uint8Array(totalBytes);
    result.weakRecords = [];
  }
  if (parts[0].strong !== undefined) {
    result.strong = new Uint8Array(totalBytes);
    result.strongRecords = [];
  }
  for (const [i, part] of parts.entries()) {
    const offset = starts[i] * imageBytes;
    if (result.weak !== undefined) {
      result.weak.set(part.weak!, offset);
      result.weakRecords!.push(...part.weakRecords!);
    }
    if (result.strong !== undefined) {
      result.strong.set(part.strong!, offset);
      result.strongRecords!.push(...part.strongRecords!);
    }
  }
  return result;
}
