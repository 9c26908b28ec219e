import assert from "node:assert/strict";
import { parse } from "csv-parse/sync";
import { buildTable, type MeasuredCell, summarizeEvaluations, toCsv, toMarkdown } from "../pipeline/results_table.ts";
import { balancedSubset, classificationMetrics, meanAndStd } from "../learning/metrics.ts";

const references = [
  { name: "TorchSSL FixMatch", algorithm: "fixmatch", accuracy: { 40: 0.9253, 250: 0.9514, 4000: 0.9579 }, source: "TorchSSL README" },
];

function cell(algorithm: string, labels: number, seed: number, final: number, best = NaN, median = NaN): MeasuredCell {
  return { algorithm, labels, seed, accuracy: { final, best, median_last_20: median } };
}

Deno.test("metrics accuracy and confusion on a tiny case", () => {
  const metrics = classificationMetrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3);
  assert.equal(metrics.accuracy, 4 / 6);
  assert.deepEqual(metrics.confusion, [[1, 1, 0], [0, 1, 0], [1, 0, 2]]);
  assert.deepEqual(metrics.perClassAccuracy, [0.5, 1, 2 / 3]);
});

Deno.test("metrics mean and sample std", () => {
  const { mean, std } = meanAndStd([0.5, 0.7]);
  assert.ok(Math.abs(mean - 0.6) < 1e-12);
  assert.ok(Math.abs(std - Math.sqrt(0.02)) < 1e-12);
  assert.deepEqual(meanAndStd([0.4]), { mean: 0.4, std: 0 });
});

Deno.test("balanced subset takes classes in turn", () => {
  const labels = [0, 0, 0, 1, 1, 2, 2, 2];
  assert.deepEqual(Array.from(balancedSubset(labels, 3, 4)), [0, 1, 3, 5]);
  assert.deepEqual(Array.from(balancedSubset(labels, 3, 100)), [0, 1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("table groups seeds into mean and std", () => {
  const table = buildTable(
    [
      cell("fixmatch", 40, 0, 0.5),
      cell("fixmatch", 40, 1, 0.7),
      cell("mixmatch", 250, 0, 0.3),
    ],
    references,
    "profile quick",
  );
  assert.deepEqual(table.labels, [40, 250, 4000]);
  const fixmatch = table.rows.find((row) => row.name.includes("FixMatch") && row.kind === "measured")!;
  assert.ok(Math.abs(fixmatch.cells.get(40)!.mean - 0.6) < 1e-12);
  assert.equal(fixmatch.cells.get(40)!.seeds, 2);
  assert.equal(fixmatch.cells.has(250), false);
  assert.equal(table.rows.filter((row) => row.kind === "reference").length, 1);
});

Deno.test("table markdown marks references apart", () => {
  const table = buildTable([cell("fixmatch", 40, 0, 0.5)], references, "quick");
  const markdown = toMarkdown(table, "accuracy");
  assert.match(markdown, /\| semisup FixMatch \(quick\) \| measured \| 0\.5000 ± 0\.0000 \(n=1\) \| — \| — \|/);
  assert.match(markdown, /\| TorchSSL FixMatch \| reference \| 0\.9253 \| 0\.9514 \| 0\.9579 \|/);
  assert.match(markdown, /- TorchSSL FixMatch: TorchSSL README/);
});

Deno.test("table csv has one record per cell", () => {
  const table = buildTable([cell("mixmatch", 4000, 0, 0.25)], references, "quick");
  const records = parse(toCsv({ final: table }), { columns: true }) as Record<string, string>[];
  assert.equal(records.length, 4);
  assert.equal(records[0].metric, "final");
  const measured = records.find((r) => r.kind === "measured")!;
  assert.equal(measured.labels, "4000");
  assert.equal(measured.mean_accuracy, "0.250000");
  assert.equal(records.filter((r) => r.kind === "reference").length, 3);
});

Deno.test("evaluation log best and median of last 20", () => {
  const log = Array.from({ length: 30 }, (_, i) => i / 100);
  const summary = summarizeEvaluations(log);
  assert.equal(summary.best, 0.29);
  // The last 20 are 0.10 .. 0.29, whose median is (0.19 + 0.20) / 2.
  assert.ok(Math.abs(summary.median_last_20 - 0.195) < 1e-12);
  assert.deepEqual(summarizeEvaluations([0.3, 0.1, 0.2]), { best: 0.3, median_last_20: 0.2 });
  assert.ok(Number.isNaN(summarizeEvaluations([]).best));
});

Deno.test("table shows the chosen metric and csv all of them", () => {
  const cells = [cell("fixmatch", 40, 0, 0.5, 0.6, 0.55)];
  const final = buildTable(cells, references, "quick", "final");
  const best = buildTable(cells, references, "quick", "best");
  const median = buildTable(cells, references, "quick", "median_last_20");
  assert.equal(best.rows[0].cells.get(40)!.mean, 0.6);
  assert.equal(median.rows[0].cells.get(40)!.mean, 0.55);
  const records = parse(toCsv({ final, best, median_last_20: median }), { columns: true }) as Record<string, string>[];
  const measured = records.filter((r) => r.kind === "measured").map((r) => [r.metric, r.mean_accuracy]);
  assert.deepEqual(measured, [["final", "0.500000"], ["best", "0.600000"], ["median_last_20", "0.550000"]]);
  assert.equal(records.filter((r) => r.kind === "reference").length, 3);
  assert.ok(records.filter((r) => r.kind === "reference").every((r) => r.metric === "reference"));
});
