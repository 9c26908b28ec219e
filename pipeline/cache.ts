/**
 * The content-addressed artifact store.
 *
 * A stage run is identified by a key: the SHA-256 of the stage name, the
 * hash of its source code, its parameters and the keys of its inputs. Its
 * outputs live in `artifacts/<stage>/<key>/` next to a `manifest.json`. The
 * manifest is written last, inside a temporary folder that is renamed into
 * place only when complete, so a folder with a manifest is always whole. A
 * lock file per key keeps two processes from building the same key at once.
 *
 * @example
 * ```ts
 * const store = new ArtifactStore("artifacts");
 * const result = await store.run(
 *   { stage: "split", code: "abc", params: { labels: 40 }, inputs: {} },
 *   async ({ dir }) => { await Deno.writeTextFile(`${dir}/split.json`, "{}"); },
 * );
 * console.log(result.cached ? "cache hit" : "built", result.dir);
 * ```
 * @module
 */

import { hashJson, sha256File } from "./hash.ts";
import { writeFileSynced } from "../learning/durable_write.ts";

export { writeFileSynced };
import { acquireLock, type LockOptions, processAlive } from "./lock.ts";
import { formatDuration, type StageLogger, stageLogger } from "./log.ts";

/** The identity of a stage run, from which its key is computed. */
export interface StageSpec {
  /** Stage name, also the folder under the store root. */
  stage: string;
  /** Hash of the source code the stage runs. */
  code: string;
  /** The stage's parameters; any JSON value. */
  params: unknown;
  /** Input name to the key of the artifact it comes from. */
  inputs: Record<string, string>;
  /** Extra manifest fields that do not enter the key (backend, versions). */
  info?: Record<string, unknown>;
}

/** The manifest written beside every artifact. */
export interface Manifest {
  stage: string;
  key: string;
  code: string;
  params: unknown;
  inputs: Record<string, string>;
  /** Relative file path to SHA-256 for every file in the artifact. */
  files: Record<string, string>;
  timings: { started: string; finished: string; seconds: number };
  info: Record<string, unknown>;
  versions: { deno: string; v8: string; typescript: string };
}

/** The folders, key and logger handed to a stage body. */
export interface StageContext {
  /** Temporary folder that becomes the artifact; write outputs here. */
  dir: string;
  /**
   * Scratch folder that survives an interrupted run of the same key (for
   * checkpoints); deleted once the artifact is published.
   */
  workDir: string;
  key: string;
  log: StageLogger;
}

/** The outcome of {@linkcode ArtifactStore.run}. */
export interface StageResult {
  key: string;
  dir: string;
  manifest: Manifest;
  cached: boolean;
}

/** Options for one {@linkcode ArtifactStore.run} call. */
export interface RunOptions {
  /** Rebuild even when a complete artifact exists. */
  force?: boolean;
  lock?: LockOptions;
}

/** A problem found by {@linkcode ArtifactStore.verify}. */
export interface VerifyProblem {
  dir: string;
  message: string;
}

const MANIFEST = "manifest.json";

/** Computes the cache key of a stage spec. */
export function stageKey(spec: StageSpec): string {
  return hashJson({
    stage: spec.stage,
    code: spec.code,
    params: spec.params,
    inputs: spec.inputs,
  }).slice(0, 24);
}

/** The store of stage artifacts under one root folder. */
export class ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** Returns the folder of an artifact. */
  path(stage: string, key: string): string {
    return `${this.root}/${stage}/${key}`;
  }

  /**
   * Reads the manifest of a complete artifact, after checking every file's
   * hash. Returns null when the artifact is absent; throws
   * {@linkcode CorruptArtifactError} when a file is missing or changed.
   */
  async lookup(stage: string, key: string): Promise<Manifest | null> {
    const dir = this.path(stage, key);
    let text: string;
    try {
      text = await Deno.readTextFile(`${dir}/${MANIFEST}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(text) as Manifest;
    } catch {
      throw new CorruptArtifactError(dir, `${MANIFEST} is not valid JSON`);
    }
    await checkFiles(dir, manifest);
    return manifest;
  }

  /**
   * Returns the artifact of a spec, building it with `body` unless a complete
   * one exists. A corrupt artifact is reported, moved aside and rebuilt.
   */
  async run(
    spec: StageSpec,
    body: (context: StageContext) => Promise<void>,
    options: RunOptions = {},
  ): Promise<StageResult> {
    const key = stageKey(spec);
    const log = stageLogger(spec.stage, key);
    const dir = this.path(spec.stage, key);

    // Without the lock, a corrupt artifact only counts as a miss, because another process may be replacing it.
    const hit = options.force ? null : await this.lookup(spec.stage, key).catch((error) => {
      if (error instanceof CorruptArtifactError) return null;
      throw error;
    });
    if (hit) {
      log.info(`cache hit (${dir}, built in ${formatDuration(hit.timings.seconds)})`);
      return { key, dir, manifest: hit, cached: true };
    }

    await Deno.mkdir(`${this.root}/${spec.stage}`, { recursive: true });
    const lock = await acquireLock(`${dir}.lock`, log, options.lock);
    try {
      // Another process may have built the key while this one waited for the lock.
      const built = options.force ? null : await this.#lookupOrDiscard(spec.stage, key, log);
      if (built) {
        log.info(`cache hit after waiting for another process (${dir})`);
        return { key, dir, manifest: built, cached: true };
      }
      const manifest = await this.#build(spec, key, body, log);
      return { key, dir, manifest, cached: false };
    } finally {
      await lock.release();
    }
  }

  async #lookupOrDiscard(stage: string, key: string, log: StageLogger): Promise<Manifest | null> {
    try {
      return await this.lookup(stage, key);
    } catch (error) {
      if (!(error instanceof CorruptArtifactError)) throw error;
      const aside = `${this.root}/${stage}/.corrupt-${key}-${Date.now()}`;
      log.warn(`${error.message}; moving it to ${aside} and rebuilding`);
      await Deno.rename(this.path(stage, key), aside).catch((renameError) => {
        if (!(renameError instanceof Deno.errors.NotFound)) throw renameError;
      });
      return null;
    }
  }

  async #build(
    spec: StageSpec,
    key: string,
    body: (context: StageContext) => Promise<void>,
    log: StageLogger,
  ): Promise<Manifest> {
    const stageDir = `${this.root}/${spec.stage}`;
    const workDir = `${stageDir}/.work/${key}`;
    const tmp = `${stageDir}/.tmp-${key}-${Deno.pid}-${Date.now()}`;
    await removeLeftovers(stageDir, key, log);
    await Deno.mkdir(workDir, { recursive: true });
    await Deno.mkdir(tmp, { recursive: true });

    const started = new Date();
    log.info(`building ${spec.stage} ${describeParams(spec.params)}`);
    try {
      await body({ dir: tmp, workDir, key, log });
      const finished = new Date();
      const manifest: Manifest = {
        stage: spec.stage,
        key,
        code: spec.code,
        params: spec.params,
        inputs: spec.inputs,
        files: await hashTree(tmp),
        timings: {
          started: started.toISOString(),
          finished: finished.toISOString(),
          seconds: (finished.getTime() - started.getTime()) / 1000,
        },
        info: spec.info ?? {},
        versions: { ...Deno.version },
      };
      await writeFileSynced(`${tmp}/${MANIFEST}`, JSON.stringify(manifest, null, 2) + "\n");
      await publish(tmp, this.path(spec.stage, key));
      await Deno.remove(workDir, { recursive: true });
      log.info(`built in ${formatDuration(manifest.timings.seconds)} -> ${this.path(spec.stage, key)}`);
      return manifest;
    } catch (error) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  /**
   * Checks every artifact in the store against its manifest and returns the
   * problems found. Temporary folders left by a build whose process is gone
   * are reported too.
   */
  async verify(): Promise<{ checked: number; problems: VerifyProblem[] }> {
    const problems: VerifyProblem[] = [];
    let checked = 0;
    for await (const stage of readDirSafe(this.root)) {
      if (!stage.isDirectory) continue;
      for await (const entry of readDirSafe(`${this.root}/${stage.name}`)) {
        if (!entry.isDirectory) continue;
        const dir = `${this.root}/${stage.name}/${entry.name}`;
        const owner = tmpOwner(entry.name);
        if (owner !== null && !processAlive(owner)) {
          problems.push({
            dir,
            message: `leftover temporary folder of a build by process ${owner}, which is gone; ` +
              `rerun the stage (it removes the folder) or delete it`,
          });
        }
        if (entry.name.startsWith(".")) continue;
        checked++;
        try {
          const manifest = await this.lookup(stage.name, entry.name);
          if (!manifest) {
            problems.push({ dir: `${this.root}/${stage.name}/${entry.name}`, message: `no ${MANIFEST}` });
          }
        } catch (error) {
          if (!(error instanceof CorruptArtifactError)) throw error;
          problems.push({ dir: error.dir, message: error.detail });
        }
      }
    }
    return { checked, problems };
  }
}

/** An artifact whose files no longer match its manifest. */
export class CorruptArtifactError extends Error {
  readonly dir: string;
  readonly detail: string;

  constructor(dir: string, detail: string) {
    super(`corrupt artifact ${dir}: ${detail}`);
    this.name = "CorruptArtifactError";
    this.dir = dir;
    this.detail = detail;
  }
}

async function checkFiles(dir: string, manifest: Manifest): Promise<void> {
  for (const [file, expected] of Object.entries(manifest.files ?? {})) {
    let found: string;
    try {
      found = await sha256File(`${dir}/${file}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new CorruptArtifactError(dir, `file ${file} is missing (expected sha256 ${expected})`);
      }
      throw error;
    }
    if (found !== expected) {
      throw new CorruptArtifactError(dir, `file ${file} has sha256 ${found}, expected ${expected}`);
    }
  }
}

async function hashTree(dir: string, prefix = ""): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) entries.push(entry);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) Object.assign(files, await hashTree(dir, relative));
    else if (entry.isFile) files[relative] = await sha256File(`${dir}/${relative}`);
  }
  return files;
}

/** Returns the pid in a temporary folder name `.tmp-<key>-<pid>-<time>`, or null for other names. */
function tmpOwner(name: string): number | null {
  const match = /^\.tmp-[0-9a-f]+-(\d+)-\d+$/.exec(name);
  return match ? Number(match[1]) : null;
}

/**
 * Removes the temporary folders an interrupted build of `key` left behind.
 * The caller holds the key's lock, so no live process writes to them.
 */
async function removeLeftovers(stageDir: string, key: string, log: StageLogger): Promise<void> {
  for await (const entry of readDirSafe(stageDir)) {
    if (!entry.isDirectory || !entry.name.startsWith(`.tmp-${key}-`)) continue;
    log.warn(`removing ${stageDir}/${entry.name}, left by an interrupted build of this key`);
    await Deno.remove(`${stageDir}/${entry.name}`, { recursive: true });
  }
}

/** Replaces `target` with the folder `tmp` by rename. */
async function publish(tmp: string, target: string): Promise<void> {
  await Deno.remove(target, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await Deno.rename(tmp, target);
}

async function* readDirSafe(path: string): AsyncIterable<Deno.DirEntry> {
  try {
    for await (const entry of Deno.readDir(path)) yield entry;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function describeParams(params: unknown): string {
  const text = JSON.stringify(params);
  return text.length > 160 ? text.slice(0, 157) + "..." : text;
}
