/**
 * Diverging training: a non-finite loss stops the run with the iteration,
 * the loss terms and the last checkpoint, which is kept and loads.
 */
import assert from "node:assert/strict";
import { loadLatestCheckpoint } from "../learning/training/checkpoint.ts";
import { DivergedError } from "../learning/training/train_model.ts";
import { artifactKeys, cli, exists, listNames, trainArgs } from "./_hardening.ts";

const NUMBER = String.raw`(-?[0-9.e+-]+|NaN|-?Infinity)`;
const DIVERGED = new RegExp(
  `training diverged at iteration (\\d+): sup_loss ${NUMBER}, unsup_loss ${NUMBER}, total_loss ${NUMBER}\\. ` +
    String.raw`The last checkpoint before it is kept at (\S+)\. Lower train\.lr`,
);

Deno.test("learning rate 1e30 stops at a non-finite loss", async () => {
  const root = await Deno.makeTempDir({ prefix: "semisup-diverge-" });
  const args = trainArgs(root, 6, "--set", "train.lr=1e30");
  const run = await cli(args);
  assert.notEqual(run.code, 0, run.output);
  const match = DIVERGED.exec(run.output);
  assert.ok(match, run.output);
  const [, iterationText, sup, unsup, total, checkpoint] = match;
  const iteration = Number(iterationText);
  // The first step starts from the initial weights, so its loss is finite.
  assert.ok(iteration >= 2, `diverged at iteration ${iteration}`);
  assert.ok(iteration <= 6, `diverged at iteration ${iteration}`);
  assert.ok([sup, unsup, total].some((term) => !Number.isFinite(Number(term))), match[0]);
  assert.ok(!Number.isFinite(Number(total)), `total_loss ${total}`);

  // The checkpoint of the previous iteration is kept and loads.
  assert.ok(exists(checkpoint), checkpoint);
  const checkpointDir = checkpoint.replace(/\/iter-\d+$/, "");
  const latest = await loadLatestCheckpoint(checkpointDir);
  assert.ok(latest);
  assert.equal(latest.path, checkpoint);
  assert.equal(latest.iteration, iteration - 1);
  assert.ok(latest.model.size > 0);
  assert.equal(latest.logRows.length, iteration - 1);
  assert.ok(latest.logRows.every((row) => Number.isFinite(row.total_loss)));

  // Nothing is published, the lock is released, and a rerun resumes there and stops at the same iteration.
  assert.deepEqual(artifactKeys(root, "train"), []);
  assert.deepEqual(listNames(`${root}/train`).filter((name) => name.endsWith(".lock") || name.startsWith(".tmp-")), []);
  const rerun = await cli(args);
  assert.notEqual(rerun.code, 0, rerun.output);
  assert.match(rerun.output, new RegExp(`resuming from checkpoint \\S+ at iteration ${iteration - 1}/6`));
  assert.equal(DIVERGED.exec(rerun.output)?.[1], iterationText);
  await Deno.remove(root, { recursive: true });
});

Deno.test("divergence message prints NaN and Infinity", () => {
  const error = new DivergedError(0, { sup_loss: NaN, unsup_loss: Infinity, total_loss: -Infinity }, null);
  assert.equal(
    error.message,
    "training diverged at iteration 1: sup_loss NaN, unsup_loss Infinity, total_loss -Infinity. " +
      "No checkpoint was written before it. " +
      "Lower train.lr (a new cache key, so training starts again) or check the input data, then rerun.",
  );
  assert.equal(error.iteration, 1);
  assert.equal(error.checkpoint, null);

  const kept = new DivergedError(4, { sup_loss: 2.5, unsup_loss: NaN, total_loss: NaN }, "/store/iter-0000004");
  assert.match(kept.message, /^training diverged at iteration 5: sup_loss 2\.5, unsup_loss NaN, total_loss NaN\. /);
  assert.match(kept.message, /The last checkpoint before it is kept at \/store\/iter-0000004\. /);
});
