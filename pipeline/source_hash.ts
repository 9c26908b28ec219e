/**
 * Hash of the source code a stage runs: every local module in the stage
 * entry's import graph, plus the exact npm package versions it loads.
 *
 * @example
 * ```ts
 * const codeHash = await sourceHash(new URL("../stages/train.ts", import.meta.url));
 * ```
 * @module
 */

import { fileURLToPath } from "node:url";
import { sha256 } from "./hash.ts";

interface DenoInfoModule {
  specifier: string;
  local?: string;
}

interface DenoInfo {
  modules: DenoInfoModule[];
  npmPackages?: Record<string, unknown>;
}

const cache = new Map<string, Promise<SourceHash>>();

/** The code identity of a stage: a digest and the files behind it. */
export interface SourceHash {
  /** SHA-256 over the sorted (path, content hash) list and npm package ids. */
  digest: string;
  /** Local source files, relative to the repository root, with their SHA-256. */
  files: Record<string, string>;
  /** npm packages in the graph, as `name@version`. */
  npmPackages: string[];
}

/**
 * Computes the source hash of a module's import graph with `deno info --json`.
 * Results are memoised per process.
 */
export function sourceHash(entry: URL): Promise<SourceHash> {
  const id = entry.href;
  let pending = cache.get(id);
  if (!pending) {
    pending = computeSourceHash(entry);
    cache.set(id, pending);
  }
  return pending;
}

async function computeSourceHash(entry: URL): Promise<SourceHash> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", fileURLToPath(entry)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `deno info failed for ${entry.pathname}: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as DenoInfo;
  const root = new URL("../", import.meta.url).pathname;
  const files: Record<string, string> = {};
  const local = info.modules
    .filter((m) => m.specifier.startsWith("file://"))
    .map((m) => fileURLToPath(m.specifier))
    .sort();
  for (const path of local) {
    const relative = path.startsWith(root) ? path.slice(root.length) : path;
    files[relative] = sha256(await Deno.readFile(path));
  }
  const npmPackages = Object.keys(info.npmPackages ?? {}).sort();
  const digest = sha256(JSON.stringify({ files, npmPackages }));
  return { digest, files, npmPackages };
}
