/**
 * Failing writes: the error names the path, and the previous artifact or
 * checkpoint stays intact. The tests run as root too, so instead of file
 * permissions they block a write with a path component that is a regular
 * file (ENOTDIR) or a file path that is a folder (EISDIR).
 */
import assert from "node:assert/strict";
import { loadLatestCheckpoint } from "../learning/training/checkpoint.ts";
import {
  artifactKeys,
  cli,
  cliKilledWhen,
  escapeRegExp,
  exists,
  listNames,
  trainArgs,
  verifyStore,
} from "./_hardening.ts";

Deno.test("failed rebuild keeps the previous artifact", async () => {
  const root = await Deno.makeTempDir({ prefix: "semisup-write-artifact-" });
  const first = await cli(trainArgs(root, 2));
  assert.equal(first.code, 0, first.output);
  const [key] = artifactKeys(root, "train");
  const model = await Deno.readFile(`${root}/train/${key}/model.bin`);

  // The work folder of the rebuild cannot be created below a regular file.
  await Deno.remove(`${root}/train/.work`, { recursive: true });
  await Deno.writeTextFile(`${root}/train/.work`, "not a folder");
  const forced = await cli(trainArgs(root, 2, "--force", "train"));
  assert.notEqual(forced.code, 0, forced.output);
  assert.match(
    forced.output,
    new RegExp(`Not a directory \\(os error 20\\): mkdir '${escapeRegExp(root)}/train/\\.work/`),
  );

  assert.deepEqual(artifactKeys(root, "train"), [key]);
  assert.deepEqual(await Deno.readFile(`${root}/train/${key}/model.bin`), model);
  const leftovers = listNames(`${root}/train`).filter((name) => name.startsWith(".tmp-") || name.endsWith(".lock"));
  assert.deepEqual(leftovers, []);
  const verify = await verifyStore(root);
  assert.equal(verify.code, 0, verify.output);
  await Deno.remove(root, { recursive: true });
});

Deno.test("failed checkpoint write keeps the previous one", async () => {
  const iterations = 6;
  const root = await Deno.makeTempDir({ prefix: "semisup-write-checkpoint-" });
  let checkpoints = "";
  const latest = () => JSON.parse(Deno.readTextFileSync(`${checkpoints}/latest.json`)).iteration as number;
  const killed = await cliKilledWhen(trainArgs(root, iterations), root, () => {
    const [key] = listNames(`${root}/train/.work`);
    checkpoints = `${root}/train/.work/${key}/checkpoints`;
    return latest() >= 1;
  });
  assert.ok(killed.killed, `the run ended before the first checkpoint:\n${killed.output}`);
  const before = latest();
  assert.ok(before < iterations, `killed at checkpoint ${before}`);
  const saved = await loadLatestCheckpoint(checkpoints);

  // latest.json is replaced through .latest.json.tmp; a folder there makes that write fail.
  await Deno.mkdir(`${checkpoints}/.latest.json.tmp`);
  const failed = await cli(trainArgs(root, iterations));
  assert.notEqual(failed.code, 0, failed.output);
  assert.match(failed.output, new RegExp(`resuming from checkpoint \\S+ at iteration ${before}/${iterations}`));
  assert.match(
    failed.output,
    new RegExp(`Is a directory \\(os error 21\\): \\w+ '${escapeRegExp(checkpoints)}/\\.latest\\.json\\.tmp'`),
  );

  // latest.json still points at the previous checkpoint, which loads with the same tensors.
  assert.equal(latest(), before);
  const reloaded = await loadLatestCheckpoint(checkpoints);
  assert.ok(saved);
  assert.ok(reloaded);
  assert.equal(reloaded.path, saved.path);
  assert.equal(reloaded.iteration, before);
  assert.deepEqual([...reloaded.model.keys()], [...saved.model.keys()]);
  for (const [name, tensor] of saved.model) assert.deepEqual(reloaded.model.get(name)!.data, tensor.data, name);
  assert.deepEqual(artifactKeys(root, "train"), []);

  // With the obstacle gone, training resumes there and matches an uninterrupted run.
  await Deno.remove(`${checkpoints}/.latest.json.tmp`);
  const resumed = await cli(trainArgs(root, iterations));
  assert.equal(resumed.code, 0, resumed.output);
  assert.match(resumed.output, new RegExp(`resuming from checkpoint \\S+ at iteration ${before}/${iterations}`));
  const straightRoot = await Deno.makeTempDir({ prefix: "semisup-write-straight-" });
  const straight = await cli(trainArgs(straightRoot, iterations));
  assert.equal(straight.code, 0, straight.output);
  const [key] = artifactKeys(root, "train");
  assert.deepEqual(artifactKeys(straightRoot, "train"), [key]);
  assert.deepEqual(
    await Deno.readFile(`${root}/train/${key}/model.bin`),
    await Deno.readFile(`${straightRoot}/train/${key}/model.bin`),
  );
  assert.equal(exists(checkpoints), false);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(straightRoot, { recursive: true });
});
