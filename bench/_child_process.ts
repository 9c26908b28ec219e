/**
 * The parent side of the benchmark's subprocesses: the request a child
 * receives, the result it prints, and the code that starts it.
 *
 * A child is `deno run bench/bench.ts --child <request JSON>`. It prints its
 * result as one stdout line that starts with {@link RESULT_PREFIX}; its
 * stderr (progress lines and errors) goes to the parent's stderr.
 *
 * @example
 * ```ts
 * import { runChild } from "./_child_process.ts";
 *
 * const result = await runChild({ kind: "conv", backend: "wasm", batchSize: 8, repeats: 1, seed: 0 }, ".");
 * if (result.kind === "conv") console.log(result.measurement.gflopsPerSecond);
 * ```
 * @module
 */

import { join } from "node:path";
import type { BenchAlgorithm, TrainingMeasurement } from "./_training_bench.ts";
import type { ConvMeasurement } from "./_conv_bench.ts";

/** Marks the stdout line that carries a child's result. */
export const RESULT_PREFIX = "BENCH_RESULT ";

/**
 * Permissions of a child. Deno 2.9 lets a program read /proc/self/status (for
 * the peak RSS) only with --allow-all, even with --allow-read.
 */
export const CHILD_PERMISSIONS: readonly string[] = ["--allow-all"];

/** The measurement that one child runs. */
export type ChildRequest =
  | {
    kind: "training";
    backend: string;
    algorithm: BenchAlgorithm;
    iterations: number;
    warmup: number;
    batchSize: number;
    fixmatchUratio: number;
    seed: number;
    /** A number, or "backend" for `BackendInfo.maxForwardImages`. */
    maxForwardImages: number | "backend";
  }
  | { kind: "conv"; backend: string; batchSize: number; repeats: number; seed: number };

/** The backend a child ran on. */
export interface BackendReport {
  name: string;
  version: string;
  description: string;
  /** Images per forward pass the child used; null for no limit. */
  maxForwardImages: number | null;
  /** `tf.version.tfjs`. */
  tfjsVersion: string;
}

/** A child's result, or `failed` when the child exited without one. */
export type ChildResult =
  | { kind: "training"; backend: BackendReport; measurement: TrainingMeasurement; peakRssBytes: number | null }
  | { kind: "conv"; backend: BackendReport; measurement: ConvMeasurement; peakRssBytes: number | null }
  | { kind: "unavailable"; reason: string }
  | { kind: "failed"; reason: string };

/**
 * Runs one child for `request` with `repoRoot` as working directory, so the
 * child finds deno.json, and returns its result.
 *
 * @example
 * ```ts
 * const result = await runChild({
 *   kind: "training", backend: "wasm", algorithm: "mixmatch", iterations: 1, warmup: 0,
 *   batchSize: 8, fixmatchUratio: 7, seed: 0, maxForwardImages: "backend",
 * }, ".");
 * ```
 */
export async function runChild(request: ChildRequest, repoRoot: string): Promise<ChildResult> {
  const script = join(repoRoot, "bench", "bench.ts");
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...CHILD_PERMISSIONS, script, "--child", JSON.stringify(request)],
    cwd: repoRoot,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  return parseChildOutput(stdout, output.code);
}

/**
 * Extracts the result line from a child's stdout. Without one, the result
 * is `failed` with the exit code.
 *
 * @example
 * ```ts
 * parseChildOutput('BENCH_RESULT {"kind":"unavailable","reason":"no library"}\n', 0).kind; // "unavailable"
 * parseChildOutput("", 137).kind; // "failed"
 * ```
 */
export function parseChildOutput(stdout: string, exitCode: number): ChildResult {
  const line = stdout.split("\n").find((candidate) => candidate.startsWith(RESULT_PREFIX));
  if (line === undefined) {
    const killed = exitCode === 137 ? " (killed, possibly out of memory)" : "";
    return { kind: "failed", reason: `the subprocess exited with code ${exitCode}${killed} without a result` };
  }
  return JSON.parse(line.slice(RESULT_PREFIX.length)) as ChildResult;
}
