/**
 * Formatting of the benchmark's results: a Markdown table of training speed
 * with ratios against the wasm backend and PyTorch, and one line per backend
 * for the convolution throughput.
 *
 * @example
 * ```ts
 * import { formatResultTable } from "./_table.ts";
 *
 * console.log(formatResultTable([
 *   { backend: "wasm", algorithm: "mixmatch", imagesPerIteration: 192, secondsPerIteration: 20,
 *     imagesPerSecond: 9.6, peakRssBytes: 2 ** 31 },
 * ]));
 * ```
 * @module
 */

/** One row of the result table: a backend (or "pytorch") running one algorithm. */
export interface BenchRow {
  backend: string;
  algorithm: string;
  imagesPerIteration: number;
  secondsPerIteration: number;
  imagesPerSecond: number;
  /** Peak resident set size of the process that ran it; null where unknown. */
  peakRssBytes: number | null;
}

/** The backend name of PyTorch's rows; the "x PyTorch" column divides by them. */
export const PYTORCH_ROW = "pytorch";

/** The backend whose rows the "x wasm" column divides by. */
export const WASM_ROW = "wasm";

const HEADER = [
  "backend",
  "algorithm",
  "images/iteration",
  "s/iteration",
  "images/s",
  "x wasm",
  "x PyTorch",
  "peak RSS",
];

/**
 * Formats `rows` as a Markdown table. "x wasm" and "x PyTorch" are this
 * row's images/s divided by those of the wasm or PyTorch row of the same
 * algorithm, and "-" where that row is absent.
 *
 * @example
 * ```ts
 * formatResultTable([
 *   { backend: "wasm", algorithm: "fixmatch", imagesPerIteration: 960, secondsPerIteration: 100,
 *     imagesPerSecond: 9.6, peakRssBytes: 3 * 2 ** 30 },
 * ]);
 * // | backend | algorithm | images/iteration | s/iteration | images/s | x wasm | x PyTorch | peak RSS |
 * // | --- | ... |
 * // | wasm | fixmatch | 960 | 100.00 | 9.6 | 1.00x | - | 3072 MiB |
 * ```
 */
export function formatResultTable(rows: readonly BenchRow[]): string {
  const lines = [markdownRow(HEADER), markdownRow(HEADER.map(() => "---"))];
  for (const row of rows) {
    const wasm = rows.find((other) => other.backend === WASM_ROW && other.algorithm === row.algorithm);
    const pytorch = rows.find((other) => other.backend === PYTORCH_ROW && other.algorithm === row.algorithm);
    lines.push(markdownRow([
      row.backend,
      row.algorithm,
      String(row.imagesPerIteration),
      row.secondsPerIteration.toFixed(2),
      row.imagesPerSecond.toFixed(1),
      formatRatio(row.imagesPerSecond, wasm?.imagesPerSecond),
      formatRatio(row.imagesPerSecond, pytorch?.imagesPerSecond),
      formatMebibytes(row.peakRssBytes),
    ]));
  }
  return lines.join("\n");
}

function markdownRow(cells: readonly string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/**
 * Formats `value / reference` as "1.23x", or "-" without a reference.
 *
 * @example
 * ```ts
 * formatRatio(30, 20); // "1.50x"
 * formatRatio(30, undefined); // "-"
 * ```
 */
export function formatRatio(value: number, reference: number | undefined): string {
  if (reference === undefined || !(reference > 0)) return "-";
  return `${(value / reference).toFixed(2)}x`;
}

/**
 * Formats a byte count in whole MiB, or "-" for null.
 *
 * @example
 * ```ts
 * formatMebibytes(3 * 2 ** 30); // "3072 MiB"
 * ```
 */
export function formatMebibytes(bytes: number | null): string {
  return bytes === null ? "-" : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/**
 * Formats the convolution throughput of one backend and its share of the
 * fp32 peak.
 *
 * @example
 * ```ts
 * formatConvLine("wasm", { batchSize: 64, layerCount: 28, totalFlops: 8.2e10, totalSeconds: 6.6, gflopsPerSecond: 12.4 }, 166.1);
 * // "conv forward+backward, wasm: 12.4 GFLOP/s = 7.5% of the 166.1 GFLOP/s fp32 peak (28 layers of WRN-28-2 ..."
 * ```
 */
export function formatConvLine(
  backend: string,
  conv: { batchSize: number; layerCount: number; totalFlops: number; totalSeconds: number; gflopsPerSecond: number },
  peakGflops: number,
): string {
  const share = (100 * conv.gflopsPerSecond) / peakGflops;
  return `conv forward+backward, ${backend}: ${conv.gflopsPerSecond.toFixed(1)} GFLOP/s = ${share.toFixed(1)}% ` +
    `of the ${peakGflops.toFixed(1)} GFLOP/s fp32 peak (${conv.layerCount} layers of WRN-28-2 at batch ` +
    `${conv.batchSize}, ${(conv.totalFlops / 1e9).toFixed(1)} GFLOP in ${conv.totalSeconds.toFixed(2)} s)`;
}
