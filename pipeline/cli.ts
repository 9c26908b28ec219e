/**
 * Command-line entry of every deno task: `deno run -A pipeline/cli.ts STAGE
 * [flags]`. STAGE is a stage name (its upstream stages run first, as cache
 * hits when unchanged), `all` for the whole study, or `verify` to check the
 * artifact store. Flags may also come from the SEMISUP_ARGS environment
 * variable, which reaches stages that deno task runs as dependencies.
 *
 * @example
 * ```sh
 * deno run -A pipeline/cli.ts all --profile smoke
 * ```
 * @module
 */

import { ConfigError, parseCommandLine, resolveConfig } from "./config.ts";
import { readStageGraph, runStages } from "./runner.ts";
import { ArtifactStore } from "./cache.ts";

/** Splits SEMISUP_ARGS on white space (no quoting). */
function environmentArgs(): string[] {
  const text = Deno.env.get("SEMISUP_ARGS") ?? "";
  return text.split(/\s+/).filter((part) => part.length > 0);
}

async function main(argv: string[]): Promise<number> {
  const [target, ...rest] = argv;
  if (!target) {
    console.error("usage: deno run -A pipeline/cli.ts <stage|all|verify> [flags]; see --help");
    return 2;
  }
  const commandLine = parseCommandLine([...environmentArgs(), ...rest]);
  const config = await resolveConfig(commandLine);

  if (target === "verify") {
    const { checked, problems } = await new ArtifactStore(config.artifacts).verify();
    for (const problem of problems) console.error(`corrupt: ${problem.dir}: ${problem.message}`);
    console.log(`verified ${checked} artifacts in ${config.artifacts}/: ${problems.length} problem(s)`);
    return problems.length === 0 ? 0 : 1;
  }

  const targets = target === "all" ? [...(await readStageGraph()).keys()] : [target];
  await runStages(targets, { config, force: new Set(commandLine.force) });
  return 0;
}

if (import.meta.main) {
  // Finished stages are cached and training resumes from its last checkpoint,
  // so an interrupted run only needs the same command again.
  Deno.addSignalListener("SIGINT", () => {
    console.error("\ninterrupted; rerun the same command to resume (finished stages are cached)");
    Deno.exit(130);
  });
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`error: ${error.message}`);
      Deno.exit(2);
    }
    // A stage failure is reported as one message; SEMISUP_DEBUG=1 adds the stack.
    const message = error instanceof Error ? error.message : String(error);
    console.error(`error: ${message}`);
    if (Deno.env.get("SEMISUP_DEBUG") === "1" && error instanceof Error) console.error(error.stack);
    Deno.exit(1);
  }
}
