import assert from "node:assert/strict";
import { readTensorFile, writeTensorFile } from "../learning/training/tensor_file.ts";
import { loadLatestCheckpoint, saveCheckpoint } from "../learning/training/checkpoint.ts";
import { fixmatchBatch, inlineAugment, mixmatchBatch, sampleWithReplacement } from "../learning/training/batches.ts";
import { AugmentPool } from "../learning/augment/augment_pool.ts";
import { syntheticDataset } from "../learning/data/synthetic.ts";
import { Random } from "../learning/random.ts";

function tensors(value: number) {
  return new Map([
    ["a", { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, value]) }],
    ["b", { shape: [1], data: Float32Array.of(-value) }],
  ]);
}

Deno.test("tensor file round trip is exact", async () => {
  const dir = await Deno.makeTempDir();
  await writeTensorFile(`${dir}/w`, tensors(0.1));
  const back = await readTensorFile(`${dir}/w`);
  assert.deepEqual([...back.keys()], ["a", "b"]);
  assert.deepEqual(back.get("a")!.shape, [2, 3]);
  assert.deepEqual(back.get("a")!.data, Float32Array.from([1, 2, 3, 4, 5, 0.1]));
  assert.deepEqual(back.get("b")!.data, Float32Array.of(-0.1));
});

Deno.test("tensor file truncated data is an error", async () => {
  const dir = await Deno.makeTempDir();
  await writeTensorFile(`${dir}/w`, tensors(1));
  const bytes = await Deno.readFile(`${dir}/w.bin`);
  await Deno.writeFile(`${dir}/w.bin`, bytes.subarray(0, 8));
  await assert.rejects(readTensorFile(`${dir}/w`), /w\.bin has 8 bytes, its index expects 28/);
});

Deno.test("checkpoint latest survives a half-written newer one", async () => {
  const dir = await Deno.makeTempDir();
  const data = (iteration: number) => ({
    iteration,
    model: tensors(iteration),
    momentum: tensors(-iteration),
    ema: tensors(iteration / 2),
    logRows: [{ iteration, sup_loss: 1 }],
    evalRows: [{ iteration, ema_accuracy: 0.5 }],
  });
  await saveCheckpoint(dir, data(2));
  await saveCheckpoint(dir, data(4));
  // A crash while writing iteration 6 leaves only a temporary folder.
  await Deno.mkdir(`${dir}/.tmp-iter-0000006-123`);
  await Deno.writeTextFile(`${dir}/.tmp-iter-0000006-123/model.bin`, "partial");
  const latest = await loadLatestCheckpoint(dir);
  assert.equal(latest!.iteration, 4);
  assert.deepEqual(latest!.model.get("a")!.data, tensors(4).get("a")!.data);
  assert.deepEqual(latest!.logRows, [{ iteration: 4, sup_loss: 1 }]);
  assert.deepEqual(latest!.evalRows, [{ iteration: 4, ema_accuracy: 0.5 }]);

  await saveCheckpoint(dir, data(6));
  const folders = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("iter-")).map((e) => e.name).sort();
  assert.deepEqual(folders, ["iter-0000004", "iter-0000006"]);
});

Deno.test("checkpoint absent returns null", async () => {
  assert.equal(await loadLatestCheckpoint(await Deno.makeTempDir()), null);
});

Deno.test("sampling with replacement stays in the population", () => {
  const population = Int32Array.of(3, 7, 11);
  const drawn = sampleWithReplacement(new Random(1), population, 300);
  assert.ok(drawn.every((i) => i === 3 || i === 7 || i === 11));
  assert.equal(new Set(drawn).size, 3);
});

Deno.test("batches are the same inline and in workers", async () => {
  const { train } = syntheticDataset({ trainPerClass: 4, testPerClass: 1 });
  const labeled = Int32Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
  const plan = { seed: 5, iteration: 3, batchSize: 4, uratio: 2 };
  const pool = new AugmentPool({ workers: 2 });
  try {
    const inline = await fixmatchBatch(train, labeled, plan, { numOps: 3, applyProbability: 1 }, inlineAugment);
    const pooled = await fixmatchBatch(
      train,
      labeled,
      plan,
      { numOps: 3, applyProbability: 1 },
      (r) => pool.augmentBatch(r),
    );
    assert.deepEqual(pooled.labeled, inline.labeled);
    assert.deepEqual(pooled.weak, inline.weak);
    assert.deepEqual(pooled.strong, inline.strong);
    assert.deepEqual(pooled.labels, inline.labels);
    assert.equal(inline.strong.length, 8 * 32 * 32 * 3);
    assert.notDeepEqual(inline.weak, inline.strong);

    const mixInline = await mixmatchBatch(train, labeled, plan, 2, inlineAugment);
    const mixPooled = await mixmatchBatch(train, labeled, plan, 2, (r) => pool.augmentBatch(r));
    assert.equal(mixInline.unlabeledViews.length, 2);
    assert.deepEqual(mixPooled.unlabeledViews, mixInline.unlabeledViews);
    assert.notDeepEqual(mixInline.unlabeledViews[0], mixInline.unlabeledViews[1]);
  } finally {
    pool.close();
  }
});

Deno.test("batches differ between iterations and repeat for one", async () => {
  const { train } = syntheticDataset({ trainPerClass: 4, testPerClass: 1 });
  const labeled = Int32Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
  const options = { numOps: 3, applyProbability: 1 };
  const a = await fixmatchBatch(
    train,
    labeled,
    { seed: 0, iteration: 1, batchSize: 4, uratio: 1 },
    options,
    inlineAugment,
  );
  const b = await fixmatchBatch(
    train,
    labeled,
    { seed: 0, iteration: 1, batchSize: 4, uratio: 1 },
    options,
    inlineAugment,
  );
  const c = await fixmatchBatch(
    train,
    labeled,
    { seed: 0, iteration: 2, batchSize: 4, uratio: 1 },
    options,
    inlineAugment,
  );
  assert.deepEqual(a.strong, b.strong);
  assert.notDeepEqual(a.strong, c.strong);
});
