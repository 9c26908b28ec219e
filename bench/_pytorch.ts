/**
 * The PyTorch reference run of the benchmark: finds a Python interpreter
 * that can import torch, runs bench/pytorch_wrn.py and parses the JSON line
 * it prints per algorithm.
 *
 * @example
 * ```ts
 * import { findTorchPython, runPytorchBench } from "./_pytorch.ts";
 *
 * const found = await findTorchPython();
 * if ("python" in found) {
 *   const run = await runPytorchBench(found.python, "bench/pytorch_wrn.py", {
 *     algorithms: ["fixmatch"], iterations: 3, warmup: 1, threads: 2, fixmatchUratio: 7, batchSize: 64, seed: 0,
 *   });
 *   console.log(run);
 * }
 * ```
 * @module
 */

import { z } from "zod";

/** Interpreters tried in order; the first that imports torch is used. */
export const PYTHON_CANDIDATES: readonly string[] = ["python3", "/usr/bin/python3"];

/** One line of bench/pytorch_wrn.py's output. */
export const pytorchResultSchema = z.object({
  algorithm: z.enum(["fixmatch", "mixmatch"]),
  images_per_iteration: z.number().int().positive(),
  seconds_per_iteration: z.number().positive(),
  images_per_second: z.number().positive(),
  iterations: z.number().int().nonnegative(),
  threads: z.number().int().positive(),
  torch_version: z.string(),
  mkldnn: z.union([z.boolean(), z.string()]),
  peak_rss_bytes: z.number().nonnegative().nullable(),
  loss: z.union([z.number(), z.record(z.string(), z.number()), z.null()]),
});

/** A parsed line of bench/pytorch_wrn.py's output. */
export type PytorchResult = z.infer<typeof pytorchResultSchema>;

/** Settings passed to bench/pytorch_wrn.py as flags. */
export interface PytorchBenchOptions {
  algorithms: readonly ("fixmatch" | "mixmatch")[];
  iterations: number;
  warmup: number;
  threads: number;
  fixmatchUratio: number;
  batchSize: number;
  /** Seed of the weights, inputs and mixup draws; PyTorch's generator differs from ours, so inputs differ too. */
  seed: number;
}

/** Outcome of {@link runPytorchBench}: results, or the reason there are none. */
export type PytorchRun = { results: PytorchResult[]; command: string } | { skipped: string; command: string };

/**
 * Parses the JSON lines of bench/pytorch_wrn.py's stdout. Lines that do not
 * start with `{` are ignored, and a line that starts with `{` but is not a
 * valid result throws. Throws unless every algorithm in `expected` has a line.
 *
 * @example
 * ```ts
 * const line = JSON.stringify({
 *   algorithm: "mixmatch", images_per_iteration: 192, seconds_per_iteration: 2.5, images_per_second: 76.8,
 *   iterations: 3, threads: 2, torch_version: "2.6.0", mkldnn: true, peak_rss_bytes: 1e9, loss: 2.3,
 * });
 * parsePytorchOutput(`loading\n${line}\n`, ["mixmatch"])[0].images_per_second; // 76.8
 * ```
 */
export function parsePytorchOutput(stdout: string, expected: readonly string[]): PytorchResult[] {
  const results: PytorchResult[] = [];
  for (const [index, raw] of stdout.split("\n").entries()) {
    const line = raw.trim();
    if (!line.startsWith("{")) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new Error(`PyTorch output line ${index + 1} is not valid JSON (${(error as Error).message}): ${line}`);
    }
    const parsed = pytorchResultSchema.safeParse(value);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${issue.path.join(".") || "line"}: ${issue.message}`);
      throw new Error(`PyTorch output line ${index + 1} is not a valid result (${problems.join("; ")}): ${line}`);
    }
    results.push(parsed.data);
  }
  const missing = expected.filter((algorithm) => !results.some((result) => result.algorithm === algorithm));
  if (missing.length > 0) {
    throw new Error(
      `PyTorch output has no result line for ${missing.join(", ")}; ` +
        `expected one JSON line per algorithm on stdout, got ${results.length} line(s)`,
    );
  }
  return results;
}

/**
 * Returns the first interpreter of `candidates` where `-c "import torch"`
 * exits 0, or the reason none did (the last line of the last error).
 *
 * @example
 * ```ts
 * const found = await findTorchPython();
 * console.log("python" in found ? found.python : `PyTorch skipped: ${found.reason}`);
 * ```
 */
export async function findTorchPython(
  candidates: readonly string[] = PYTHON_CANDIDATES,
): Promise<{ python: string } | { reason: string }> {
  const reasons: string[] = [];
  for (const python of candidates) {
    try {
      const output = await new Deno.Command(python, {
        args: ["-c", "import torch"],
        stdout: "null",
        stderr: "piped",
      }).output();
      if (output.success) return { python };
      const stderr = new TextDecoder().decode(output.stderr).trim().split("\n");
      reasons.push(`${python}: ${stderr[stderr.length - 1] || `exit code ${output.code}`}`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      reasons.push(`${python}: not found`);
    }
  }
  return {
    reason: `no interpreter can import torch (${reasons.join("; ")}); on Debian, apt-get install python3-torch`,
  };
}

/**
 * Runs `script` with `python` and the flags of `options`, and parses its
 * results. The script's stderr goes to this process's stderr. A failed run
 * or unparsable output is returned as `skipped` with the reason.
 *
 * @example
 * ```ts
 * const run = await runPytorchBench("python3", "bench/pytorch_wrn.py", {
 *   algorithms: ["mixmatch"], iterations: 1, warmup: 0, threads: 2, fixmatchUratio: 7, batchSize: 8, seed: 0,
 * });
 * ```
 */
export async function runPytorchBench(
  python: string,
  script: string,
  options: PytorchBenchOptions,
): Promise<PytorchRun> {
  const args = [
    script,
    "--algorithms",
    options.algorithms.join(","),
    "--iterations",
    String(options.iterations),
    "--warmup",
    String(options.warmup),
    "--threads",
    String(options.threads),
    "--fixmatch-uratio",
    String(options.fixmatchUratio),
    "--batch-size",
    String(options.batchSize),
    "--seed",
    String(options.seed),
  ];
  const command = [python, ...args].join(" ");
  const output = await new Deno.Command(python, { args, stdout: "piped", stderr: "inherit" }).output();
  if (!output.success) {
    return { skipped: `${command} failed with exit code ${output.code} (its error output is above)`, command };
  }
  try {
    return { results: parsePytorchOutput(new TextDecoder().decode(output.stdout), options.algorithms), command };
  } catch (error) {
    return { skipped: (error as Error).message, command };
  }
}
