/**
 * Loading the study configuration: YAML files merged in order (base,
 * algorithms, profile, an optional user file), then command-line flags, then
 * validation against the schema.
 *
 * @example
 * ```ts
 * const config = await loadConfig(["--profile", "smoke"]);
 * console.log(config.train.iterations);
 * ```
 * @module
 */

import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { type AlgorithmName, ALGORITHMS, StudyConfig, type TrainConfig } from "./config_schema.ts";

export { StudyConfig, type TrainConfig } from "./config_schema.ts";

/** The repository root, where configs/ lives. */
export const REPO_ROOT: string = new URL("../", import.meta.url).pathname;

/** Options parsed from the command line, before merging. */
export interface CommandLine {
  profile: string;
  configFile?: string;
  overrides: Record<string, unknown>;
  force: string[];
}

/** A configuration error that names the key, the value and what is allowed. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const HELP = `semisup: reproduce FixMatch and MixMatch on CIFAR-10.

Usage: deno task <stage|all> [flags]

Flags (each overrides the matching config key):
  --profile NAME        smoke | quick | reference | paper (configs/profiles/NAME.yaml); default quick
  --config FILE         extra YAML merged after the profile
  --algorithms LIST     comma-separated: fixmatch,mixmatch          (study.algorithms)
  --labels LIST         comma-separated label counts, e.g. 40,250   (study.labels)
  --seeds LIST          comma-separated seeds, e.g. 0,1,2           (study.seeds)
  --backend NAME        auto | native | wasm | cpu | tensorflow | tensorflow-gpu | webgpu
  --dataset PATH        ImageFolder folder or .tar.gz (dataset.source = image-folder)
  --archive PATH        local official cifar-10-binary.tar.gz (dataset.source = cifar10-binary)
  --iterations N        training iterations of every algorithm (train.iterations,
                        fixmatch.iterations and mixmatch.iterations)
  --artifacts DIR       artifact store folder; default artifacts/
  --set KEY=VALUE       any other key, e.g. --set fixmatch.threshold=0.9 (VALUE is YAML)
  --force STAGE         rebuild this stage's artifacts even if cached (repeatable; "all" for every stage)
  -h, --help            print this help
`;

/** Returns the help text of the command line. */
export function helpText(): string {
  return HELP;
}

function list(flag: string, value: string, item: (text: string) => unknown): unknown[] {
  const items = value.split(",").map((part) => part.trim()).filter((part) => part.length > 0);
  if (items.length === 0) throw new ConfigError(`--${flag} needs a comma-separated list, got "${value}"`);
  return items.map(item);
}

function integer(flag: string) {
  return (text: string): number => {
    if (!/^-?\d+$/.test(text)) {
      throw new ConfigError(`--${flag}: "${text}" is not an integer`);
    }
    return Number(text);
  };
}

/** Parses command-line flags into a profile name and config overrides. */
export function parseCommandLine(args: string[]): CommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      strict: true,
      options: {
        profile: { type: "string" },
        config: { type: "string" },
        algorithms: { type: "string" },
        labels: { type: "string" },
        seeds: { type: "string" },
        backend: { type: "string" },
        dataset: { type: "string" },
        archive: { type: "string" },
        iterations: { type: "string" },
        artifacts: { type: "string" },
        set: { type: "string", multiple: true },
        force: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n\n${HELP}`);
  }
  const values = parsed.values;
  if (values.help) {
    console.log(HELP);
    Deno.exit(0);
  }

  const overrides: Record<string, unknown> = {};
  if (values.algorithms !== undefined) {
    overrides["study.algorithms"] = list("algorithms", values.algorithms, (name) => {
      if (!(ALGORITHMS as readonly string[]).includes(name)) {
        throw new ConfigError(`--algorithms: unknown algorithm "${name}"; use ${ALGORITHMS.join(" or ")}`);
      }
      return name;
    });
  }
  if (values.labels !== undefined) overrides["study.labels"] = list("labels", values.labels, integer("labels"));
  if (values.seeds !== undefined) overrides["study.seeds"] = list("seeds", values.seeds, integer("seeds"));
  if (values.backend !== undefined) overrides["backend"] = values.backend;
  if (values.iterations !== undefined) {
    // The flag sets the count of every algorithm, so a profile's per-algorithm count does not hide it.
    const iterations = integer("iterations")(values.iterations);
    overrides["train.iterations"] = iterations;
    for (const algorithm of ALGORITHMS) overrides[`${algorithm}.iterations`] = iterations;
  }
  if (values.artifacts !== undefined) overrides["artifacts"] = values.artifacts;
  if (values.dataset !== undefined && values.archive !== undefined) {
    throw new ConfigError("--dataset and --archive name two different sources; give one of them");
  }
  if (values.dataset !== undefined) {
    overrides["dataset.source"] = "image-folder";
    overrides["dataset.path"] = values.dataset;
  }
  if (values.archive !== undefined) {
    overrides["dataset.source"] = "cifar10-binary";
    overrides["dataset.path"] = values.archive;
  }
  for (const assignment of values.set ?? []) {
    const equals = assignment.indexOf("=");
    if (equals <= 0) throw new ConfigError(`--set "${assignment}": expected KEY=VALUE, e.g. --set train.lr=0.01`);
    overrides[assignment.slice(0, equals)] = parseYamlText(assignment.slice(equals + 1), `--set ${assignment}`);
  }

  return {
    profile: values.profile ?? "quick",
    configFile: values.config,
    overrides,
    force: values.force ?? [],
  };
}

/** Parses YAML with aliases capped, so an alias bomb fails fast. */
export function parseYamlText(text: string, source: string): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 50, uniqueKeys: true, prettyErrors: true });
  } catch (error) {
    throw new ConfigError(`${source}: invalid YAML: ${(error as Error).message}`);
  }
}

async function readYamlFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new ConfigError(`config file not found: ${path}`);
    throw error;
  }
  const value = parseYamlText(text, path) ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`${path}: the top level must be a mapping of keys, got ${JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Deep-merges `over` into `base`; arrays and scalars replace. */
export function mergeConfig(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    out[key] = isPlainObject(value) && isPlainObject(out[key])
      ? mergeConfig(out[key] as Record<string, unknown>, value)
      : value;
  }
  return out;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!isPlainObject(node[part])) {
      throw new ConfigError(`unknown config key "${dotted}": "${part}" is not a section`);
    }
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

function valueAt(target: unknown, path: PropertyKey[]): unknown {
  let node = target;
  for (const part of path) {
    if (!isPlainObject(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

/** Formats schema issues as one line each: key, value and what is allowed. */
export function formatIssues(error: z.ZodError, raw: unknown, sources: string): string {
  const lines = error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      const section = issue.path.join(".");
      const keys = issue.keys.map((key) => (section ? `${section}.${key}` : key));
      return `  unknown key ${keys.join(", ")}: remove it or check its spelling`;
    }
    const key = issue.path.join(".") || "(top level)";
    const value = JSON.stringify(valueAt(raw, issue.path));
    return `  ${key} = ${value}: ${issue.message}`;
  });
  return `invalid configuration (${sources}):\n${lines.join("\n")}`;
}

/** Resolves a command line into the validated study configuration. */
export async function resolveConfig(commandLine: CommandLine): Promise<StudyConfig> {
  const configs = `${REPO_ROOT}configs`;
  const profilePath = `${configs}/profiles/${commandLine.profile}.yaml`;
  try {
    await Deno.stat(profilePath);
  } catch {
    const names: string[] = [];
    for await (const entry of Deno.readDir(`${configs}/profiles`)) names.push(entry.name.replace(/\.yaml$/, ""));
    throw new ConfigError(`unknown profile "${commandLine.profile}"; available: ${names.sort().join(", ")}`);
  }

  const sources = [
    "configs/base.yaml",
    "configs/fixmatch.yaml",
    "configs/mixmatch.yaml",
    `configs/profiles/${commandLine.profile}.yaml`,
  ];
  let merged: Record<string, unknown> = { profile: commandLine.profile, artifacts: "artifacts" };
  for (const file of sources) merged = mergeConfig(merged, await readYamlFile(`${REPO_ROOT}${file}`));
  if (commandLine.configFile) {
    merged = mergeConfig(merged, await readYamlFile(commandLine.configFile));
    sources.push(commandLine.configFile);
  }
  for (const [key, value] of Object.entries(commandLine.overrides)) setPath(merged, key, value);
  if (Object.keys(commandLine.overrides).length > 0) sources.push("command line");

  const result = StudyConfig.safeParse(merged);
  if (!result.success) throw new ConfigError(formatIssues(result.error, merged, sources.join(" + ")));
  return result.data;
}

/** Parses flags and resolves the configuration in one call. */
export async function loadConfig(args: string[]): Promise<StudyConfig> {
  return await resolveConfig(parseCommandLine(args));
}

/**
 * Returns the train section that cells of `algorithm` run with:
 * `train.iterations` replaced by `<algorithm>.iterations` when that key is set.
 * The cosine learning rate, the MixMatch λu ramp and the last checkpoint
 * follow this count.
 *
 * @example
 * ```ts
 * const config = await loadConfig(["--profile", "reference"]);
 * console.log(trainConfigFor(config, "fixmatch").iterations); // 100
 * ```
 */
export function trainConfigFor(config: StudyConfig, algorithm: AlgorithmName): TrainConfig {
  return { ...config.train, iterations: config[algorithm].iterations ?? config.train.iterations };
}
