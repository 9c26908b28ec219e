import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { loadConfig, REPO_ROOT, trainConfigFor } from "../pipeline/config.ts";
import { hashJson } from "../pipeline/hash.ts";
import { trainParams } from "../stages/train.ts";

function trainKey(config: Awaited<ReturnType<typeof loadConfig>>, algorithm: "fixmatch" | "mixmatch"): string {
  return hashJson(trainParams(config, algorithm, 10, 0, "wasm"));
}

Deno.test("reference profile has TorchSSL values", async () => {
  const config = await loadConfig(["--profile", "reference"]);
  assert.deepEqual(config.study.algorithms, ["fixmatch", "mixmatch"]);
  assert.deepEqual(config.study.labels, [4000]);
  assert.deepEqual(config.study.seeds, [0]);
  assert.equal(trainConfigFor(config, "fixmatch").iterations, 100);
  assert.equal(trainConfigFor(config, "mixmatch").iterations, 300);
  assert.equal(config.train.batch_size, 64);
  assert.equal(config.train.lr, 0.03);
  assert.equal(config.train.lr_cycles, 7 / 16);
  assert.equal(config.train.momentum, 0.9);
  assert.equal(config.train.nesterov, true);
  assert.equal(config.train.weight_decay, 5e-4);
  assert.equal(config.train.ema_decay, 0.999);
  assert.equal(config.train.ema_warmup, false);
  assert.equal(config.train.checkpoint_every, 50);
  assert.equal(config.train.eval_every, 0);
  assert.equal(config.train.max_forward_images, "backend");
  assert.equal(config.model.bn_momentum, 0.001);
  assert.equal(config.model.bn_eps, 0.001);
  assert.equal(config.model.leaky_slope, 0.1);
  assert.equal(config.fixmatch.threshold, 0.95);
  assert.equal(config.fixmatch.uratio, 7);
  assert.equal(config.fixmatch.lambda_u, 1);
  assert.deepEqual(config.fixmatch.randaugment, { num_ops: 3, apply_probability: 1 });
  assert.equal(config.mixmatch.uratio, 1);
  assert.equal(config.mixmatch.num_views, 2);
  assert.equal(config.mixmatch.temperature, 0.5);
  assert.equal(config.mixmatch.alpha, 0.5);
  assert.equal(config.mixmatch.mixup, "batch");
  assert.equal(config.mixmatch.lambda_u, 100);
  assert.equal(config.mixmatch.ramp_up, 0.4);
  assert.equal(config.evaluate.test_images, "all");
});

Deno.test("reference profile leaves the backend to flags", async () => {
  const profile = parseYaml(await Deno.readTextFile(`${REPO_ROOT}configs/profiles/reference.yaml`));
  assert.equal("backend" in profile, false);
  const config = await loadConfig(["--profile", "reference", "--backend", "cpu"]);
  assert.equal(config.backend, "cpu");
});

Deno.test("algorithm iterations default to train.iterations", async () => {
  const config = await loadConfig(["--profile", "smoke"]);
  assert.equal(config.fixmatch.iterations, undefined);
  assert.equal(trainConfigFor(config, "fixmatch").iterations, config.train.iterations);
  assert.equal(trainConfigFor(config, "mixmatch").iterations, config.train.iterations);
  const cleared = await loadConfig(["--profile", "reference", "--set", "fixmatch.iterations=null"]);
  assert.equal(trainConfigFor(cleared, "fixmatch").iterations, 300);
  assert.equal(trainConfigFor(cleared, "mixmatch").iterations, 300);
});

Deno.test("iterations flag sets every algorithm", async () => {
  const config = await loadConfig(["--profile", "reference", "--iterations", "5"]);
  assert.equal(config.train.iterations, 5);
  assert.equal(trainConfigFor(config, "fixmatch").iterations, 5);
  assert.equal(trainConfigFor(config, "mixmatch").iterations, 5);
});

Deno.test("FixMatch iterations keep MixMatch keys", async () => {
  const shared = await loadConfig(["--profile", "smoke"]);
  const own = await loadConfig(["--profile", "smoke", "--set", "fixmatch.iterations=9"]);
  assert.equal(trainKey(own, "mixmatch"), trainKey(shared, "mixmatch"));
  assert.notEqual(trainKey(own, "fixmatch"), trainKey(shared, "fixmatch"));
  const params = trainParams(own, "fixmatch", 10, 0, "wasm");
  assert.equal((params.train as { iterations: number }).iterations, 9);
  assert.equal("iterations" in (params.fixmatch as object), false);
});

Deno.test("algorithm iterations equal to the shared count keep the key", async () => {
  const shared = await loadConfig(["--profile", "smoke"]);
  const same = await loadConfig(["--profile", "smoke", "--set", `mixmatch.iterations=${shared.train.iterations}`]);
  assert.equal(trainKey(same, "mixmatch"), trainKey(shared, "mixmatch"));
  assert.equal(trainKey(same, "fixmatch"), trainKey(shared, "fixmatch"));
});

Deno.test("invalid algorithm iterations name key and value", async () => {
  await assert.rejects(loadConfig(["--set", "mixmatch.iterations=0"]), /mixmatch\.iterations = 0: Too small/);
  await assert.rejects(loadConfig(["--set", "fixmatch.iterations=2.5"]), /fixmatch\.iterations = 2\.5: .*int/);
  await assert.rejects(loadConfig(["--set", "fixmatch.iterations=many"]), /fixmatch\.iterations = "many"/);
});
