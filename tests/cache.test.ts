import assert from "node:assert/strict";
import { ArtifactStore, stageKey, type StageSpec } from "../pipeline/cache.ts";

function spec(params: unknown, inputs: Record<string, string> = {}, code = "code-v1"): StageSpec {
  return { stage: "demo", code, params, inputs };
}

/** Returns a stage body that writes its run number to out.txt, and a counter of its runs. */
function countingBody(): { body: (context: { dir: string }) => Promise<void>; runs: () => number } {
  let count = 0;
  const body = async ({ dir }: { dir: string }) => {
    count++;
    await Deno.writeTextFile(`${dir}/out.txt`, String(count));
  };
  return { body, runs: () => count };
}

async function tempStore(): Promise<ArtifactStore> {
  return new ArtifactStore(await Deno.makeTempDir({ prefix: "semisup-cache-" }));
}

Deno.test("cache key changes with code, params and inputs", () => {
  const base = stageKey(spec({ a: 1 }, { x: "k1" }));
  assert.notEqual(stageKey(spec({ a: 2 }, { x: "k1" })), base);
  assert.notEqual(stageKey(spec({ a: 1 }, { x: "k2" })), base);
  assert.notEqual(stageKey(spec({ a: 1 }, { x: "k1" }, "code-v2")), base);
  assert.equal(stageKey(spec({ a: 1 }, { x: "k1" })), base);
});

Deno.test("cache key ignores object key order", () => {
  assert.equal(stageKey(spec({ a: 1, b: 2 })), stageKey(spec({ b: 2, a: 1 })));
});

Deno.test("cache hit skips the body", async () => {
  const store = await tempStore();
  let runs = 0;
  const body = async ({ dir }: { dir: string }) => {
    runs++;
    await Deno.writeTextFile(`${dir}/out.txt`, "hello");
  };
  const first = await store.run(spec({ a: 1 }), body);
  const second = await store.run(spec({ a: 1 }), body);
  assert.equal(runs, 1);
  assert.equal(first.cached, false);
  assert.equal(second.cached, true);
  assert.equal(await Deno.readTextFile(`${second.dir}/out.txt`), "hello");
  assert.equal(second.manifest.files["out.txt"], first.manifest.files["out.txt"]);
});

Deno.test("cache invalidation reruns on changed params", async () => {
  const store = await tempStore();
  const { body, runs } = countingBody();
  await store.run(spec({ a: 1 }), body);
  await store.run(spec({ a: 2 }), body);
  assert.equal(runs(), 2);
});

Deno.test("cache force rebuilds a cached key", async () => {
  const store = await tempStore();
  const { body, runs } = countingBody();
  await store.run(spec({ a: 1 }), body);
  const forced = await store.run(spec({ a: 1 }), body, { force: true });
  assert.equal(runs(), 2);
  assert.equal(await Deno.readTextFile(`${forced.dir}/out.txt`), "2");
});

Deno.test("failed body publishes nothing", async () => {
  const store = await tempStore();
  await assert.rejects(
    store.run(spec({ a: 1 }), async ({ dir }) => {
      await Deno.writeTextFile(`${dir}/half.txt`, "partial");
      throw new Error("interrupted");
    }),
    /interrupted/,
  );
  const key = stageKey(spec({ a: 1 }));
  assert.equal(await store.lookup("demo", key), null);
  const leftovers = [...Deno.readDirSync(`${store.root}/demo`)].map((e) => e.name).filter((n) => n.startsWith(".tmp"));
  assert.deepEqual(leftovers, []);
  let runs = 0;
  await store.run(spec({ a: 1 }), async ({ dir }) => {
    runs++;
    await Deno.writeTextFile(`${dir}/out.txt`, "whole");
  });
  assert.equal(runs, 1);
});

Deno.test("folder without manifest is not a cache hit", async () => {
  const store = await tempStore();
  const key = stageKey(spec({ a: 1 }));
  await Deno.mkdir(store.path("demo", key), { recursive: true });
  await Deno.writeTextFile(`${store.path("demo", key)}/out.txt`, "half-written");
  let runs = 0;
  const result = await store.run(spec({ a: 1 }), async ({ dir }) => {
    runs++;
    await Deno.writeTextFile(`${dir}/out.txt`, "whole");
  });
  assert.equal(runs, 1);
  assert.equal(await Deno.readTextFile(`${result.dir}/out.txt`), "whole");
});

Deno.test("corrupt artifact is reported and rebuilt", async () => {
  const store = await tempStore();
  const body = async ({ dir }: { dir: string }) => await Deno.writeTextFile(`${dir}/out.txt`, "good");
  const first = await store.run(spec({ a: 1 }), body);
  await Deno.writeTextFile(`${first.dir}/out.txt`, "tampered");

  const report = await store.verify();
  assert.equal(report.problems.length, 1);
  assert.match(report.problems[0].message, /out\.txt has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}/);

  const second = await store.run(spec({ a: 1 }), body);
  assert.equal(second.cached, false);
  assert.equal(await Deno.readTextFile(`${second.dir}/out.txt`), "good");
  assert.equal((await store.verify()).problems.length, 0);
});

Deno.test("work folder survives a failed run", async () => {
  const store = await tempStore();
  await assert.rejects(store.run(spec({ a: 1 }), async ({ workDir }) => {
    await Deno.writeTextFile(`${workDir}/checkpoint.txt`, "step 5");
    throw new Error("killed");
  }));
  let seen = "";
  await store.run(spec({ a: 1 }), async ({ dir, workDir }) => {
    seen = await Deno.readTextFile(`${workDir}/checkpoint.txt`);
    await Deno.writeTextFile(`${dir}/out.txt`, "done");
  });
  assert.equal(seen, "step 5");
});

Deno.test("stale lock of a dead process is taken over", async () => {
  const store = await tempStore();
  const key = stageKey(spec({ a: 1 }));
  await Deno.mkdir(`${store.root}/demo`, { recursive: true });
  // A pid far above pid_max on Linux is never alive.
  await Deno.writeTextFile(
    `${store.path("demo", key)}.lock`,
    JSON.stringify({ pid: 99999999, host: (await import("node:os")).hostname(), started: "" }),
  );
  const result = await store.run(spec({ a: 1 }), async ({ dir }) => await Deno.writeTextFile(`${dir}/x`, "1"));
  assert.equal(result.cached, false);
});
