import assert from "node:assert/strict";
import { parse } from "csv-parse/sync";
import { buildTable, toCsv, toMarkdown } from "../pipeline/results_table.ts";
import { balancedSubset, classificationMetrics, meanAndStd } from "../learning/metrics.ts";

const references = [
  { name: "TorchSSL FixMatch", algorithm: "fixmatch", accuracy: { 40: 0.9253, 250: 0.9514, 4000: 0.9579 }, source: "TorchSSL README" },
];

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
      { algorithm: "fixmatch", labels: 40, seed: 0, accuracy: 0.5 },
      { algorithm: "fixmatch", labels: 40, seed: 1, accuracy: 0.7 },
      { algorithm: "mixmatch", labels: 250, seed: 0, accuracy: 0.3 },
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
  const table = buildTable([{ algorithm: "fixmatch", labels: 40, seed: 0, accuracy: 0.5 }], references, "quick");
  const markdown = toMarkdown(table, "accuracy");
  assert.match(markdown, /\| semisup FixMatch \(quick\) \| measured \| 0\.5000 ± 0\.0000 \(n=1\) \| — \| — \|/);
  assert.match(markdown, /\| TorchSSL FixMatch \| reference \| 0\.9253 \| 0\.9514 \| 0\.9579 \|/);
  assert.match(markdown, /- TorchSSL FixMatch: TorchSSL README/);
});

Deno.test("table csv has one record per cell", () => {
  const table = buildTable([{ algorithm: "mixmatch", labels: 4000, seed: 0, accuracy: 0.25 }], references, "quick");
  const records = parse(toCsv(table), { columns: true }) as Record<string, string>[];
  assert.equal(records.length, 4);
  const measured = records.find((r) => r.kind === "measured")!;
  assert.equal(measured.labels, "4000");
  assert.equal(measured.mean_accuracy, "0.250000");
  assert.equal(records.filter((r) => r.kind === "reference").length, 3);
});
