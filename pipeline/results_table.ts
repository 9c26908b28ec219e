/**
 * Building the results table: one row per measured algorithm and one per
 * reference, one column per label count, cells as mean ± std over seeds.
 * Measured cells also carry the labeled loss, the unlabeled loss and the mask
 * rate averaged over the last 20 iterations of their train log.
 *
 * @example
 * ```ts
 * const table = buildTable(measured, references, "profile quick");
 * console.log(toMarkdown(table, "CIFAR-10 top-1 accuracy"));
 * ```
 * @module
 */

import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { meanAndStd } from "../learning/metrics.ts";

/** The accuracy of a cell that a table shows. */
export type Metric = "final" | "raw_final" | "best" | "median_last_20";

/** The meaning of each metric, for table headings. */
export const METRIC_DESCRIPTIONS: Record<Metric, string> = {
  final: "EMA model after the last iteration, evaluate stage",
  raw_final: "raw model (no EMA) after the last iteration, evaluate stage",
  best: "best EMA-model accuracy of the periodic evaluations during training",
  median_last_20: "median EMA-model accuracy of the last 20 periodic evaluations during training",
};

/** Number of final iterations of a train log that the training summary averages. */
export const SUMMARY_ITERATIONS = 20;

/** Losses and mask rate averaged over the last `SUMMARY_ITERATIONS` iterations of a train log. */
export interface TrainingSummary {
  sup_loss_last20: number;
  unsup_loss_last20: number;
  /** Share of unlabeled images whose confidence reaches the threshold, or null when the log has none (MixMatch). */
  mask_rate_last20: number | null;
}

/** One evaluated cell, with its accuracy under each metric (NaN when not measured). */
export interface MeasuredCell {
  algorithm: string;
  labels: number;
  seed: number;
  accuracy: Record<Metric, number>;
  /** Iterations the cell trained for. */
  iterations?: number;
  training?: TrainingSummary;
}

/** The train-log columns the training summary reads, with NaN where a row has no value. */
export interface TrainLogRow {
  sup_loss: number;
  unsup_loss: number;
  mask_rate: number;
}

const SUMMARY_COLUMNS = ["sup_loss", "unsup_loss", "mask_rate"] as const;

/**
 * Parses the text of a train_log.csv into rows. "NaN" (MixMatch's mask rate)
 * and empty fields become NaN.
 *
 * @example
 * ```ts
 * const rows = parseTrainLog("iteration,sup_loss,unsup_loss,mask_rate\n1,2.3,0.1,NaN\n");
 * console.log(rows[0].sup_loss); // 2.3
 * ```
 */
export function parseTrainLog(text: string): TrainLogRow[] {
  const records = parse(text, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  if (records.length === 0) return [];
  for (const column of SUMMARY_COLUMNS) {
    if (!(column in records[0])) {
      throw new Error(
        `train log has no "${column}" column (columns: ${Object.keys(records[0]).join(", ")}). ` +
          "Rebuild the train artifact with --force train.",
      );
    }
  }
  const toNumber = (field: string): number => (field.trim() === "" ? NaN : Number(field));
  return records.map((record) => ({
    sup_loss: toNumber(record.sup_loss),
    unsup_loss: toNumber(record.unsup_loss),
    mask_rate: toNumber(record.mask_rate),
  }));
}

function mean(values: number[]): number {
  return values.reduce((total, value) => total + value, 0) / values.length;
}

/**
 * Averages the labeled loss, the unlabeled loss and the mask rate over the
 * last `SUMMARY_ITERATIONS` rows of a train log (over all rows when there are
 * fewer). The mask rate averages the rows that have one, and is null when
 * none has (MixMatch logs NaN).
 *
 * @example
 * ```ts
 * const summary = summarizeTrainLog(parseTrainLog(await Deno.readTextFile("train_log.csv")));
 * console.log(summary.sup_loss_last20);
 * ```
 */
export function summarizeTrainLog(rows: readonly TrainLogRow[]): TrainingSummary {
  if (rows.length === 0) {
    throw new RangeError(
      "summarizeTrainLog: the train log has no rows. Rebuild the train artifact with --force train.",
    );
  }
  const last = rows.slice(-SUMMARY_ITERATIONS);
  const maskRates = last.map((row) => row.mask_rate).filter((rate) => !Number.isNaN(rate));
  return {
    sup_loss_last20: mean(last.map((row) => row.sup_loss)),
    unsup_loss_last20: mean(last.map((row) => row.unsup_loss)),
    mask_rate_last20: maskRates.length > 0 ? mean(maskRates) : null,
  };
}

/** Averages training summaries over seeds, and the mask rate over the seeds that have one. */
function meanSummary(summaries: TrainingSummary[]): TrainingSummary | undefined {
  if (summaries.length === 0) return undefined;
  const maskRates = summaries.flatMap((
    summary,
  ) => (summary.mask_rate_last20 === null ? [] : [summary.mask_rate_last20]));
  return {
    sup_loss_last20: mean(summaries.map((summary) => summary.sup_loss_last20)),
    unsup_loss_last20: mean(summaries.map((summary) => summary.unsup_loss_last20)),
    mask_rate_last20: maskRates.length > 0 ? mean(maskRates) : null,
  };
}

/**
 * Returns the best and the median of the last 20 accuracies of an
 * evaluation log (NaN for an empty log).
 */
export function summarizeEvaluations(accuracies: number[]): { best: number; median_last_20: number } {
  if (accuracies.length === 0) return { best: NaN, median_last_20: NaN };
  const last = accuracies.slice(-20).sort((a, b) => a - b);
  const middle = Math.floor(last.length / 2);
  const median = last.length % 2 === 1 ? last[middle] : (last[middle - 1] + last[middle]) / 2;
  return { best: Math.max(...accuracies), median_last_20: median };
}

/** A published or course accuracy, from configs/references.yaml. */
export interface ReferenceRow {
  name: string;
  algorithm: string;
  accuracy: Record<string, number>;
  source: string;
}

/** One cell of the results table: accuracy over seeds. */
export interface TableCell {
  mean: number;
  /** Sample standard deviation over seeds, or NaN for a reference. */
  std: number;
  seeds: number;
  /** Training summary averaged over the same seeds, absent for a reference. */
  training?: TrainingSummary;
}

/** A row of the results table. */
export interface TableRow {
  kind: "measured" | "reference";
  name: string;
  /** Label count to the cell. */
  cells: Map<number, TableCell>;
  source: string;
}

/** The table: columns are label counts. */
export interface ResultsTable {
  labels: number[];
  rows: TableRow[];
}

const NAMES: Record<string, string> = { fixmatch: "FixMatch", mixmatch: "MixMatch" };

/**
 * Groups measured cells by algorithm and label count, next to the references.
 * `measuredLabel` names the run in each measured row's name, the same for
 * every algorithm or per algorithm.
 */
export function buildTable(
  measured: MeasuredCell[],
  references: ReferenceRow[],
  measuredLabel: string | ((algorithm: string) => string),
  metric: Metric = "final",
): ResultsTable {
  const labels = [...new Set([...measured.map((m) => m.labels), 40, 250, 4000])].sort((a, b) => a - b);
  const rows: TableRow[] = [];
  const algorithms = [...new Set(measured.map((m) => m.algorithm))].sort();
  for (const algorithm of algorithms) {
    const cells = new Map<number, TableCell>();
    for (const count of labels) {
      const group = measured.filter((m) => m.algorithm === algorithm && m.labels === count);
      const values = group.filter((m) => !Number.isNaN(m.accuracy[metric])).map((m) => m.accuracy[metric]);
      if (values.length === 0) continue;
      const training = meanSummary(group.flatMap((m) => (m.training ? [m.training] : [])));
      cells.set(count, { ...meanAndStd(values), seeds: values.length, ...(training ? { training } : {}) });
    }
    const label = typeof measuredLabel === "string" ? measuredLabel : measuredLabel(algorithm);
    rows.push({
      kind: "measured",
      name: `semisup ${NAMES[algorithm] ?? algorithm} (${label})`,
      cells,
      source: "this run",
    });
  }
  for (const reference of references) {
    const cells = new Map<number, TableCell>();
    for (const [count, accuracy] of Object.entries(reference.accuracy)) {
      cells.set(Number(count), { mean: accuracy, std: NaN, seeds: 0 });
    }
    rows.push({ kind: "reference", name: reference.name, cells, source: reference.source });
  }
  return { labels, rows };
}

function formatCell(cell: TableCell | undefined): string {
  if (!cell) return "—";
  if (Number.isNaN(cell.std)) return cell.mean.toFixed(4);
  return `${cell.mean.toFixed(4)} ± ${cell.std.toFixed(4)} (n=${cell.seeds})`;
}

/** Renders the table as Markdown, measured rows first, references after. */
export function toMarkdown(table: ResultsTable, heading: string): string {
  const header = `| ${heading} | kind | ${table.labels.join(" | ")} |`;
  const rule = `|---|---|${table.labels.map(() => "---").join("|")}|`;
  const lines = table.rows.map((row) =>
    `| ${row.name} | ${row.kind} | ${table.labels.map((count) => formatCell(row.cells.get(count))).join(" | ")} |`
  );
  const sources = table.rows.filter((row) => row.kind === "reference").map((row) => `- ${row.name}: ${row.source}`);
  return [header, rule, ...lines, "", "Reference sources:", ...sources, ""].join("\n");
}

function formatNumber(value: number | null | undefined): string {
  return value === null || value === undefined || Number.isNaN(value) ? "" : value.toFixed(6);
}

/**
 * Renders tables as CSV: one line per (metric, row, label count) with mean,
 * std and seed count, then the training summary averaged over seeds (empty on
 * reference lines, and the mask rate empty for MixMatch). Reference rows
 * appear once, under metric "reference".
 */
export function toCsv(tables: Partial<Record<Metric, ResultsTable>>): string {
  const header = [
    "metric",
    "row",
    "kind",
    "labels",
    "mean_accuracy",
    "std_accuracy",
    "seeds",
    "source",
    "sup_loss_last20",
    "unsup_loss_last20",
    "mask_rate_last20",
  ];
  const records: (string | number)[][] = [header];
  let referencesDone = false;
  for (const [metric, table] of Object.entries(tables) as [Metric, ResultsTable][]) {
    for (const row of table.rows) {
      if (row.kind === "reference" && referencesDone) continue;
      for (const count of table.labels) {
        const cell = row.cells.get(count);
        if (!cell) continue;
        const std = Number.isNaN(cell.std) ? "" : cell.std.toFixed(6);
        const rowMetric = row.kind === "reference" ? "reference" : metric;
        const training = cell.training;
        records.push([
          rowMetric,
          row.name,
          row.kind,
          count,
          cell.mean.toFixed(6),
          std,
          cell.seeds,
          row.source,
          formatNumber(training?.sup_loss_last20),
          formatNumber(training?.unsup_loss_last20),
          formatNumber(training?.mask_rate_last20),
        ]);
      }
    }
    referencesDone = true;
  }
  return stringify(records);
}

function cellId(cell: MeasuredCell): string {
  return `${cell.algorithm}-${cell.labels}-s${cell.seed}`;
}

/**
 * Renders one line per measured cell: iterations, the training summary and
 * the final EMA and raw test accuracy. A missing value is shown as "—".
 *
 * @example
 * ```ts
 * console.log(toTrainingMarkdown(measured));
 * ```
 */
export function toTrainingMarkdown(cells: MeasuredCell[]): string {
  const show = (value: number | null | undefined, digits: number): string =>
    value === null || value === undefined || Number.isNaN(value) ? "—" : value.toFixed(digits);
  const header =
    `| cell | iterations | sup_loss (last ${SUMMARY_ITERATIONS}) | unsup_loss (last ${SUMMARY_ITERATIONS}) | ` +
    `mask_rate (last ${SUMMARY_ITERATIONS}) | EMA accuracy | raw accuracy |`;
  const lines = cells.map((cell) =>
    `| ${cellId(cell)} | ${cell.iterations ?? "—"} | ${show(cell.training?.sup_loss_last20, 4)} | ` +
    `${show(cell.training?.unsup_loss_last20, 4)} | ${show(cell.training?.mask_rate_last20, 4)} | ` +
    `${show(cell.accuracy.final, 4)} | ${show(cell.accuracy.raw_final, 4)} |`
  );
  return [header, "|---|---|---|---|---|---|---|", ...lines, ""].join("\n");
}

/**
 * Renders the measured cells as JSON, one object per cell with its iterations,
 * accuracies and training summary. NaN and a missing mask rate are written
 * as null.
 *
 * @example
 * ```ts
 * await Deno.writeTextFile("summary.json", toSummaryJson(measured));
 * ```
 */
export function toSummaryJson(cells: MeasuredCell[]): string {
  const orNull = (value: number | null | undefined): number | null =>
    value === null || value === undefined || Number.isNaN(value) ? null : value;
  const entries = cells.map((cell) => ({
    cell: cellId(cell),
    algorithm: cell.algorithm,
    labels: cell.labels,
    seed: cell.seed,
    iterations: cell.iterations ?? null,
    accuracy: Object.fromEntries(Object.entries(cell.accuracy).map(([metric, value]) => [metric, orNull(value)])),
    sup_loss_last20: orNull(cell.training?.sup_loss_last20),
    unsup_loss_last20: orNull(cell.training?.unsup_loss_last20),
    mask_rate_last20: orNull(cell.training?.mask_rate_last20),
  }));
  return JSON.stringify({ summary_iterations: SUMMARY_ITERATIONS, cells: entries }, null, 2) + "\n";
}
