import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseCommandLine, parseYamlText } from "../pipeline/config.ts";

Deno.test("config paper profile has the reference settings", async () => {
  const config = await loadConfig(["--profile", "paper"]);
  assert.equal(config.train.iterations, 20000);
  assert.equal(config.train.batch_size, 64);
  assert.equal(config.train.lr, 0.03);
  assert.equal(config.train.lr_cycles, 7 / 16);
  assert.equal(config.model.bn_momentum, 0.001);
  assert.equal(config.fixmatch.threshold, 0.95);
  assert.equal(config.fixmatch.uratio, 7);
  assert.equal(config.mixmatch.temperature, 0.5);
  assert.equal(config.mixmatch.alpha, 0.5);
  assert.equal(config.mixmatch.lambda_u, 100);
  assert.deepEqual(config.study.labels, [40, 250, 4000]);
});

Deno.test("config flags override keys", async () => {
  const config = await loadConfig([
    "--profile",
    "smoke",
    "--algorithms",
    "mixmatch",
    "--labels",
    "40,250",
    "--seeds",
    "1,2",
    "--backend",
    "cpu",
    "--iterations",
    "7",
    "--set",
    "fixmatch.threshold=0.9",
    "--dataset",
    "some/folder",
  ]);
  assert.deepEqual(config.study.algorithms, ["mixmatch"]);
  assert.deepEqual(config.study.labels, [40, 250]);
  assert.deepEqual(config.study.seeds, [1, 2]);
  assert.equal(config.backend, "cpu");
  assert.equal(config.train.iterations, 7);
  assert.equal(config.fixmatch.threshold, 0.9);
  assert.equal(config.dataset.source, "image-folder");
  assert.equal(config.dataset.path, "some/folder");
});

Deno.test("config unknown key names the key", async () => {
  await assert.rejects(loadConfig(["--set", "train.learning_rate=0.1"]), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /unknown key train\.learning_rate/);
    return true;
  });
});

Deno.test("config wrong type names key and value", async () => {
  await assert.rejects(loadConfig(["--set", "train.iterations=many"]), (error: Error) => {
    assert.match(error.message, /train\.iterations = "many"/);
    assert.match(error.message, /expected number/);
    return true;
  });
});

Deno.test("config out-of-range value names the range", async () => {
  await assert.rejects(
    loadConfig(["--set", "fixmatch.threshold=1.5"]),
    /fixmatch\.threshold = 1\.5: Too big: expected number to be <=1/,
  );
  await assert.rejects(loadConfig(["--labels", "0"]), /study\.labels\.0 = 0: Too small/);
});

Deno.test("config unknown backend lists the valid names", async () => {
  await assert.rejects(loadConfig(["--backend", "cuda"]), /backend = "cuda".*"auto"\|"native"\|"wasm"\|"cpu"/);
});

Deno.test("config unknown profile lists profiles", async () => {
  await assert.rejects(
    loadConfig(["--profile", "fast"]),
    /unknown profile "fast"; available: paper, quick, reference, smoke/,
  );
});

Deno.test("config unknown flag is rejected", () => {
  assert.throws(() => parseCommandLine(["--iters", "5"]), /Unknown option '--iters'/);
});

Deno.test("config http download url is rejected", async () => {
  await assert.rejects(loadConfig(["--set", "dataset.url=http://example.invalid/c.tar.gz"]), /must use https/);
});

Deno.test("config YAML alias bomb fails fast", () => {
  const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 0; i < 9; i++) {
    const prev = String.fromCharCode(97 + i);
    const next = String.fromCharCode(98 + i);
    lines.push(`${next}: &${next} [${Array(10).fill(`*${prev}`).join(", ")}]`);
  }
  const started = performance.now();
  assert.throws(() => parseYamlText(lines.join("\n"), "bomb.yaml"), /bomb\.yaml: invalid YAML/);
  assert.ok(performance.now() - started < 5000);
});

Deno.test("config user file is merged and validated", async () => {
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  await Deno.writeTextFile(file, "train:\n  iterations: 11\nmixmatch:\n  alpha: 0.75\n");
  const config = await loadConfig(["--profile", "smoke", "--config", file]);
  assert.equal(config.train.iterations, 11);
  assert.equal(config.mixmatch.alpha, 0.75);
  await Deno.writeTextFile(file, "train:\n  iterations: 11\n  typo_key: 1\n");
  await assert.rejects(loadConfig(["--config", file]), new RegExp(`unknown key train\\.typo_key`));
});
