/**
 * Two pipeline runs on one artifact store, and lock files left in every
 * state a dead or racing process can leave them.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { acquireLock, type Lock } from "../pipeline/lock.ts";
import type { StageLogger } from "../pipeline/log.ts";
import { artifactKeys, cli, exists, listNames, TINY, verifyStore } from "./_hardening.ts";

/** Creates a logger that records lines instead of printing them. */
function recordingLogger(): StageLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (message) => lines.push(`info: ${message}`),
    warn: (message) => lines.push(`warn: ${message}`),
    error: (message) => lines.push(`error: ${message}`),
  };
}

const LOCK_DIR = Deno.makeTempDirSync({ prefix: "semisup-lock-" });
globalThis.addEventListener("unload", () => Deno.removeSync(LOCK_DIR, { recursive: true }));
let lockCount = 0;

/** Returns a fresh lock file path; all of them share one folder and so one takeover guard. */
function lockPath(): string {
  return `${LOCK_DIR}/key-${lockCount++}.lock`;
}

async function writeAged(path: string, text: string, ageSeconds: number): Promise<void> {
  await Deno.writeTextFile(path, text);
  const then = new Date(Date.now() - ageSeconds * 1000);
  await Deno.utime(path, then, then);
}

Deno.test("two concurrent runs build each key once", async () => {
  const root = await Deno.makeTempDir({ prefix: "semisup-concurrent-" });
  const args = ["all", ...TINY, "--artifacts", root];
  const [a, b] = await Promise.all([cli(args), cli(args)]);
  assert.equal(a.code, 0, a.output);
  assert.equal(b.code, 0, b.output);

  const builds = new Map<string, number>();
  for (const match of (a.output + b.output).matchAll(/\[(\w+) ([0-9a-f]{12})\] building /g)) {
    const id = `${match[1]} ${match[2]}`;
    builds.set(id, (builds.get(id) ?? 0) + 1);
  }
  const twice = [...builds].filter(([, n]) => n !== 1).map(([id]) => id);
  assert.deepEqual(twice, [], "keys built more than once");
  // download + 2 splits + 4 train cells + 4 evaluations + tabulate
  assert.equal(builds.size, 12, [...builds.keys()].join("\n"));
  const stages = ["download", "split", "train", "evaluate", "tabulate"];
  const published = stages.reduce((sum, stage) => sum + artifactKeys(root, stage).length, 0);
  assert.equal(published, 12);

  const verify = await verifyStore(root);
  assert.equal(verify.code, 0, verify.output);
  assert.match(verify.output, /verified 12 artifacts .*: 0 problem\(s\)/);
  for (const stage of stages) {
    const leftovers = listNames(`${root}/${stage}`).filter((name) =>
      name.endsWith(".lock") || name.startsWith(".tmp-")
    );
    assert.deepEqual(leftovers, [], stage);
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("lock of a dead process is taken over", async () => {
  const path = lockPath();
  await Deno.writeTextFile(path, JSON.stringify({ pid: 99999999, host: hostname(), started: "" }));
  const log = recordingLogger();
  const lock = await acquireLock(path, log, { pollMs: 20, timeoutMs: 5000 });
  assert.equal(JSON.parse(await Deno.readTextFile(path)).pid, Deno.pid);
  assert.match(log.lines.join("\n"), /was held by process 99999999, which is gone; taking it over/);
  await lock.release();
  assert.equal(exists(path), false);
});

Deno.test("old empty or unreadable lock is taken over", async () => {
  const cases: [string, string, RegExp][] = [
    ["empty", "", /is empty and is 60 s old/],
    ["truncated JSON", '{"pid": 12', /has no valid owner \("\{\\"pid\\": 12"\) and is 60 s old/],
    ["JSON without pid", '{"host": "x"}', /has no valid owner/],
  ];
  for (const [name, text, message] of cases) {
    const path = lockPath();
    await writeAged(path, text, 60);
    const log = recordingLogger();
    const lock = await acquireLock(path, log, { pollMs: 20, timeoutMs: 5000 });
    assert.equal(JSON.parse(await Deno.readTextFile(path)).pid, Deno.pid, name);
    assert.match(log.lines.join("\n"), message, name);
    await lock.release();
  }
});

Deno.test("fresh empty lock is waited on", async () => {
  // Its owner may be between creating the file and writing its pid.
  const path = lockPath();
  await Deno.writeTextFile(path, "");
  await assert.rejects(
    acquireLock(path, recordingLogger(), { pollMs: 20, timeoutMs: 300 }),
    /timed out waiting for lock .*key-\d+\.lock held by an unknown owner; if no other semisup process is running, delete the file/,
  );
  assert.equal(await Deno.readTextFile(path), "");
});

Deno.test("lock of a live process is waited on", async () => {
  const path = lockPath();
  const owner = JSON.stringify({ pid: Deno.pid, host: hostname(), started: "" });
  await writeAged(path, owner, 3600);
  await assert.rejects(acquireLock(path, recordingLogger(), { pollMs: 20, timeoutMs: 300 }), /timed out/);
  assert.equal(await Deno.readTextFile(path), owner);
});

Deno.test("racing takeovers of a dead lock leave one holder", async () => {
  // Each acquirer reads the dead owner, then yields before removing the file,
  // so a takeover that removes whatever file is there would remove a fresh lock.
  for (let round = 0; round < 5; round++) {
    const path = lockPath();
    await Deno.writeTextFile(path, JSON.stringify({ pid: 99999999, host: hostname(), started: "" }));
    let holders = 0;
    let maxHolders = 0;
    const contender = async () => {
      const lock: Lock = await acquireLock(path, recordingLogger(), { pollMs: 5, timeoutMs: 20_000 });
      holders++;
      maxHolders = Math.max(maxHolders, holders);
      await new Promise((resolve) => setTimeout(resolve, 15));
      holders--;
      await lock.release();
    };
    await Promise.all(Array.from({ length: 6 }, contender));
    assert.equal(maxHolders, 1, `round ${round}`);
    assert.equal(exists(path), false, `round ${round}`);
  }
});

Deno.test("release leaves another owner's lock", async () => {
  const path = lockPath();
  const lock = await acquireLock(path, recordingLogger());
  const other = JSON.stringify({ pid: 1, host: hostname(), started: "later" });
  await Deno.writeTextFile(path, other);
  await lock.release();
  assert.equal(await Deno.readTextFile(path), other);
});
