import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type Dataset, loadDataset, saveDataset, validateDataset } from "../learning/data/dataset.ts";

function makeDataset(): Dataset {
  const shape = { height: 2, width: 3, channels: 3 };
  return {
    name: "tiny",
    classNames: ["cat", "dog", "frog"],
    train: {
      ...shape,
      count: 4,
      images: new Uint8Array(4 * 18).map((_, i) => i * 3),
      labels: new Uint8Array([0, 2, 1, 2]),
    },
    test: { ...shape, count: 2, images: new Uint8Array(2 * 18).map((_, i) => 255 - i), labels: new Uint8Array([1, 0]) },
  };
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

Deno.test("dataset save and load round trip", async () => {
  await withTempDir(async (dir) => {
    const dataset = makeDataset();
    const hashes = await saveDataset(`${dir}/out`, dataset);
    assert.deepEqual(Object.keys(hashes).sort(), [
      "dataset.json",
      "test_images.bin",
      "test_labels.bin",
      "train_images.bin",
      "train_labels.bin",
    ]);
    for (const [file, hash] of Object.entries(hashes)) {
      assert.equal(sha256(await Deno.readFile(`${dir}/out/${file}`)), hash, file);
    }
    assert.deepEqual(await Deno.readFile(`${dir}/out/train_images.bin`), dataset.train.images);

    const manifest = JSON.parse(await Deno.readTextFile(`${dir}/out/dataset.json`));
    assert.equal(manifest.name, "tiny");
    assert.deepEqual(manifest.classNames, ["cat", "dog", "frog"]);
    assert.deepEqual([manifest.trainCount, manifest.testCount], [4, 2]);
    assert.deepEqual([manifest.height, manifest.width, manifest.channels], [2, 3, 3]);

    const loaded = await loadDataset(`${dir}/out`, { verifyHashes: true });
    assert.deepEqual(loaded, dataset);
  });
});

Deno.test("dataset load rejects truncated file", async () => {
  await withTempDir(async (dir) => {
    await saveDataset(dir, makeDataset());
    const images = await Deno.readFile(`${dir}/test_images.bin`);
    await Deno.writeFile(`${dir}/test_images.bin`, images.subarray(0, 30));
    await assert.rejects(
      loadDataset(dir),
      /test_images\.bin has 30 bytes, but dataset\.json expects 36; .*truncated or corrupt/,
    );
  });
});

Deno.test("dataset load detects changed file", async () => {
  await withTempDir(async (dir) => {
    await saveDataset(dir, makeDataset());
    await Deno.writeFile(`${dir}/train_labels.bin`, new Uint8Array([0, 2, 1, 1]));
    // Without hash verification only sizes and label ranges are checked.
    assert.deepEqual([...(await loadDataset(dir)).train.labels], [0, 2, 1, 1]);
    await assert.rejects(
      loadDataset(dir, { verifyHashes: true }),
      /train_labels\.bin has SHA-256 [0-9a-f]{64}, but dataset\.json records/,
    );
  });
});

Deno.test("dataset load rejects label out of range", async () => {
  await withTempDir(async (dir) => {
    await saveDataset(dir, makeDataset());
    await Deno.writeFile(`${dir}/test_labels.bin`, new Uint8Array([1, 3]));
    await assert.rejects(loadDataset(dir), /test\.labels\[1\] is 3, but there are only 3 classes/);
  });
});

Deno.test("dataset load rejects missing parts", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(loadDataset(dir), /dataset\.json .* is not a prepared dataset folder/);
    await saveDataset(dir, makeDataset());
    await Deno.remove(`${dir}/train_labels.bin`);
    await assert.rejects(loadDataset(dir), /Cannot read .*train_labels\.bin/);
    await Deno.writeTextFile(`${dir}/dataset.json`, "{ not json");
    await assert.rejects(loadDataset(dir), /dataset\.json is not valid JSON/);
    await Deno.writeTextFile(`${dir}/dataset.json`, JSON.stringify({ format: "semisup-dataset", version: 2 }));
    await assert.rejects(loadDataset(dir), /version 2; this reader supports version 1 only/);
  });
});

Deno.test("dataset validation names the field", () => {
  const wrongLength = makeDataset();
  wrongLength.train.images = new Uint8Array(10);
  assert.throws(
    () => validateDataset(wrongLength),
    /train\.images has 10 bytes, but train\.count \* height \* width \* channels is 72/,
  );

  const wrongLabels = makeDataset();
  wrongLabels.test.labels = new Uint8Array([0]);
  assert.throws(() => validateDataset(wrongLabels), /test\.labels has 1 entries, but test\.count is 2/);

  const badLabel = makeDataset();
  badLabel.train.labels[2] = 9;
  assert.throws(() => validateDataset(badLabel), /train\.labels\[2\] is 9, but there are only 3 classes/);

  const mixedShape = makeDataset();
  mixedShape.test = { ...mixedShape.test, height: 3, width: 2 };
  assert.throws(() => validateDataset(mixedShape), /train images are 2x3x3 but test images are 3x2x3/);
});
