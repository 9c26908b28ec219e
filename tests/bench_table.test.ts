/**
 * Result table and convolution line of the benchmark: ratios against wasm
 * and PyTorch, missing references, number formats.
 */

import assert from "node:assert/strict";
import { type BenchRow, formatConvLine, formatMebibytes, formatRatio, formatResultTable } from "../bench/_table.ts";

const ROWS: BenchRow[] = [
  {
    backend: "native",
    algorithm: "fixmatch",
    imagesPerIteration: 960,
    secondsPerIteration: 8,
    imagesPerSecond: 120,
    peakRssBytes: 5.5 * 2 ** 30,
  },
  {
    backend: "native",
    algorithm: "mixmatch",
    imagesPerIteration: 192,
    secondsPerIteration: 1.5,
    imagesPerSecond: 128,
    peakRssBytes: 1536 * 2 ** 20,
  },
  {
    backend: "wasm",
    algorithm: "fixmatch",
    imagesPerIteration: 960,
    secondsPerIteration: 96,
    imagesPerSecond: 10,
    peakRssBytes: 3 * 2 ** 30,
  },
  {
    backend: "pytorch",
    algorithm: "fixmatch",
    imagesPerIteration: 960,
    secondsPerIteration: 17.143,
    imagesPerSecond: 56,
    peakRssBytes: null,
  },
];

Deno.test("result table ratios and formats", () => {
  const lines = formatResultTable(ROWS).split("\n");
  assert.equal(lines.length, 6);
  assert.equal(
    lines[0],
    "| backend | algorithm | images/iteration | s/iteration | images/s | x wasm | x PyTorch | peak RSS |",
  );
  assert.equal(lines[1], "| --- | --- | --- | --- | --- | --- | --- | --- |");
  // 120 / 10 = 12.00x wasm, 120 / 56 = 2.142... x PyTorch.
  assert.equal(lines[2], "| native | fixmatch | 960 | 8.00 | 120.0 | 12.00x | 2.14x | 5632 MiB |");
  // No wasm or PyTorch row for MixMatch.
  assert.equal(lines[3], "| native | mixmatch | 192 | 1.50 | 128.0 | - | - | 1536 MiB |");
  assert.equal(lines[4], "| wasm | fixmatch | 960 | 96.00 | 10.0 | 1.00x | 0.18x | 3072 MiB |");
  assert.equal(lines[5], "| pytorch | fixmatch | 960 | 17.14 | 56.0 | 5.60x | 1.00x | - |");
});

Deno.test("result table without rows has a header only", () => {
  assert.equal(formatResultTable([]).split("\n").length, 2);
});

Deno.test("ratio and size formats", () => {
  assert.equal(formatRatio(30, 20), "1.50x");
  assert.equal(formatRatio(1, 3), "0.33x");
  assert.equal(formatRatio(30, undefined), "-");
  assert.equal(formatRatio(30, 0), "-");
  assert.equal(formatMebibytes(null), "-");
  assert.equal(formatMebibytes(2 ** 20 * 1.6), "2 MiB");
  assert.equal(formatMebibytes(0), "0 MiB");
});

Deno.test("conv line reports share of peak", () => {
  const conv = { batchSize: 64, layerCount: 28, totalFlops: 82_311_118_848, totalSeconds: 6.5, gflopsPerSecond: 12.66 };
  assert.equal(
    formatConvLine("wasm", conv, 166.15),
    // 100 * 12.66 / 166.15 = 7.619...
    "conv forward+backward, wasm: 12.7 GFLOP/s = 7.6% of the 166.2 GFLOP/s fp32 peak " +
      "(28 layers of WRN-28-2 at batch 64, 82.3 GFLOP in 6.50 s)",
  );
});
