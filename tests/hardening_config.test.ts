/**
 * Hostile label counts through the CLI on the smoke profile, whose generated
 * training set has 10 classes of 20 images: each run stops with an error
 * that names the count, and publishes no split.
 */
import assert from "node:assert/strict";
import { artifactKeys, cli, listNames } from "./_hardening.ts";

Deno.test("bad label counts name the count", async () => {
  const cases: [string, number, RegExp][] = [
    [
      "45",
      1,
      /numLabels must be a positive multiple of the class count 10 \(for example 40, 250 or 4000\) .*; got 45\./,
    ],
    ["0", 2, /invalid configuration \(.*command line\):\n\s+study\.labels\.0 = 0: Too small: expected number to be >0/],
    ["-5", 2, /study\.labels\.0 = -5: Too small/],
    ["4.5", 2, /--labels: "4\.5" is not an integer/],
    [
      "250",
      1,
      /numLabels 250 needs 25 labeled examples per class, but class 0 has only 20 training examples; use at most 200 labels\./,
    ],
  ];
  const root = await Deno.makeTempDir({ prefix: "semisup-labels-" });
  for (const [labels, code, message] of cases) {
    const run = await cli(["split", "--profile", "smoke", "--artifacts", root, `--labels=${labels}`]);
    assert.equal(run.code, code, `--labels=${labels}: ${run.output}`);
    assert.match(run.output, message, `--labels=${labels}`);
  }
  assert.deepEqual(artifactKeys(root, "split"), []);
  assert.deepEqual(listNames(`${root}/split`).filter((name) => name.endsWith(".lock") || name.startsWith(".tmp-")), []);
  await Deno.remove(root, { recursive: true });
});
