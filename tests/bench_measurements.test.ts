/**
 * Measurements of the benchmark on the wasm backend with small settings:
 * training iterations (image counts, micro-batches, repeatable losses, flat
 * tensor counts), the convolution timing, and the subprocess protocol.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import { initBackend } from "../learning/backend/backends.ts";
import { benchTraining, median, readPeakRssBytes, type TrainingBenchOptions } from "../bench/_training_bench.ts";
import { benchConv } from "../bench/_conv_bench.ts";
import { trainingConvFlops, wideResNetConvLayers } from "../bench/_conv_layers.ts";
import { parseChildOutput, RESULT_PREFIX, runChild } from "../bench/_child_process.ts";

await initBackend("wasm");

const REPO_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** Depth 10, width 1 on 8x8 images: a few hundred ms per iteration on wasm. */
const SMALL: Omit<TrainingBenchOptions, "algorithm"> = {
  iterations: 3,
  warmup: 1,
  batchSize: 4,
  fixmatchUratio: 2,
  seed: 5,
  maxForwardImages: 12,
  model: { depth: 10, widenFactor: 1 },
  imageSize: 8,
};

Deno.test("bench fixmatch counts images and micro-batches", async () => {
  const lines: string[] = [];
  const result = await benchTraining({ ...SMALL, algorithm: "fixmatch", log: (line) => lines.push(line) });
  assert.equal(result.labeledBatchSize, 4);
  assert.equal(result.unlabeledBatchSize, 8);
  // 4 labeled + 8 weak + 8 strong.
  assert.equal(result.imagesPerIteration, 20);
  // 20 images at most 12 per forward: 2 micro-batches of 2 labeled + 2 x 4 unlabeled.
  assert.equal(result.microBatches, 2);
  assert.equal(result.iterationSeconds.length, 3);
  assert.equal(result.secondsPerIteration, median(result.iterationSeconds));
  assert.equal(result.imagesPerSecond, 20 / result.secondsPerIteration);
  assert.ok(Number.isFinite(result.firstLosses.total_loss));
  assert.ok(result.tensors.afterFirst > result.tensors.start, "SGD momentum buffers appear after iteration 1");
  assert.equal(result.tensors.end, result.tensors.afterFirst);
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^fixmatch warm-up 1\/1: /);
  assert.match(lines[3], /^fixmatch iteration 3\/3: /);
});

Deno.test("bench mixmatch losses repeat with the seed", async () => {
  const settings = { ...SMALL, algorithm: "mixmatch" as const, iterations: 1, warmup: 0 };
  const first = await benchTraining(settings);
  const second = await benchTraining(settings);
  const otherSeed = await benchTraining({ ...settings, seed: 6 });
  // 4 labeled + 2 views x 4 unlabeled (MixMatch's uratio is 1), in 3 interleaved chunks of 4.
  assert.equal(first.imagesPerIteration, 12);
  assert.equal(first.microBatches, 3);
  assert.deepEqual(second.firstLosses, first.firstLosses);
  assert.notEqual(otherSeed.firstLosses.total_loss, first.firstLosses.total_loss);
  assert.equal(first.tensors.end, first.tensors.afterFirst);
});

Deno.test("bench training rejects invalid counts", async () => {
  await assert.rejects(
    benchTraining({ ...SMALL, algorithm: "fixmatch", iterations: 0 }),
    /iterations must be a positive/,
  );
  await assert.rejects(benchTraining({ ...SMALL, algorithm: "fixmatch", warmup: -1 }), /warmup must be a non-negative/);
});

Deno.test("bench conv sums every layer", async () => {
  const lines: string[] = [];
  const result = await benchConv({ batchSize: 1, repeats: 1, seed: 0, log: (line) => lines.push(line) });
  assert.equal(result.layerCount, 28);
  assert.equal(result.shapes.length, 10);
  assert.equal(lines.length, 10);
  assert.equal(result.totalFlops, trainingConvFlops(wideResNetConvLayers({ batchSize: 1 })));
  assert.equal(result.shapes.reduce((flops, shape) => flops + shape.flops * shape.layers.length, 0), result.totalFlops);
  const seconds = result.shapes.reduce((total, shape) => total + shape.seconds * shape.layers.length, 0);
  assert.ok(Math.abs(result.totalSeconds - seconds) < 1e-12, `${result.totalSeconds} s vs ${seconds} s`);
  assert.ok(Math.abs(result.gflopsPerSecond - result.totalFlops / result.totalSeconds / 1e9) < 1e-9);
});

Deno.test("median of odd and even counts", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.throws(() => median([]), /no values/);
});

Deno.test({
  name: "peak RSS reads VmHWM",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const bytes = await readPeakRssBytes();
    assert.ok(bytes !== null);
    // At least the current resident set, which includes the wasm heap.
    assert.ok(bytes >= Deno.memoryUsage().rss * 0.9, `VmHWM ${bytes} bytes`);
  },
});

Deno.test("child output without result line fails", () => {
  assert.deepEqual(parseChildOutput("some log line\n", 137), {
    kind: "failed",
    reason: "the subprocess exited with code 137 (killed, possibly out of memory) without a result",
  });
  const line = `${RESULT_PREFIX}{"kind":"unavailable","reason":"no library"}`;
  assert.deepEqual(parseChildOutput(`log\n${line}\n`, 0), { kind: "unavailable", reason: "no library" });
});

Deno.test("child reports an unknown backend as unavailable", async () => {
  const result = await runChild({ kind: "conv", backend: "tpu", batchSize: 1, repeats: 1, seed: 0 }, REPO_ROOT);
  assert.equal(result.kind, "unavailable");
  assert.match((result as { reason: string }).reason, /Invalid backend 'tpu'/);
});

Deno.test("child times WRN-28-2 mixmatch on wasm", async () => {
  const result = await runChild({
    kind: "training",
    backend: "wasm",
    algorithm: "mixmatch",
    iterations: 1,
    warmup: 0,
    batchSize: 2,
    fixmatchUratio: 7,
    seed: 0,
    maxForwardImages: "backend",
  }, REPO_ROOT);
  assert.equal(result.kind, "training", JSON.stringify(result));
  if (result.kind !== "training") return;
  assert.equal(result.backend.name, "wasm");
  assert.equal(result.backend.maxForwardImages, 96);
  assert.equal(result.backend.tfjsVersion, "4.22.0");
  assert.equal(result.measurement.imagesPerIteration, 6);
  assert.equal(result.measurement.iterationSeconds.length, 1);
  assert.equal(result.measurement.tensors.end, result.measurement.tensors.afterFirst);
  if (Deno.build.os === "linux") {
    assert.ok(result.peakRssBytes !== null, "peak RSS is known on Linux");
    assert.ok(result.peakRssBytes > 2 ** 20, `peak RSS ${result.peakRssBytes}`);
  }
});

Deno.test("bench rejects an unknown backend", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO_ROOT}/bench/bench.ts`, "--backends", "native,nativ"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 2, stderr);
  assert.match(stderr, /Invalid --backends entry: Invalid backend 'nativ'; valid backends are: auto, native/);
});
