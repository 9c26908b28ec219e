/**
 * Per-key lock files, so two processes on one artifact store never build
 * the same key at the same time. A lock whose owner process is gone is taken
 * over.
 *
 * @example
 * ```ts
 * const lock = await acquireLock("artifacts/train/abc.lock", stageLogger("train"));
 * try { /* build *\/ } finally { await lock.release(); }
 * ```
 * @module
 */

import { hostname } from "node:os";
import type { StageLogger } from "./log.ts";

/** How long to wait for another process's lock. */
export interface LockOptions {
  /** Milliseconds between checks. */
  pollMs?: number;
  /** Give up after this many milliseconds; Infinity waits for ever. */
  timeoutMs?: number;
}

/** A held lock. */
export interface Lock {
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

/** Returns whether a process with this pid exists on this machine. */
export function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the lock file, waiting while a live process holds it and taking it
 * over when its owner is dead.
 */
export async function acquireLock(
  path: string,
  log: StageLogger,
  options: LockOptions = {},
): Promise<Lock> {
  const pollMs = options.pollMs ?? 1000;
  const deadline = Date.now() + (options.timeoutMs ?? Infinity);
  let announced = false;
  const me: LockOwner = { pid: Deno.pid, host: hostname(), started: new Date().toISOString() };

  for (;;) {
    try {
      const file = await Deno.open(path, { write: true, createNew: true });
      await file.write(new TextEncoder().encode(JSON.stringify(me)));
      file.close();
      return { release: () => Deno.remove(path).catch(() => {}) };
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }

    const owner = await readOwner(path);
    if (owner && owner.host === me.host && !processAlive(owner.pid)) {
      log.warn(`lock ${path} was held by process ${owner.pid}, which is gone; taking it over`);
      await Deno.remove(path).catch(() => {});
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for lock ${path} held by ${JSON.stringify(owner)}; ` +
          `if no other semisup process is running, delete the file`,
      );
    }
    if (!announced) {
      log.info(`waiting for process ${owner?.pid ?? "?"} which is building this key (${path})`);
      announced = true;
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as LockOwner;
  } catch {
    // The owner may be between creating and writing the file.
    return null;
  }
}
