/**
 * End-to-end runs of the DAG through `deno task`, on generated images.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

interface TaskRun {
  code: number;
  output: string;
  seconds: number;
}

/**
 * Runs `deno task <stage>` with the flags in SEMISUP_ARGS, which is how flags
 * reach the stages deno task runs as dependencies.
 */
async function task(args: string[]): Promise<TaskRun> {
  const started = performance.now();
  const [stage, ...flags] = args;
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["task", stage],
    cwd: ROOT,
    env: { NO_COLOR: "1", SEMISUP_ARGS: flags.join(" ") },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
    seconds: (performance.now() - started) / 1000,
  };
}

function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(new RegExp(pattern, "g"))].length;
}

Deno.test("smoke DAG runs, caches and reruns only changed cells", async () => {
  const artifacts = await Deno.makeTempDir({ prefix: "semisup-smoke-" });
  const base = ["all", "--profile", "smoke", "--artifacts", artifacts];

  const first = await task(base);
  assert.equal(first.code, 0, first.output);
  const table = await Deno.readTextFile(`${artifacts}/results.md`);
  assert.match(table, /\| semisup FixMatch \(profile smoke/);
  assert.match(table, /\| semisup MixMatch \(profile smoke/);
  assert.match(table, /\| TorchSSL README, FixMatch, 2\^20 iterations \| reference \|/);
  const metricsDirs = [...Deno.readDirSync(`${artifacts}/evaluate`)].filter((e) =>
    e.isDirectory && !e.name.startsWith(".")
  );
  assert.equal(metricsDirs.length, 4);
  const metrics = JSON.parse(await Deno.readTextFile(`${artifacts}/evaluate/${metricsDirs[0].name}/metrics.json`));
  assert.equal(metrics.test_images, 100);
  assert.equal(metrics.confusion_matrix.length, 10);
  assert.notEqual(metrics.evaluated_weights_sha256, metrics.raw_weights_sha256);

  const second = await task(base);
  assert.equal(second.code, 0, second.output);
  assert.equal(count(second.output, /building /), 0, second.output);
  // download + 2 splits + 4 train + 4 evaluate + tabulate
  assert.equal(count(second.output, /cache hit/), 12, second.output);
  assert.equal(await Deno.readTextFile(`${artifacts}/results.md`), table);

  const third = await task([...base, "--set", "fixmatch.threshold=0.9"]);
  assert.equal(third.code, 0, third.output);
  assert.equal(count(third.output, /\[train [0-9a-f]+\] building/), 2, third.output);
  assert.equal(count(third.output, /\[train [0-9a-f]+\] cache hit/), 2, third.output);
  assert.equal(count(third.output, /\[train [0-9a-f]+\] building \{"algorithm":"mixmatch"/), 0, third.output);
});

Deno.test("smoke training resumes after a kill", async () => {
  const artifacts = await Deno.makeTempDir({ prefix: "semisup-resume-" });
  const args = [
    "train",
    "--profile",
    "smoke",
    "--artifacts",
    artifacts,
    "--algorithms",
    "fixmatch",
    "--labels",
    "10",
    "--iterations",
    "6",
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "pipeline/cli.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();

  // Wait for the first checkpoint, then kill the process without warning.
  const deadline = Date.now() + 120_000;
  let pointer: string | null = null;
  while (!pointer && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    try {
      for (const work of Deno.readDirSync(`${artifacts}/train/.work`)) {
        const path = `${artifacts}/train/.work/${work.name}/checkpoints/latest.json`;
        try {
          Deno.statSync(path);
          pointer = path;
        } catch { /* not yet */ }
      }
    } catch { /* train stage not started yet */ }
  }
  child.kill("SIGKILL");
  await child.status;
  assert.ok(pointer, "no checkpoint appeared within 120 s");
  const killedAt = JSON.parse(await Deno.readTextFile(pointer)).iteration;
  assert.ok(killedAt >= 2, `killed at iteration ${killedAt}`);
  assert.ok(killedAt < 6, `killed at iteration ${killedAt}`);

  const resumed = await task(args);
  assert.equal(resumed.code, 0, resumed.output);
  assert.match(resumed.output, new RegExp(`resuming from checkpoint .* at iteration ${killedAt}/6`));

  // An uninterrupted run in a fresh store ends with bit-identical weights.
  const fresh = await Deno.makeTempDir({ prefix: "semisup-straight-" });
  const straight = await task(args.map((arg) => (arg === artifacts ? fresh : arg)));
  assert.equal(straight.code, 0, straight.output);
  const trainDir = (root: string) =>
    [...Deno.readDirSync(`${root}/train`)].find((e) => e.isDirectory && !e.name.startsWith("."))!.name;
  const a = await Deno.readFile(`${artifacts}/train/${trainDir(artifacts)}/model.bin`);
  const b = await Deno.readFile(`${fresh}/train/${trainDir(fresh)}/model.bin`);
  assert.equal(trainDir(artifacts), trainDir(fresh));
  assert.deepEqual(a, b);
});
