import assert from "node:assert/strict";
import { parse } from "csv-parse/sync";
import {
  buildTable,
  type MeasuredCell,
  parseTrainLog,
  summarizeEvaluations,
  summarizeTrainLog,
  toCsv,
  toMarkdown,
  toSummaryJson,
  toTrainingMarkdown,
  type TrainingSummary,
} from "../pipeline/results_table.ts";
import { balancedSubset, classificationMetrics, meanAndStd } from "../learning/metrics.ts";

const references = [
  {
    name: "TorchSSL FixMatch",
    algorithm: "fixmatch",
    accuracy: { 40: 0.9253, 250: 0.9514, 4000: 0.9579 },
    source: "TorchSSL README",
  },
];

function cell(algorithm: string, labels: number, seed: number, final: number, best = NaN, median = NaN): MeasuredCell {
  return { algorithm, labels, seed, accuracy: { final, raw_final: NaN, best, median_last_20: median } };
}

function trained(
  algorithm: string,
  seed: number,
  final: number,
  rawFinal: number,
  training: TrainingSummary,
): MeasuredCell {
  return {
    algorithm,
    labels: 4000,
    seed,
    accuracy: { final, raw_final: rawFinal, best: NaN, median_last_20: NaN },
    iterations: algorithm === "fixmatch" ? 100 : 300,
    training,
  };
}

/** Writes a train log in the layout of train_cell.ts: one row per iteration, NaN as csv-stringify prints it. */
function trainLogText(rows: number, maskRate: (iteration: number) => number): string {
  const lines = ["iteration,sup_loss,unsup_loss,total_loss,lambda_u,mask_rate,lr"];
  for (let iteration = 1; iteration <= rows; iteration++) {
    const sup = iteration / 10;
    const unsup = 2 * iteration;
    lines.push(`${iteration},${sup},${unsup},${sup + unsup},1,${maskRate(iteration)},0.03`);
  }
  return lines.join("\n") + "\n";
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

Deno.test("train log last-20 means for FixMatch", () => {
  const rows = parseTrainLog(trainLogText(25, (iteration) => iteration / 100));
  assert.equal(rows.length, 25);
  const summary = summarizeTrainLog(rows);
  // The last 20 iterations are 6..25, whose mean is 15.5.
  assert.ok(Math.abs(summary.sup_loss_last20 - 1.55) < 1e-12);
  assert.ok(Math.abs(summary.unsup_loss_last20 - 31) < 1e-12);
  assert.ok(Math.abs(summary.mask_rate_last20! - 0.155) < 1e-12);
});

Deno.test("train log MixMatch mask rate is null", () => {
  const rows = parseTrainLog(trainLogText(30, () => NaN));
  assert.ok(rows.every((row) => Number.isNaN(row.mask_rate)));
  const summary = summarizeTrainLog(rows);
  // The last 20 iterations are 11..30, whose mean is 20.5.
  assert.ok(Math.abs(summary.sup_loss_last20 - 2.05) < 1e-12);
  assert.ok(Math.abs(summary.unsup_loss_last20 - 41) < 1e-12);
  assert.equal(summary.mask_rate_last20, null);
});

Deno.test("train log shorter than 20 rows", () => {
  const text = "iteration,sup_loss,unsup_loss,mask_rate\n1,2.5,0.5,0\n2,1.5,0.25,0.5\n3,1.0,0.75,1\n";
  const summary = summarizeTrainLog(parseTrainLog(text));
  assert.ok(Math.abs(summary.sup_loss_last20 - 5 / 3) < 1e-12);
  assert.ok(Math.abs(summary.unsup_loss_last20 - 0.5) < 1e-12);
  assert.ok(Math.abs(summary.mask_rate_last20! - 0.5) < 1e-12);
});

Deno.test("train log errors name the problem", () => {
  assert.throws(() => parseTrainLog("iteration,sup_loss,mask_rate\n1,2,0\n"), /no "unsup_loss" column/);
  assert.throws(() => summarizeTrainLog(parseTrainLog("iteration,sup_loss,unsup_loss,mask_rate\n")), /no rows/);
});

Deno.test("table csv has training summary columns", () => {
  const cells = [
    trained("fixmatch", 0, 0.11, 0.2, { sup_loss_last20: 1.5, unsup_loss_last20: 0.25, mask_rate_last20: 0.5 }),
    trained("fixmatch", 1, 0.13, 0.3, { sup_loss_last20: 2.5, unsup_loss_last20: 0.75, mask_rate_last20: 0.25 }),
    trained("mixmatch", 0, 0.1, 0.12, { sup_loss_last20: 2.25, unsup_loss_last20: 0.01, mask_rate_last20: null }),
  ];
  const label = (algorithm: string) => `reference, ${algorithm === "fixmatch" ? 100 : 300} iterations`;
  const records = parse(
    toCsv({
      final: buildTable(cells, references, label, "final"),
      raw_final: buildTable(cells, references, label, "raw_final"),
    }),
    { columns: true },
  ) as Record<string, string>[];
  const fixmatch = records.filter((r) => r.kind === "measured" && r.row.includes("FixMatch"));
  assert.deepEqual(fixmatch.map((r) => [r.metric, r.mean_accuracy]), [["final", "0.120000"], [
    "raw_final",
    "0.250000",
  ]]);
  assert.ok(fixmatch.every((r) => r.row === "semisup FixMatch (reference, 100 iterations)"));
  assert.ok(fixmatch.every((r) => r.sup_loss_last20 === "2.000000"));
  assert.ok(fixmatch.every((r) => r.unsup_loss_last20 === "0.500000"));
  assert.ok(fixmatch.every((r) => r.mask_rate_last20 === "0.375000"));
  const mixmatch = records.filter((r) => r.kind === "measured" && r.row.includes("MixMatch"));
  assert.equal(mixmatch.length, 2);
  assert.ok(mixmatch.every((r) => r.row === "semisup MixMatch (reference, 300 iterations)"));
  assert.ok(mixmatch.every((r) => r.sup_loss_last20 === "2.250000"));
  assert.ok(mixmatch.every((r) => r.mask_rate_last20 === ""));
  const reference = records.filter((r) => r.kind === "reference");
  assert.ok(reference.every((r) => r.sup_loss_last20 === ""));
  assert.ok(reference.every((r) => r.mask_rate_last20 === ""));
});

Deno.test("summary json writes null for missing values", () => {
  const cells = [
    trained("fixmatch", 0, 0.11, 0.2, { sup_loss_last20: 1.5, unsup_loss_last20: 0.25, mask_rate_last20: 0.5 }),
    trained("mixmatch", 0, 0.1, 0.12, { sup_loss_last20: 2.25, unsup_loss_last20: 0.01, mask_rate_last20: null }),
  ];
  const summary = JSON.parse(toSummaryJson(cells));
  assert.equal(summary.summary_iterations, 20);
  assert.deepEqual(summary.cells[0], {
    cell: "fixmatch-4000-s0",
    algorithm: "fixmatch",
    labels: 4000,
    seed: 0,
    iterations: 100,
    accuracy: { final: 0.11, raw_final: 0.2, best: null, median_last_20: null },
    sup_loss_last20: 1.5,
    unsup_loss_last20: 0.25,
    mask_rate_last20: 0.5,
  });
  assert.equal(summary.cells[1].cell, "mixmatch-4000-s0");
  assert.equal(summary.cells[1].iterations, 300);
  assert.equal(summary.cells[1].mask_rate_last20, null);
});

Deno.test("training markdown shows each cell", () => {
  const cells = [
    trained("mixmatch", 0, 0.1, 0.12, { sup_loss_last20: 2.25, unsup_loss_last20: 0.01, mask_rate_last20: null }),
  ];
  const markdown = toTrainingMarkdown(cells);
  assert.match(markdown, /\| mixmatch-4000-s0 \| 300 \| 2\.2500 \| 0\.0100 \| — \| 0\.1000 \| 0\.1200 \|/);
});
