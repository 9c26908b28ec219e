/**
 * Building the results table: one row per measured algorithm and one per
 * reference, one column per label count, cells as mean ± std over seeds.
 *
 * @example
 * ```ts
 * const table = buildTable(measured, references, [40, 250, 4000]);
 * console.log(toMarkdown(table));
 * ```
 * @module
 */

import { stringify } from "csv-stringify/sync";
import { meanAndStd } from "../learning/metrics.ts";

/** The accuracy of a cell that a table shows. */
export type Metric = "final" | "best" | "median_last_20";

/** The meaning of each metric, for table headings. */
export const METRIC_DESCRIPTIONS: Record<Metric, string> = {
  final: "EMA model after the last iteration, evaluate stage",
  best: "best EMA-model accuracy of the periodic evaluations during training",
  median_last_20: "median EMA-model accuracy of the last 20 periodic evaluations during training",
};

/** One evaluated cell, with its accuracy under each metric (NaN when not measured). */
export interface MeasuredCell {
  algorithm: string;
  labels: number;
  seed: number;
  accuracy: Record<Metric, number>;
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

/** A row of the results table. */
export interface TableRow {
  kind: "measured" | "reference";
  name: string;
  /** Label count to the cell: mean, std, seed count. */
  cells: Map<number, { mean: number; std: number; seeds: number }>;
  source: string;
}

/** The table: columns are label counts. */
export interface ResultsTable {
  labels: number[];
  rows: TableRow[];
}

const NAMES: Record<string, string> = { fixmatch: "FixMatch", mixmatch: "MixMatch" };

/** Groups measured cells by algorithm and label count, next to the references. */
export function buildTable(
  measured: MeasuredCell[],
  references: ReferenceRow[],
  measuredLabel: string,
  metric: Metric = "final",
): ResultsTable {
  const labels = [...new Set([...measured.map((m) => m.labels), 40, 250, 4000])].sort((a, b) => a - b);
  const rows: TableRow[] = [];
  const algorithms = [...new Set(measured.map((m) => m.algorithm))].sort();
  for (const algorithm of algorithms) {
    const cells = new Map<number, { mean: number; std: number; seeds: number }>();
    for (const count of labels) {
      const values = measured
        .filter((m) => m.algorithm === algorithm && m.labels === count && !Number.isNaN(m.accuracy[metric]))
        .map((m) => m.accuracy[metric]);
      if (values.length > 0) cells.set(count, { ...meanAndStd(values), seeds: values.length });
    }
    rows.push({
      kind: "measured",
      name: `semisup ${NAMES[algorithm] ?? algorithm} (${measuredLabel})`,
      cells,
      source: "this run",
    });
  }
  for (const reference of references) {
    const cells = new Map<number, { mean: number; std: number; seeds: number }>();
    for (const [count, accuracy] of Object.entries(reference.accuracy)) {
      cells.set(Number(count), { mean: accuracy, std: NaN, seeds: 0 });
    }
    rows.push({ kind: "reference", name: reference.name, cells, source: reference.source });
  }
  return { labels, rows };
}

function formatCell(cell: { mean: number; std: number; seeds: number } | undefined): string {
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

/**
 * Renders tables as CSV: one line per (metric, row, label count) with mean,
 * std and seed count. Reference rows appear once, under metric "reference".
 */
export function toCsv(tables: Partial<Record<Metric, ResultsTable>>): string {
  const header = ["metric", "row", "kind", "labels", "mean_accuracy", "std_accuracy", "seeds", "source"];
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
        records.push([rowMetric, row.name, row.kind, count, cell.mean.toFixed(6), std, cell.seeds, row.source]);
      }
    }
    referencesDone = true;
  }
  return stringify(records);
}
