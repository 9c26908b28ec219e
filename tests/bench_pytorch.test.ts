/**
 * PyTorch side of the benchmark: parsing bench/pytorch_wrn.py's JSON lines,
 * finding an interpreter with torch, and one tiny real run where torch is
 * installed.
 */

import assert from "node:assert/strict";
import { findTorchPython, parsePytorchOutput, runPytorchBench } from "../bench/_pytorch.ts";

// Real stdout of `/usr/bin/python3 bench/pytorch_wrn.py --algorithms mixmatch,fixmatch --iterations 1
// --warmup 0 --batch-size 4 --fixmatch-uratio 2 --threads 2` (torch 1.13 on Debian).
const MIXMATCH_LINE = '{"algorithm": "mixmatch", "images_per_iteration": 12, "seconds_per_iteration": ' +
  '0.1898856549996708, "images_per_second": 63.19592704367691, "iterations": 1, "iteration_seconds": ' +
  '[0.1898856549996708], "warmup": 0, "batch_size": 4, "threads": 2, "torch_version": "1.13.0a0", ' +
  '"mkldnn": true, "peak_rss_bytes": 353628160, "loss": 2.8913819789886475}';
const FIXMATCH_LINE = '{"algorithm": "fixmatch", "images_per_iteration": 20, "seconds_per_iteration": ' +
  '0.22981187900040823, "images_per_second": 87.02770321095748, "iterations": 1, "iteration_seconds": ' +
  '[0.22981187900040823], "warmup": 0, "batch_size": 4, "threads": 2, "torch_version": "1.13.0a0", ' +
  '"mkldnn": true, "peak_rss_bytes": 400338944, "loss": 2.2556796073913574}';

Deno.test("pytorch output parses real lines", () => {
  const results = parsePytorchOutput(`${MIXMATCH_LINE}\n${FIXMATCH_LINE}\n`, ["fixmatch", "mixmatch"]);
  assert.equal(results.length, 2);
  const [mixmatch, fixmatch] = results;
  assert.equal(mixmatch.algorithm, "mixmatch");
  assert.equal(mixmatch.images_per_iteration, 12);
  assert.equal(mixmatch.seconds_per_iteration, 0.1898856549996708);
  assert.equal(mixmatch.images_per_second, 63.19592704367691);
  assert.equal(mixmatch.threads, 2);
  assert.equal(mixmatch.torch_version, "1.13.0a0");
  assert.equal(mixmatch.mkldnn, true);
  assert.equal(mixmatch.peak_rss_bytes, 353628160);
  assert.equal(mixmatch.loss, 2.8913819789886475);
  assert.equal(fixmatch.algorithm, "fixmatch");
  assert.equal(fixmatch.images_per_iteration, 20);
});

Deno.test("pytorch output skips other lines", () => {
  const stdout = `torch threads: 2\n\n  ${FIXMATCH_LINE}  \nDone.\n`;
  const results = parsePytorchOutput(stdout, ["fixmatch"]);
  assert.equal(results.length, 1);
  assert.equal(results[0].images_per_second, 87.02770321095748);
});

Deno.test("pytorch output rejects broken JSON", () => {
  assert.throws(
    () => parsePytorchOutput(`${FIXMATCH_LINE}\n{"algorithm": "mixmatch",\n`, []),
    /PyTorch output line 2 is not valid JSON/,
  );
});

Deno.test("pytorch output rejects invalid fields", () => {
  const missing = JSON.parse(FIXMATCH_LINE);
  delete missing.images_per_second;
  assert.throws(
    () => parsePytorchOutput(JSON.stringify(missing), ["fixmatch"]),
    /line 1 is not a valid result \(images_per_second: /,
  );
  const negative = { ...JSON.parse(FIXMATCH_LINE), seconds_per_iteration: -1 };
  assert.throws(() => parsePytorchOutput(JSON.stringify(negative), ["fixmatch"]), /seconds_per_iteration: /);
  const unknown = { ...JSON.parse(FIXMATCH_LINE), algorithm: "meanteacher" };
  assert.throws(() => parsePytorchOutput(JSON.stringify(unknown), ["fixmatch"]), /algorithm: /);
});

Deno.test("pytorch output needs every algorithm", () => {
  assert.throws(
    () => parsePytorchOutput(FIXMATCH_LINE, ["fixmatch", "mixmatch"]),
    /no result line for mixmatch; expected one JSON line per algorithm on stdout, got 1 line\(s\)/,
  );
  assert.throws(() => parsePytorchOutput("", ["fixmatch"]), /no result line for fixmatch/);
});

Deno.test("torch interpreter search reports each miss", async () => {
  const found = await findTorchPython(["/nonexistent/python3", "deno"]);
  assert.ok("reason" in found);
  assert.match(found.reason, /\/nonexistent\/python3: not found/);
  // deno runs but rejects "-c", so it counts as an interpreter without torch.
  assert.match(found.reason, /deno: /);
  assert.match(found.reason, /apt-get install python3-torch/);
});

const torchPython = await findTorchPython();
const script = new URL("../bench/pytorch_wrn.py", import.meta.url).pathname;
const scriptExists = await Deno.stat(script).then(() => true, () => false);

Deno.test({
  name: "pytorch tiny run parses",
  ignore: !("python" in torchPython) || !scriptExists,
  fn: async () => {
    const python = (torchPython as { python: string }).python;
    const run = await runPytorchBench(python, script, {
      algorithms: ["mixmatch"],
      iterations: 1,
      warmup: 0,
      threads: 1,
      fixmatchUratio: 2,
      batchSize: 2,
      seed: 0,
    });
    assert.ok("results" in run, "skipped" in run ? run.skipped : "");
    assert.equal(run.results.length, 1);
    assert.equal(run.results[0].algorithm, "mixmatch");
    // 2 labeled + 2 views x 2 unlabeled images with gradient.
    assert.equal(run.results[0].images_per_iteration, 6);
    assert.equal(run.results[0].threads, 1);
    assert.match(run.command, / --batch-size 2 --seed 0$/);
  },
});
