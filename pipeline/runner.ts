/**
 * Runs stages of the study in dependency order. The DAG is the
 * `dependencies` of the stage tasks in deno.json, so that file is the one
 * place it is declared.
 *
 * @example
 * ```ts
 * const config = await loadConfig(["--profile", "smoke"]);
 * await runStages(["tabulate"], { config, force: new Set() });
 * ```
 * @module
 */

import type { StudyConfig } from "./config.ts";
import { REPO_ROOT } from "./config.ts";
import { ArtifactStore, type StageResult } from "./cache.ts";
import { sourceHash } from "./source_hash.ts";
import { formatDuration, stageLogger } from "./log.ts";

/** The configuration, the store and the upstream results handed to every stage. */
export interface RunContext {
  config: StudyConfig;
  store: ArtifactStore;
  /** Stage names to rebuild even when cached; "all" rebuilds every stage. */
  force: Set<string>;
  /** Results of the stages already run in this process, by stage name. */
  outputs: Map<string, unknown>;
}

/** A stage entry point: runs its cells and returns their results. */
export type StageFunction = (context: RunContext) => Promise<unknown>;

/** A cell's result in a multi-cell stage. */
export interface CellResult extends StageResult {
  /** Cell id such as `fixmatch-40-s0` or `40-s0`. */
  cell: string;
}

interface TaskDefinition {
  command?: string;
  dependencies?: string[];
}

/** Reads the stage DAG from deno.json: stage name to its dependencies. */
export async function readStageGraph(): Promise<Map<string, string[]>> {
  const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));
  const tasks = denoJson.tasks as Record<string, TaskDefinition | string>;
  const graph = new Map<string, string[]>();
  for (const [name, task] of Object.entries(tasks)) {
    if (typeof task === "string" || !task.command?.includes("pipeline/cli.ts")) continue;
    const isStage = await Deno.stat(`${REPO_ROOT}stages/${name}.ts`).then(() => true, () => false);
    if (isStage) graph.set(name, task.dependencies ?? []);
  }
  return graph;
}

/** Returns the stages needed for `targets`, dependencies first. */
export function stageOrder(graph: Map<string, string[]>, targets: string[]): string[] {
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (name: string) => {
    if (order.includes(name)) return;
    if (visiting.has(name)) throw new Error(`deno.json: stage dependency cycle through "${name}"`);
    const dependencies = graph.get(name);
    if (!dependencies) {
      throw new Error(`unknown stage "${name}"; stages are ${[...graph.keys()].join(", ")}`);
    }
    visiting.add(name);
    dependencies.forEach(visit);
    visiting.delete(name);
    order.push(name);
  };
  targets.forEach(visit);
  return order;
}

/** Returns the hash of a stage's code (its module graph under stages/). */
export async function stageCode(stage: string): Promise<string> {
  return (await sourceHash(new URL(`../stages/${stage}.ts`, import.meta.url))).digest;
}

/** Returns whether a stage should rebuild its cached artifacts. */
export function forced(context: RunContext, stage: string): boolean {
  return context.force.has(stage) || context.force.has("all");
}

/** Runs `targets` and every stage they depend on, in order. */
export async function runStages(
  targets: string[],
  options: { config: StudyConfig; force: Set<string> },
): Promise<RunContext> {
  const graph = await readStageGraph();
  for (const name of options.force) {
    if (name !== "all" && !graph.has(name)) {
      throw new Error(`--force ${name}: unknown stage; stages are ${[...graph.keys()].join(", ")}, or all`);
    }
  }
  const context: RunContext = {
    config: options.config,
    store: new ArtifactStore(options.config.artifacts),
    force: options.force,
    outputs: new Map(),
  };
  const log = stageLogger("pipeline");
  const order = stageOrder(graph, targets);
  log.info(
    `profile ${options.config.profile}, stages ${order.join(" -> ")}, artifacts in ${options.config.artifacts}/`,
  );

  const timings: string[] = [];
  for (const stage of order) {
    const started = performance.now();
    const module = await import(`../stages/${stage}.ts`) as { run: StageFunction };
    context.outputs.set(stage, await module.run(context));
    timings.push(`${stage} ${formatDuration((performance.now() - started) / 1000)}`);
  }
  log.info(`done: ${timings.join(", ")}`);
  return context;
}
