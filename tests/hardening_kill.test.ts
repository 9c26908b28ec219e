/**
 * SIGKILL of a real training process at several moments, then a rerun: the
 * finished stages are cache hits, training resumes from the last complete
 * checkpoint, and the final weights are bit-identical to an uninterrupted
 * run.
 */
import assert from "node:assert/strict";
import {
  artifactKeys,
  cli,
  cliKilledWhen,
  escapeRegExp,
  exists,
  grep,
  listNames,
  trainArgs,
  verifyStore,
} from "./_hardening.ts";

const ITERATIONS = 6;

/** Returns the train cell's work folder (checkpoints live below it), or null before it exists. */
function workDir(root: string): string | null {
  const keys = listNames(`${root}/train/.work`);
  return keys.length === 1 ? `${root}/train/.work/${keys[0]}` : null;
}

function checkpointDir(root: string): string {
  const work = workDir(root);
  if (!work) throw new Error(`no work folder under ${root}/train/.work`);
  return `${work}/checkpoints`;
}

/** Returns the iteration latest.json points at, or null when there is no checkpoint yet. */
function latestIteration(root: string): number | null {
  const work = workDir(root);
  if (!work || !exists(`${work}/checkpoints/latest.json`)) return null;
  return JSON.parse(Deno.readTextFileSync(`${work}/checkpoints/latest.json`)).iteration;
}

/** Returns the temporary folders in the train stage folder (artifacts being written). */
function artifactTmps(root: string): string[] {
  return listNames(`${root}/train`).filter((name) => name.startsWith(".tmp-"));
}

interface Reference {
  key: string;
  model: Uint8Array;
}

let referenceRun: Promise<Reference> | null = null;

/** Returns the weights of an uninterrupted run, computed once per test file. */
function reference(): Promise<Reference> {
  referenceRun ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "semisup-kill-reference-" });
    const run = await cli(trainArgs(root, ITERATIONS));
    assert.equal(run.code, 0, run.output);
    const [key] = artifactKeys(root, "train");
    const model = await Deno.readFile(`${root}/train/${key}/model.bin`);
    await Deno.remove(root, { recursive: true });
    return { key, model };
  })();
  return referenceRun;
}

/**
 * Reruns training after a kill and checks the recovery against the state
 * the kill left: cache hits upstream, resume from latest.json, the same
 * weights as the reference, a clean store.
 */
async function rerunAndCheck(root: string): Promise<string> {
  const expected = await reference();
  const published = artifactKeys(root, "train").length > 0;
  const latest = latestIteration(root);

  const rerun = await cli(trainArgs(root, ITERATIONS));
  assert.equal(rerun.code, 0, rerun.output);
  assert.match(rerun.output, /\[download [0-9a-f]+\] cache hit/);
  assert.match(rerun.output, /\[split [0-9a-f]+\] cache hit/);
  if (published) {
    assert.match(rerun.output, /\[train [0-9a-f]+\] cache hit/);
  } else {
    assert.match(rerun.output, /\[train [0-9a-f]+\] building/);
    if (latest === null) {
      assert.doesNotMatch(rerun.output, /resuming from checkpoint/);
    } else {
      const folder = `iter-${String(latest).padStart(7, "0")}`;
      assert.match(
        rerun.output,
        new RegExp(`resuming from checkpoint \\S*/${folder} at iteration ${latest}/${ITERATIONS}`),
        grep(rerun.output, /resuming|building/),
      );
    }
  }

  assert.deepEqual(artifactKeys(root, "train"), [expected.key]);
  const model = await Deno.readFile(`${root}/train/${expected.key}/model.bin`);
  assert.ok(model.length === expected.model.length && model.every((byte, i) => byte === expected.model[i]));

  const verify = await verifyStore(root);
  assert.equal(verify.code, 0, verify.output);
  assert.match(verify.output, /: 0 problem\(s\)/);
  assert.deepEqual(artifactTmps(root), []);
  for (const stage of ["download", "split", "train"]) {
    assert.deepEqual(listNames(`${root}/${stage}`).filter((name) => name.endsWith(".lock")), [], stage);
  }
  return rerun.output;
}

Deno.test("kill before first checkpoint restarts training", async () => {
  await reference();
  const root = await Deno.makeTempDir({ prefix: "semisup-kill-early-" });
  // The artifact's temporary folder appears right before training starts.
  const killed = await cliKilledWhen(trainArgs(root, ITERATIONS), root, () => artifactTmps(root).length > 0);
  assert.ok(killed.killed, `the run ended before the trigger:\n${killed.output}`);
  assert.equal(killed.signal, "SIGKILL");
  assert.equal(latestIteration(root), null, "the kill came after the first checkpoint");
  assert.ok(listNames(`${root}/train`).some((name) => name.endsWith(".lock")), "the dead process left no lock");

  const output = await rerunAndCheck(root);
  assert.match(output, /lock \S+\.lock was held by process \d+, which is gone; taking it over/);
  assert.match(output, /removing \S+\/\.tmp-[0-9a-f]+-\d+-\d+, left by an interrupted build/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("kill after a checkpoint resumes there", async () => {
  await reference();
  const root = await Deno.makeTempDir({ prefix: "semisup-kill-after-checkpoint-" });
  const killed = await cliKilledWhen(trainArgs(root, ITERATIONS), root, () => (latestIteration(root) ?? 0) >= 2);
  assert.ok(killed.killed, `the run ended before the trigger:\n${killed.output}`);
  const latest = latestIteration(root);
  assert.ok(latest !== null, "no checkpoint after the kill");
  assert.ok(latest >= 2, `killed at checkpoint ${latest}`);
  assert.ok(latest < ITERATIONS, `killed at checkpoint ${latest}`);

  await rerunAndCheck(root);
  await Deno.remove(root, { recursive: true });
});

Deno.test("kill during checkpoint write resumes from previous", async () => {
  await reference();
  const root = await Deno.makeTempDir({ prefix: "semisup-kill-checkpoint-write-" });
  const writing = () => listNames(checkpointDir(root)).some((name) => name.startsWith(".tmp-iter-"));
  // After the first checkpoint, so the resume point is a checkpoint and not a fresh start.
  const killed = await cliKilledWhen(
    trainArgs(root, ITERATIONS),
    root,
    () => (latestIteration(root) ?? 0) >= 1 && writing(),
  );
  assert.ok(killed.killed, `the run ended before the trigger:\n${killed.output}`);
  if (!writing()) {
    // NOTE: the write takes milliseconds, so on a fast disk the kill can land after the rename.
    console.warn("the kill landed after the checkpoint folder was renamed; checking recovery anyway");
  }

  await rerunAndCheck(root);
  await Deno.remove(root, { recursive: true });
});

Deno.test("kill during artifact write resumes at the end", async () => {
  await reference();
  const root = await Deno.makeTempDir({ prefix: "semisup-kill-artifact-write-" });
  const writing = () => artifactTmps(root).some((tmp) => listNames(`${root}/train/${tmp}`).length > 0);
  const killed = await cliKilledWhen(trainArgs(root, ITERATIONS), root, writing);
  assert.ok(killed.killed, `the run ended before the trigger:\n${killed.output}`);

  const caught = writing() && artifactKeys(root, "train").length === 0;
  if (artifactKeys(root, "train").length === 0) assert.equal(latestIteration(root), ITERATIONS);
  if (caught) {
    const verify = await verifyStore(root);
    assert.equal(verify.code, 1, verify.output);
    assert.match(verify.output, /\.tmp-[0-9a-f]+-\d+-\d+: leftover temporary folder of a build by process \d+/);
  } else {
    console.warn("the kill landed after the artifact was published; checking recovery anyway");
  }

  const output = await rerunAndCheck(root);
  if (caught) assert.match(output, new RegExp(`at iteration ${ITERATIONS}/${ITERATIONS}`));
  await Deno.remove(root, { recursive: true });
});

Deno.test("crash leftovers do not change the resume point", async () => {
  await reference();
  const root = await Deno.makeTempDir({ prefix: "semisup-kill-leftovers-" });
  const killed = await cliKilledWhen(trainArgs(root, ITERATIONS), root, () => (latestIteration(root) ?? 0) >= 1);
  assert.ok(killed.killed, `the run ended before the trigger:\n${killed.output}`);
  const latest = latestIteration(root)!;
  assert.ok(latest < ITERATIONS - 1, `killed at checkpoint ${latest}`);

  // What a kill leaves at each step of saveCheckpoint for the next iteration:
  // a half-written temporary folder, a renamed folder that latest.json does
  // not point at yet, and a half-written latest.json replacement.
  const dir = checkpointDir(root);
  const current = `${dir}/iter-${String(latest).padStart(7, "0")}`;
  const next = `iter-${String(latest + 1).padStart(7, "0")}`;
  const partial = `${dir}/.tmp-${next}-99999999`;
  await Deno.mkdir(partial);
  const weights = await Deno.readFile(`${current}/model.bin`);
  await Deno.writeFile(`${partial}/model.bin`, weights.subarray(0, weights.length >> 1));
  // The renamed folder contains other weights than training would produce, so resuming from it breaks bit-identity.
  await Deno.mkdir(`${dir}/${next}`);
  for (const name of listNames(current)) await Deno.copyFile(`${current}/${name}`, `${dir}/${next}/${name}`);
  const state = JSON.parse(await Deno.readTextFile(`${current}/state.json`));
  await Deno.writeTextFile(`${dir}/${next}/state.json`, JSON.stringify({ ...state, iteration: latest + 1 }));
  await Deno.writeTextFile(`${dir}/.latest.json.tmp`, `{"folder":"${next.slice(0, 6)}`);

  // An artifact folder half-written by a dead process, and a lock file its owner died before filling in.
  const [lock] = listNames(`${root}/train`).filter((name) => name.endsWith(".lock"));
  const key = lock.replace(/\.lock$/, "");
  const deadTmp = `${root}/train/.tmp-${key}-99999999-1`;
  await Deno.mkdir(deadTmp);
  await Deno.writeFile(`${deadTmp}/model.bin`, weights.subarray(0, 100));
  await Deno.writeTextFile(`${root}/train/${lock}`, "");
  const minuteAgo = new Date(Date.now() - 60_000);
  await Deno.utime(`${root}/train/${lock}`, minuteAgo, minuteAgo);

  const verify = await verifyStore(root);
  assert.equal(verify.code, 1, verify.output);
  assert.match(verify.output, new RegExp(`${escapeRegExp(deadTmp)}: leftover temporary folder`));

  const output = await rerunAndCheck(root);
  assert.match(output, /\.lock is empty and is \d+ s old, so its owner died while creating it; taking it over/);
  assert.match(output, new RegExp(`removing ${escapeRegExp(deadTmp)}`));
  await Deno.remove(root, { recursive: true });
});
