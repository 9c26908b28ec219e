/**
 * Per-key lock files, so two processes on one artifact store never build
 * the same key at the same time. A lock is taken over when its owner process
 * is gone, or when the file has no readable owner and is older than
 * `abandonedMs` (its owner died between creating and writing it).
 *
 * @example
 * ```ts
 * const lock = await acquireLock("artifacts/train/abc.lock", stageLogger("train"));
 * try { /* build *\/ } finally { await lock.release(); }
 * ```
 * @module
 */

import { hostname } from "node:os";
import { dirname } from "node:path";
import type { StageLogger } from "./log.ts";

/** How long to wait for another process's lock. */
export interface LockOptions {
  /** Milliseconds between checks. */
  pollMs?: number;
  /** Give up after this many milliseconds; Infinity waits for ever. */
  timeoutMs?: number;
  /**
   * Age in milliseconds after which a lock file that is empty or not valid
   * JSON counts as abandoned, 10 000 by default. A live owner writes its pid
   * right after creating the file.
   */
  abandonedMs?: number;
}

/** The file whose flock guards taking over stale locks in its folder; it is never deleted. */
const GUARD = ".lock-takeover";

/** A held lock. */
export interface Lock {
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

/** A lock file as read at one moment. */
interface LockSnapshot {
  text: string;
  ino: number | null;
  ageMs: number;
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
 * over when it is stale (see the module documentation).
 */
export async function acquireLock(
  path: string,
  log: StageLogger,
  options: LockOptions = {},
): Promise<Lock> {
  const pollMs = options.pollMs ?? 1000;
  const abandonedMs = options.abandonedMs ?? 10_000;
  const deadline = Date.now() + (options.timeoutMs ?? Infinity);
  let announced = false;
  const me: LockOwner = { pid: Deno.pid, host: hostname(), started: new Date().toISOString() };
  const myText = JSON.stringify(me);

  for (;;) {
    if (await tryCreate(path, myText)) return { release: () => releaseIfMine(path, myText) };

    const seen = await readSnapshot(path);
    if (!seen) continue; // Released between the two calls.
    const owner = parseOwner(seen.text);
    const reason = staleReason(owner, seen, me.host, abandonedMs);
    if (reason) {
      if (await removeIfStillStale(path, seen)) log.warn(`lock ${path} ${reason}; taking it over`);
      continue;
    }

    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for lock ${path} held by ${owner ? JSON.stringify(owner) : "an unknown owner"}; ` +
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

/** Creates `path` with `text` unless it exists; a failed write removes the file again. */
async function tryCreate(path: string, text: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, createNew: true });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
  try {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
  } catch (error) {
    file.close();
    // An empty lock file would block other processes until it counts as abandoned.
    await Deno.remove(path).catch(() => {});
    throw new Error(`failed to write lock file ${path}: ${(error as Error).message}`, { cause: error });
  }
  file.close();
  return true;
}

async function readSnapshot(path: string): Promise<LockSnapshot | null> {
  try {
    const info = await Deno.stat(path);
    const text = await Deno.readTextFile(path);
    const ageMs = Date.now() - (info.mtime?.getTime() ?? Date.now());
    return { text, ino: info.ino, ageMs };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function parseOwner(text: string): LockOwner | null {
  try {
    const value = JSON.parse(text);
    if (typeof value?.pid === "number" && typeof value?.host === "string") return value as LockOwner;
    return null;
  } catch {
    return null;
  }
}

/** Returns why a lock may be taken over, or null while its owner may still be alive. */
function staleReason(owner: LockOwner | null, seen: LockSnapshot, host: string, abandonedMs: number): string | null {
  if (owner) {
    if (owner.host === host && !processAlive(owner.pid)) return `was held by process ${owner.pid}, which is gone`;
    return null;
  }
  if (seen.ageMs > abandonedMs) {
    const content = seen.text.length === 0
      ? "is empty"
      : `has no valid owner (${JSON.stringify(seen.text.slice(0, 40))})`;
    return `${content} and is ${(seen.ageMs / 1000).toFixed(0)} s old, so its owner died while creating it`;
  }
  return null;
}

/**
 * Removes the lock file if it is still the file judged stale. The check and
 * the removal happen under an flock on a guard file in the same folder. So
 * when several processes take over one stale lock, only the first removes
 * it, and none removes the fresh lock that process then creates. The kernel
 * releases the flock when its process dies.
 */
async function removeIfStillStale(path: string, seen: LockSnapshot): Promise<boolean> {
  const guard = await Deno.open(`${dirname(path)}/${GUARD}`, { write: true, create: true });
  try {
    await guard.lock(true);
    const now = await readSnapshot(path);
    if (!now || now.ino !== seen.ino || now.text !== seen.text) return false;
    await Deno.remove(path);
    return true;
  } finally {
    guard.close();
  }
}

/** Removes the lock file only while it still holds this owner. */
async function releaseIfMine(path: string, text: string): Promise<void> {
  const current = await Deno.readTextFile(path).catch(() => null);
  if (current === text) await Deno.remove(path).catch(() => {});
}
