/**
 * `deno task bench`: training speed of FixMatch and MixMatch on each
 * TensorFlow.js backend, against the wasm backend and a PyTorch
 * WideResNet-28-2 run (bench/pytorch_wrn.py), plus the convolution
 * throughput as a share of the CPU's fp32 peak.
 *
 * Each (backend, algorithm) pair and each backend's convolution timing runs
 * in its own subprocess (this file with the hidden `--child` flag). A
 * process has one active tfjs backend and one wasm heap, and the peak RSS
 * (`VmHWM`) must belong to one measurement.
 *
 * @example
 * ```sh
 * deno task bench --backends wasm --algorithms mixmatch --iterations 1 --warmup 0 --batch-size 8 --pytorch off
 * ```
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { estimatePeak, type PeakEstimate, readCpuInfo } from "./_cpu_peak.ts";
import { loadNativeLibrary } from "../learning/backend/_native_library.ts";
import { parseBackendName } from "../learning/backend/backends.ts";
import { findTorchPython, type PytorchResult, runPytorchBench } from "./_pytorch.ts";
import { type BenchRow, formatConvLine, formatResultTable, PYTORCH_ROW } from "./_table.ts";
import type { BenchAlgorithm, TrainingMeasurement } from "./_training_bench.ts";
import type { ConvMeasurement } from "./_conv_bench.ts";
import { type ChildResult, runChild } from "./_child_process.ts";

// The native library sets OMP_WAIT_POLICY when it loads (for the peak
// measurement here); PyTorch runs with the environment the bench started with.
const STARTUP_OMP_WAIT_POLICY = Deno.env.get("OMP_WAIT_POLICY");

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = dirname(BENCH_DIR);
const PYTORCH_SCRIPT = join(BENCH_DIR, "pytorch_wrn.py");

/** Backends that default to 1 timed iteration and no warm-up, because a FixMatch iteration takes minutes there. */
const SLOW_BACKENDS = new Set(["wasm", "cpu"]);

const ALGORITHMS: readonly BenchAlgorithm[] = ["fixmatch", "mixmatch"];

const HELP = `Usage: deno task bench [options]

Trains WideResNet-28-2 for a few iterations of FixMatch and MixMatch on each
backend and prints s/iteration, images/s, ratios against wasm and PyTorch,
peak RSS, and the convolution GFLOP/s as a share of the CPU's fp32 peak.

Options:
  --backends LIST          backends to time, comma-separated (default native,wasm; also cpu, webgpu, ...)
  --algorithms LIST        fixmatch, mixmatch or both (default fixmatch,mixmatch)
  --iterations N           timed iterations per run (default 3; 1 on wasm and cpu)
  --warmup N               untimed iterations before them (default 1; 0 on wasm and cpu)
  --batch-size N           labeled images per iteration (default 64)
  --fixmatch-uratio N      FixMatch unlabeled images per labeled image (default 7); MixMatch uses 1
  --seed N                 seed of weights, images and mixup draws (default 0)
  --max-forward-images N   images per forward pass, or "backend" for the backend's limit (default backend)
  --conv on|off            time the convolution layers (default on)
  --conv-batch-size N      images per convolution in that timing (default 64)
  --conv-repeats N         timed runs per convolution shape (default 3)
  --peak-gflops X          fp32 peak in GFLOP/s (default: measured by the native library's FMA loop,
                           else cores x GHz x 32 FLOP/cycle; printed)
  --pytorch auto|off       run bench/pytorch_wrn.py when python3 can import torch (default auto)
  --pytorch-threads N      torch threads (default: the physical cores this process may use)
  --out FILE               also write every result as JSON to FILE
  --help                   print this help
`;

/** Parsed command-line settings of the parent process. */
interface BenchSettings {
  backends: string[];
  algorithms: BenchAlgorithm[];
  iterations: number | null;
  warmup: number | null;
  batchSize: number;
  fixmatchUratio: number;
  seed: number;
  maxForwardImages: number | "backend";
  conv: boolean;
  convBatchSize: number;
  convRepeats: number;
  peakGflops: number | null;
  pytorch: "auto" | "off";
  pytorchThreads: number | null;
  out: string | null;
}

const OPTIONS = {
  backends: { type: "string", default: "native,wasm" },
  algorithms: { type: "string", default: "fixmatch,mixmatch" },
  iterations: { type: "string" },
  warmup: { type: "string" },
  "batch-size": { type: "string", default: "64" },
  "fixmatch-uratio": { type: "string", default: "7" },
  seed: { type: "string", default: "0" },
  "max-forward-images": { type: "string", default: "backend" },
  conv: { type: "string", default: "on" },
  "conv-batch-size": { type: "string", default: "64" },
  "conv-repeats": { type: "string", default: "3" },
  "peak-gflops": { type: "string" },
  pytorch: { type: "string", default: "auto" },
  "pytorch-threads": { type: "string" },
  out: { type: "string" },
  help: { type: "boolean", default: false },
  // A ChildRequest as JSON, set by the parent when it starts a subprocess (see _child_process.ts).
  child: { type: "string" },
} as const;

function parseInteger(flag: string, value: string, minimum: number): number {
  const number = Number(value);
  if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(number) || number < minimum) {
    throw new Error(`Invalid --${flag} '${value}': expected an integer >= ${minimum}.`);
  }
  return number;
}

function parseList(flag: string, value: string): string[] {
  const items = value.split(",").map((item) => item.trim().toLowerCase()).filter((item) => item !== "");
  if (items.length === 0) throw new Error(`Invalid --${flag} '${value}': expected a comma-separated list.`);
  return [...new Set(items)];
}

function parseChoice<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new Error(`Invalid --${flag} '${value}': expected one of ${choices.join(", ")}.`);
}

function parseSettings(values: Record<string, string | boolean | undefined>): BenchSettings {
  const text = (name: string) => values[name] as string;
  const optional = (name: string) => values[name] as string | undefined;
  const algorithms = parseList("algorithms", text("algorithms")).map((name) =>
    parseChoice("algorithms", name, ALGORITHMS)
  );
  const maxForward = text("max-forward-images");
  const peak = optional("peak-gflops");
  const peakGflops = peak === undefined ? null : Number(peak);
  if (peakGflops !== null && !(peakGflops > 0)) {
    throw new Error(`Invalid --peak-gflops '${peak}': expected a number > 0 (GFLOP/s).`);
  }
  const iterations = optional("iterations");
  const warmup = optional("warmup");
  const pytorchThreads = optional("pytorch-threads");
  return {
    backends: parseBackendList(parseList("backends", text("backends"))),
    algorithms,
    iterations: iterations === undefined ? null : parseInteger("iterations", iterations, 1),
    warmup: warmup === undefined ? null : parseInteger("warmup", warmup, 0),
    batchSize: parseInteger("batch-size", text("batch-size"), 1),
    fixmatchUratio: parseInteger("fixmatch-uratio", text("fixmatch-uratio"), 1),
    seed: parseInteger("seed", text("seed"), 0),
    maxForwardImages: maxForward === "backend" ? "backend" : parseInteger("max-forward-images", maxForward, 1),
    conv: parseChoice("conv", text("conv"), ["on", "off"] as const) === "on",
    convBatchSize: parseInteger("conv-batch-size", text("conv-batch-size"), 1),
    convRepeats: parseInteger("conv-repeats", text("conv-repeats"), 1),
    peakGflops,
    pytorch: parseChoice("pytorch", text("pytorch"), ["auto", "off"] as const),
    pytorchThreads: pytorchThreads === undefined ? null : parseInteger("pytorch-threads", pytorchThreads, 1),
    out: optional("out") ?? null,
  };
}

/** Everything the parent collected, as written by `--out`. */
interface BenchReport {
  command: string;
  date: string;
  machine: Record<string, string | number | null>;
  versions: Record<string, string>;
  peak: PeakEstimate | null;
  training: { backend: string; backendDescription: string; peakRssBytes: number | null; result: TrainingMeasurement }[];
  conv: { backend: string; peakRssBytes: number | null; result: ConvMeasurement }[];
  skipped: string[];
  pytorch: PytorchResult[];
}

async function runParent(settings: BenchSettings, argv: string[]): Promise<void> {
  const command = ["deno task bench", ...argv].join(" ");
  const cpu = await readCpuInfo();
  const report: BenchReport = {
    command,
    date: new Date().toISOString(),
    machine: {
      cpu: cpu?.modelName ?? null,
      physicalCores: cpu?.cores ?? null,
      logicalCpus: cpu?.logicalCpus ?? null,
      availableCpus: navigator.hardwareConcurrency,
      ghz: cpu?.ghz ?? null,
      memoryBytes: Deno.systemMemoryInfo().total,
      os: `${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}`,
    },
    versions: { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript },
    peak: null,
    training: [],
    conv: [],
    skipped: [],
    pytorch: [],
  };
  const say = (line: string) => console.log(line);
  const skip = (line: string) => {
    report.skipped.push(line);
    say(line);
  };

  say(`command: ${command}`);
  say(
    `machine: ${report.machine.cpu ?? "unknown CPU"}, ${report.machine.physicalCores ?? "?"} physical core(s) ` +
      `usable of ${report.machine.logicalCpus ?? "?"} logical CPU(s), ` +
      `${(Number(report.machine.memoryBytes) / 2 ** 30).toFixed(1)} GiB, ${report.machine.os}`,
  );
  say(`versions: Deno ${Deno.version.deno}, V8 ${Deno.version.v8}`);
  if (settings.peakGflops !== null) {
    report.peak = { gflops: settings.peakGflops, explanation: `${settings.peakGflops} GFLOP/s (--peak-gflops)` };
  } else if (settings.conv) {
    report.peak = await measurePeak(cpu === null ? null : estimatePeak(cpu));
  } else if (cpu !== null) {
    report.peak = estimatePeak(cpu);
  }
  say(`fp32 peak: ${report.peak?.explanation ?? "unknown (no /proc/cpuinfo); pass --peak-gflops"}`);
  say(
    "inputs: synthetic uint8 images drawn from the seed, augmentation skipped; " +
      "images/iteration counts images through the network with gradient",
  );

  for (const backend of settings.backends) {
    const slow = SLOW_BACKENDS.has(backend);
    const iterations = settings.iterations ?? (slow ? 1 : 3);
    const warmup = settings.warmup ?? (slow ? 0 : 1);
    const defaults = [
      ...(slow && settings.iterations === null ? ["1 timed iteration"] : []),
      ...(slow && settings.warmup === null ? ["no warm-up"] : []),
    ];
    if (defaults.length > 0) {
      say(
        `${backend}: ${defaults.join(" and ")}, the default on ${backend}, where a FixMatch iteration of 960 images ` +
          "takes minutes; pass --iterations and --warmup to change it",
      );
    }
    const available = await runBackend(backend, settings, { iterations, warmup }, report, say, skip);
    if (available && settings.conv) {
      const result = await runChild({
        kind: "conv",
        backend,
        batchSize: settings.convBatchSize,
        repeats: settings.convRepeats,
        seed: settings.seed,
      }, REPO_ROOT);
      recordChild(result, backend, "conv", report, skip);
    }
  }

  await runPytorch(settings, report, say, skip);
  printSummary(report, say);

  if (settings.out !== null) {
    await Deno.writeTextFile(settings.out, JSON.stringify(report, null, 2) + "\n");
    say(`wrote ${settings.out}`);
  }
}

async function runBackend(
  backend: string,
  settings: BenchSettings,
  counts: { iterations: number; warmup: number },
  report: BenchReport,
  say: (line: string) => void,
  skip: (line: string) => void,
): Promise<boolean> {
  for (const algorithm of settings.algorithms) {
    say(`${backend} ${algorithm}: running ${counts.warmup} warm-up and ${counts.iterations} timed iteration(s)`);
    const result = await runChild({
      kind: "training",
      backend,
      algorithm,
      ...counts,
      batchSize: settings.batchSize,
      fixmatchUratio: settings.fixmatchUratio,
      seed: settings.seed,
      maxForwardImages: settings.maxForwardImages,
    }, REPO_ROOT);
    if (result.kind === "unavailable") {
      skip(`${backend}: skipped, backend unavailable: ${result.reason}`);
      return false;
    }
    recordChild(result, backend, algorithm, report, skip);
  }
  return true;
}

function recordChild(
  result: ChildResult,
  backend: string,
  label: string,
  report: BenchReport,
  skip: (line: string) => void,
): void {
  switch (result.kind) {
    case "unavailable":
      skip(`${backend} ${label}: skipped, backend unavailable: ${result.reason}`);
      return;
    case "failed":
      skip(`${backend} ${label}: failed: ${result.reason}`);
      return;
    case "training":
      report.versions[`backend ${backend}`] = `${result.backend.description}; tfjs ${result.backend.tfjsVersion}`;
      report.training.push({
        backend,
        backendDescription: result.backend.description,
        peakRssBytes: result.peakRssBytes,
        result: result.measurement,
      });
      return;
    case "conv":
      report.conv.push({ backend, peakRssBytes: result.peakRssBytes, result: result.measurement });
      return;
  }
}

async function runPytorch(
  settings: BenchSettings,
  report: BenchReport,
  say: (line: string) => void,
  skip: (line: string) => void,
): Promise<void> {
  if (settings.pytorch === "off") {
    skip("PyTorch: skipped (--pytorch off)");
    return;
  }
  try {
    await Deno.stat(PYTORCH_SCRIPT);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    skip(`PyTorch: skipped, ${PYTORCH_SCRIPT} not found`);
    return;
  }

  const found = await findTorchPython();
  if (!("python" in found)) {
    skip(`PyTorch: skipped, ${found.reason}`);
    return;
  }

  const threads = settings.pytorchThreads ?? Number(report.machine.physicalCores ?? navigator.hardwareConcurrency);
  if (STARTUP_OMP_WAIT_POLICY === undefined) Deno.env.delete("OMP_WAIT_POLICY");
  const run = await runPytorchBench(found.python, PYTORCH_SCRIPT, {
    algorithms: settings.algorithms,
    iterations: settings.iterations ?? 3,
    warmup: settings.warmup ?? 1,
    threads,
    fixmatchUratio: settings.fixmatchUratio,
    batchSize: settings.batchSize,
    seed: settings.seed,
  });

  say(`PyTorch: ${run.command}`);
  if ("skipped" in run) {
    skip(`PyTorch: skipped, ${run.skipped}`);
    return;
  }
  report.pytorch = run.results;
  const first = run.results[0];
  report.versions.pytorch = `torch ${first.torch_version}, mkldnn ${first.mkldnn}, ${first.threads} thread(s)`;
}

function printSummary(report: BenchReport, say: (line: string) => void): void {
  const rows: BenchRow[] = report.training.map(({ backend, peakRssBytes, result }) => ({
    backend,
    algorithm: result.algorithm,
    imagesPerIteration: result.imagesPerIteration,
    secondsPerIteration: result.secondsPerIteration,
    imagesPerSecond: result.imagesPerSecond,
    peakRssBytes,
  }));
  for (const result of report.pytorch) {
    rows.push({
      backend: PYTORCH_ROW,
      algorithm: result.algorithm,
      imagesPerIteration: result.images_per_iteration,
      secondsPerIteration: result.seconds_per_iteration,
      imagesPerSecond: result.images_per_second,
      peakRssBytes: result.peak_rss_bytes,
    });
  }

  say("");
  for (const [name, version] of Object.entries(report.versions)) say(`${name}: ${version}`);
  for (const { backend, result } of report.training) {
    const losses = result.firstLosses;
    const tensors = result.tensors;
    say(
      `${backend} ${result.algorithm}: first-iteration sup_loss ${losses.sup_loss.toFixed(6)} ` +
        `unsup_loss ${losses.unsup_loss.toFixed(6)} total_loss ${losses.total_loss.toFixed(6)}; ` +
        `${result.microBatches} forward pass(es) with gradient; tf.memory().numTensors ${tensors.start} at start, ` +
        `${tensors.afterFirst} after iteration 1, ${tensors.end} at end`,
    );
  }
  say("");
  say(rows.length > 0 ? formatResultTable(rows) : "no training results");
  say("");
  for (const { backend, result } of report.conv) {
    say(
      report.peak === null
        ? `conv forward+backward, ${backend}: ${result.gflopsPerSecond.toFixed(1)} GFLOP/s (peak unknown)`
        : formatConvLine(backend, result, report.peak.gflops),
    );
  }
  for (const line of report.skipped) say(line);
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
  if (values.help) {
    console.log(HELP);
    return;
  }
  if (values.child !== undefined) {
    const { runChildMode } = await import("./_child.ts");
    await runChildMode(values.child);
    return;
  }
  await runParent(parseSettings(values), argv);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // node:util's parseArgs marks its errors with codes such as ERR_PARSE_ARGS_UNKNOWN_OPTION.
    const isUsageError = String((error as { code?: unknown }).code ?? "").startsWith("ERR_PARSE_ARGS");
    const help = isUsageError ? `${message.endsWith(".") ? "" : "."} Run with --help for the options.` : "";
    console.error(`bench: ${message}${help}`);
    Deno.exit(2);
  }
}

/**
 * Measures the fp32 peak with the native library's FMA loop on all cores,
 * because the clock in /proc/cpuinfo can be below the boost clock the cores
 * run at. Falls back to the cpuinfo estimate when the library is missing.
 */
async function measurePeak(estimate: PeakEstimate | null): Promise<PeakEstimate | null> {
  try {
    const library = await loadNativeLibrary();
    const gflops = Math.max(...[0, 1, 2].map(() => library.symbols.sn_fma_peak(0.5)));
    const estimated = estimate === null ? "" : `; the cpuinfo estimate is ${estimate.explanation}`;
    return {
      gflops,
      explanation: `${gflops.toFixed(1)} GFLOP/s measured by an FMA loop on ${library.threads} thread(s), ` +
        `best of 3 runs of 0.5 s${estimated}`,
    };
  } catch {
    return estimate;
  }
}

/** Checks each --backends name, so that a typo is a usage error and not a skipped run. */
function parseBackendList(names: string[]): string[] {
  return names.map((name) => {
    try {
      return parseBackendName(name);
    } catch (error) {
      throw new Error(`Invalid --backends entry: ${(error as Error).message}`);
    }
  });
}
