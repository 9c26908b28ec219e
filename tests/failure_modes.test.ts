/**
 * Faults seen in other reproductions of FixMatch and MixMatch, each a test
 * that fails if semisup had the fault.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../learning/backend/backends.ts";
import { trainModel, type TrainModelOptions } from "../learning/training/train_model.ts";
import { syntheticDataset } from "../learning/data/synthetic.ts";
import { makeLabeledSplit } from "../learning/data/split.ts";
import { cosineLearningRate } from "../learning/optim/schedules.ts";
import { loadConfig } from "../pipeline/config.ts";
import { stageKey } from "../pipeline/cache.ts";
import { trainParams } from "../stages/train.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dataset = syntheticDataset({ trainPerClass: 6, testPerClass: 2 });
const labeledIndices = makeLabeledSplit(dataset.train.labels, 10, 20, 0).labeledIndices;

async function options(
  algorithm: "fixmatch" | "mixmatch",
  iterations: number,
  checkpointDir: string,
): Promise<TrainModelOptions> {
  const config = await loadConfig([
    "--profile",
    "smoke",
    "--iterations",
    String(iterations),
    "--set",
    "train.batch_size=2",
    "--set",
    "train.checkpoint_every=2",
  ]);
  return {
    algorithm,
    train: dataset.train,
    labeledIndices,
    seed: 3,
    model: { depth: 10, widenFactor: 1, bnMomentum: 0.1 },
    optim: config.train,
    fixmatch: { ...config.fixmatch, threshold: 0.2 },
    mixmatch: config.mixmatch,
    maxForwardImages: 96,
    augmentWorkers: 0,
    checkpointDir,
    log: () => {},
  };
}

function weights(result: Awaited<ReturnType<typeof trainModel>>): Float32Array[] {
  const state = [...result.model.stateDict().values()].map((t) => t.data);
  result.model.dispose();
  result.ema.dispose();
  return state;
}

/** Trains N steps straight, then resumes a copy of the step-k checkpoint to N, and compares. */
async function checkResumeIsExact(backend: "wasm" | "cpu", algorithm: "fixmatch" | "mixmatch") {
  await initBackend(backend);
  const straightDir = await Deno.makeTempDir();
  const straight = await trainModel(await options(algorithm, 4, straightDir));
  const straightRows = straight.rows;
  const straightWeights = weights(straight);

  // Rebuild a checkpoint folder whose latest checkpoint is step 2, as a kill after step 2 leaves it.
  const resumeDir = await Deno.makeTempDir();
  await Deno.rename(`${straightDir}/iter-0000002`, `${resumeDir}/iter-0000002`);
  await Deno.writeTextFile(`${resumeDir}/latest.json`, JSON.stringify({ folder: "iter-0000002", iteration: 2 }));
  const resumed = await trainModel(await options(algorithm, 4, resumeDir));
  assert.equal(resumed.resumedFrom, 2);
  const resumedRows = resumed.rows;
  const resumedWeights = weights(resumed);

  assert.equal(resumedWeights.length, straightWeights.length);
  for (let i = 0; i < straightWeights.length; i++) assert.deepEqual(resumedWeights[i], straightWeights[i]);
  assert.deepEqual(resumedRows.map((r) => r.total_loss), straightRows.map((r) => r.total_loss));
  for (const [k, row] of resumedRows.entries()) {
    assert.equal(row.lr, cosineLearningRate(k, 4, 0.03, 7 / 16), `lr at step ${k}`);
    assert.equal(row.lr, straightRows[k].lr);
  }
}

Deno.test("resume is bit-identical on wasm (fixmatch)", async () => {
  await checkResumeIsExact("wasm", "fixmatch");
});

Deno.test("resume is bit-identical on wasm (mixmatch)", async () => {
  await checkResumeIsExact("wasm", "mixmatch");
});

Deno.test("resume is bit-identical on cpu", async () => {
  await checkResumeIsExact("cpu", "fixmatch");
});

Deno.test("same seed gives identical losses for 50 steps", async () => {
  await initBackend("wasm");
  const run = async () => {
    const result = await trainModel(await options("fixmatch", 50, await Deno.makeTempDir()));
    result.model.dispose();
    result.ema.dispose();
    return result.rows;
  };
  const first = await run();
  const second = await run();
  assert.equal(first.length, 50);
  for (const key of ["sup_loss", "unsup_loss", "total_loss", "mask_rate"]) {
    assert.deepEqual(second.map((r) => r[key]), first.map((r) => r[key]), key);
  }
  // The losses move, so identical logs are not identical constants.
  assert.ok(new Set(first.map((r) => r.sup_loss)).size > 40);
});

Deno.test("training log records data wait per iteration", async () => {
  await initBackend("wasm");
  const result = await trainModel({ ...(await options("fixmatch", 3, await Deno.makeTempDir())), augmentWorkers: 1 });
  result.model.dispose();
  result.ema.dispose();
  assert.equal(result.rows.length, 3);
  for (const row of result.rows) {
    assert.ok(Number.isFinite(row.data_wait_s), `data_wait_s ${row.data_wait_s}`);
    assert.ok(row.data_wait_s >= 0, `data_wait_s ${row.data_wait_s}`);
    assert.ok(row.step_s > 0);
  }
});

Deno.test("training leaks no tensors across steps", async () => {
  await initBackend("wasm");
  const before = tf.memory().numTensors;
  const result = await trainModel(await options("mixmatch", 3, await Deno.makeTempDir()));
  result.model.dispose();
  result.ema.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("labeled split is identical in another process", async () => {
  const inProcess = Array.from(makeLabeledSplit(dataset.train.labels, 10, 40, 7).labeledIndices);
  const script = `
    import { syntheticDataset } from "./learning/data/synthetic.ts";
    import { makeLabeledSplit } from "./learning/data/split.ts";
    const { train } = syntheticDataset({ trainPerClass: 6, testPerClass: 2 });
    console.log(JSON.stringify(Array.from(makeLabeledSplit(train.labels, 10, 40, 7).labeledIndices)));
  `;
  const output = await new Deno.Command(Deno.execPath(), { args: ["eval", script], cwd: ROOT, stdout: "piped" })
    .output();
  assert.ok(output.success);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), inProcess);
});

Deno.test("batch size and uratio are part of the train key", async () => {
  const config = await loadConfig(["--profile", "paper"]);
  const key = (c: typeof config, algorithm: "fixmatch" | "mixmatch") =>
    stageKey({ stage: "train", code: "c", params: trainParams(c, algorithm, 40, 0, "wasm"), inputs: {} });
  const base = key(config, "fixmatch");
  assert.notEqual(key({ ...config, train: { ...config.train, batch_size: 32 } }, "fixmatch"), base);
  assert.notEqual(key({ ...config, fixmatch: { ...config.fixmatch, uratio: 3 } }, "fixmatch"), base);
  assert.notEqual(key({ ...config, mixmatch: { ...config.mixmatch, uratio: 2 } }, "mixmatch"), key(config, "mixmatch"));
  // A MixMatch hyperparameter does not touch FixMatch cells.
  assert.equal(key({ ...config, mixmatch: { ...config.mixmatch, alpha: 0.75 } }, "fixmatch"), base);
  assert.notEqual(
    stageKey({ stage: "train", code: "c", params: trainParams(config, "fixmatch", 40, 0, "cpu"), inputs: {} }),
    base,
  );
});
