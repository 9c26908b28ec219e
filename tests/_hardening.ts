/**
 * Helpers for the hardening tests: run `pipeline/cli.ts` as a real process
 * on a small configuration (the smoke profile with a WideResNet-10-1), kill
 * it with SIGKILL when the artifact store reaches a given state, and read
 * the store back.
 * @module
 */

/** The repository root. */
export const ROOT: string = new URL("../", import.meta.url).pathname;

/**
 * Flags for a seconds-long run: generated images, a WideResNet-10-1, one
 * train cell at a time and inline augmentation, so each run trains on one thread.
 */
export const TINY: string[] = [
  "--profile",
  "smoke",
  "--set",
  "model.depth=10",
  "--set",
  "model.widen_factor=1",
  "--set",
  "parallel_cells=1",
  "--set",
  "augment_workers=0",
];

/** The outcome of one CLI process. */
export interface CliRun {
  code: number;
  signal: Deno.Signal | null;
  output: string;
}

/** Seconds after which a CLI process counts as hung and is killed, so a test fails instead of waiting. */
export const HUNG_SECONDS = 120;

function cliCommand(args: string[], timeoutSeconds = HUNG_SECONDS): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "pipeline/cli.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutSeconds * 1000),
  });
}

function decode(result: Deno.CommandOutput): CliRun {
  const decoder = new TextDecoder();
  return {
    code: result.code,
    signal: result.signal,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

/**
 * Runs `deno run -A pipeline/cli.ts ARGS` to completion, or kills it after
 * `timeoutSeconds` (then `signal` is SIGTERM).
 */
export async function cli(args: string[], timeoutSeconds = HUNG_SECONDS): Promise<CliRun> {
  return decode(await cliCommand(args, timeoutSeconds).output());
}

/** A CLI run that was killed with SIGKILL once `trigger` returned true. */
export interface KilledRun extends CliRun {
  /** False when the process exited before the trigger fired. */
  killed: boolean;
}

/**
 * Runs the CLI and sends SIGKILL as soon as `trigger()` is true. The
 * trigger is checked on every file system event under `watchRoot` and every
 * 20 ms, so a state that lasts a few milliseconds is usually caught.
 */
export async function cliKilledWhen(
  args: string[],
  watchRoot: string,
  trigger: () => boolean,
): Promise<KilledRun> {
  const child = cliCommand(args).spawn();
  const output = child.output().then(decode);
  let killed = false;
  const check = () => {
    if (killed) return;
    let fire = false;
    try {
      fire = trigger();
    } catch {
      // The state is still being created; check again on the next event.
    }
    if (fire) {
      killed = true;
      child.kill("SIGKILL");
    }
  };
  const watcher = Deno.watchFs(watchRoot, { recursive: true });
  const watching = (async () => {
    for await (const _event of watcher) check();
  })();
  const timer = setInterval(check, 20);
  try {
    const run = await output;
    return { ...run, killed };
  } finally {
    clearInterval(timer);
    watcher.close();
    await watching;
  }
}

/** Returns the names in a folder, or [] when it does not exist. */
export function listNames(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** Returns the published artifact folders of a stage (names without a leading dot). */
export function artifactKeys(root: string, stage: string): string[] {
  return listNames(`${root}/${stage}`).filter((name) =>
    !name.startsWith(".") && Deno.statSync(`${root}/${stage}/${name}`).isDirectory
  );
}

/** Returns whether a path exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Returns the lines of `text` that match `pattern`, for assertion messages. */
export function grep(text: string, pattern: RegExp): string {
  return text.split("\n").filter((line) => pattern.test(line)).join("\n");
}

/** Runs `verify` on a store and returns its exit code and output. */
export async function verifyStore(root: string): Promise<CliRun> {
  return await cli(["verify", "--profile", "smoke", "--artifacts", root]);
}

/** Escapes a string for use inside a regular expression. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Returns CLI arguments that train one tiny FixMatch cell, checkpointing every iteration. */
export function trainArgs(root: string, iterations: number, ...extra: string[]): string[] {
  return [
    "train",
    ...TINY,
    "--artifacts",
    root,
    "--algorithms",
    "fixmatch",
    "--labels",
    "10",
    "--iterations",
    String(iterations),
    "--set",
    "train.checkpoint_every=1",
    ...extra,
  ];
}
