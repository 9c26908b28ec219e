/**
 * tabulate: results.csv and results.md from every evaluated cell, next to
 * the reference rows of configs/references.yaml, and summary.json with each
 * cell's accuracies and its losses and mask rate over the last 20
 * iterations. A copy of the three files is also written to
 * artifacts/results.{csv,md} and artifacts/summary.json for convenience.
 *
 * @module
 */

import { type CellResult, forced, type RunContext, stageCode } from "../pipeline/runner.ts";
import { type StageResult, writeFileSynced } from "../pipeline/cache.ts";
import { parseYamlText, REPO_ROOT, trainConfigFor } from "../pipeline/config.ts";
import { type AlgorithmName, ALGORITHMS } from "../pipeline/config_schema.ts";
import { parse } from "csv-parse/sync";
import {
  buildTable,
  type MeasuredCell,
  METRIC_DESCRIPTIONS,
  parseTrainLog,
  type ReferenceRow,
  summarizeEvaluations,
  summarizeTrainLog,
  toCsv,
  toMarkdown,
  toSummaryJson,
  toTrainingMarkdown,
} from "../pipeline/results_table.ts";
import { sha256 } from "../pipeline/hash.ts";

/** Parses a cell id `fixmatch-40-s0`. */
function parseCell(cell: string): { algorithm: string; labels: number; seed: number } {
  const match = /^([a-z]+)-(\d+)-s(\d+)$/.exec(cell);
  if (!match) throw new Error(`tabulate: unexpected cell id "${cell}"`);
  return { algorithm: match[1], labels: Number(match[2]), seed: Number(match[3]) };
}

/** Writes the results table. */
export async function run(context: RunContext): Promise<StageResult> {
  const { config, store } = context;
  const evaluated = context.outputs.get("evaluate") as Map<string, CellResult>;
  const trained = context.outputs.get("train") as Map<string, CellResult>;
  const referencesPath = config.tabulate.references.startsWith("/")
    ? config.tabulate.references
    : `${REPO_ROOT}${config.tabulate.references}`;
  const referencesText = await Deno.readTextFile(referencesPath);
  const references = (parseYamlText(referencesText, referencesPath) as { references: ReferenceRow[] }).references;
  const inputs = Object.fromEntries([
    ...[...evaluated].map(([cell, result]) => [`evaluate:${cell}`, result.key]),
    ...[...trained].map(([cell, result]) => [`train:${cell}`, result.key]),
  ]);
  const iterations = (algorithm: string): number => trainConfigFor(config, algorithm as AlgorithmName).iterations;
  const measuredLabels = Object.fromEntries(ALGORITHMS.map((algorithm) => [
    algorithm,
    `profile ${config.profile}, ${iterations(algorithm)} iterations, backend ${config.backend}`,
  ]));
  const measuredLabel = (algorithm: string): string => measuredLabels[algorithm as AlgorithmName];

  const result = await store.run(
    {
      stage: "tabulate",
      code: await stageCode("tabulate"),
      params: { metric: config.tabulate.metric, references: sha256(referencesText), measuredLabels },
      inputs,
    },
    async ({ dir, log }) => {
      const measured: MeasuredCell[] = [];
      for (const [cell, evaluation] of evaluated) {
        const metrics = JSON.parse(await Deno.readTextFile(`${evaluation.dir}/metrics.json`));
        const trainDir = trained.get(cell)!.dir;
        // The periodic evaluations during training give the best and median-of-last-20 columns.
        const evalLog = parse(await Deno.readTextFile(`${trainDir}/eval_log.csv`), {
          columns: true,
          cast: true,
        }) as { iteration: number; ema_accuracy: number }[];
        const periodic = summarizeEvaluations(evalLog.map((row) => row.ema_accuracy));
        const training = summarizeTrainLog(parseTrainLog(await Deno.readTextFile(`${trainDir}/train_log.csv`)));
        const id = parseCell(cell);
        measured.push({
          ...id,
          accuracy: { final: metrics.accuracy, raw_final: metrics.raw_accuracy, ...periodic },
          iterations: iterations(id.algorithm),
          training,
        });
      }
      const metric = config.tabulate.metric;
      const table = buildTable(measured, references, measuredLabel, metric);
      const markdown = [
        toMarkdown(table, `CIFAR-10 top-1 accuracy (${metric}: ${METRIC_DESCRIPTIONS[metric]})`),
        "Training summary (means over the last 20 iterations of each train log):",
        "",
        toTrainingMarkdown(measured),
      ].join("\n");
      await writeFileSynced(`${dir}/results.md`, markdown);
      await writeFileSynced(
        `${dir}/results.csv`,
        toCsv({
          final: buildTable(measured, references, measuredLabel, "final"),
          raw_final: buildTable(measured, references, measuredLabel, "raw_final"),
          best: buildTable(measured, references, measuredLabel, "best"),
          median_last_20: buildTable(measured, references, measuredLabel, "median_last_20"),
        }),
      );
      await writeFileSynced(`${dir}/summary.json`, toSummaryJson(measured));
      log.info(`results table:\n${markdown}`);
    },
    { force: forced(context, "tabulate") },
  );
  await Deno.copyFile(`${result.dir}/results.md`, `${config.artifacts}/results.md`);
  await Deno.copyFile(`${result.dir}/results.csv`, `${config.artifacts}/results.csv`);
  await Deno.copyFile(`${result.dir}/summary.json`, `${config.artifacts}/summary.json`);
  return result;
}
