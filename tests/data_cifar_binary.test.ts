import assert from "node:assert/strict";
import { CIFAR10_RECORD_BYTES, readCifarBinaryArchive } from "../learning/data/cifar_binary.ts";
import { CIFAR10_BINARY_MD5, CIFAR10_CLASS_NAMES } from "../learning/data/cifar10.ts";
import { assertBytesEqual, makeCifarBinaryFixture, makeTar, md5Hex } from "./_fixtures.ts";

Deno.test("cifar binary round trip", async () => {
  const fixture = await makeCifarBinaryFixture({ recordsPerBatch: 3 });
  const dataset = await readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3 });
  assert.equal(dataset.name, "cifar10");
  assert.deepEqual(dataset.classNames, [...CIFAR10_CLASS_NAMES]);
  assert.equal(dataset.train.count, 15);
  assert.equal(dataset.test.count, 3);
  for (const set of [dataset.train, dataset.test]) {
    assert.deepEqual([set.height, set.width, set.channels], [32, 32, 3]);
  }
  assert.deepEqual(dataset.train.labels, fixture.train.labels);
  assert.deepEqual(dataset.test.labels, fixture.test.labels);
  assertBytesEqual(dataset.train.images, fixture.train.imagesHwc, "train images");
  assertBytesEqual(dataset.test.images, fixture.test.imagesHwc, "test images");
});

Deno.test("cifar binary converts CHW to HWC", async () => {
  // One hand-made record: red plane 10, green plane 20, blue plane 30, except
  // pixel (row 0, col 1) = (1, 2, 3) and pixel (row 31, col 31) = (250, 251, 252).
  const record = new Uint8Array(CIFAR10_RECORD_BYTES);
  record[0] = 7;
  record.fill(10, 1, 1025);
  record.fill(20, 1025, 2049);
  record.fill(30, 2049, 3073);
  record[1 + 1] = 1;
  record[1 + 1024 + 1] = 2;
  record[1 + 2048 + 1] = 3;
  record[1 + 1023] = 250;
  record[1 + 1024 + 1023] = 251;
  record[1 + 2048 + 1023] = 252;
  const fixture = await makeCifarBinaryFixture({ recordsPerBatch: 1, replace: { "test_batch.bin": record } });
  const dataset = await readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 1 });
  const hwc = dataset.test.images;
  assert.equal(dataset.test.labels[0], 7);
  assert.deepEqual([...hwc.subarray(0, 3)], [10, 20, 30]);
  assert.deepEqual([...hwc.subarray(3, 6)], [1, 2, 3]);
  assert.deepEqual([...hwc.subarray(6, 9)], [10, 20, 30]);
  assert.deepEqual([...hwc.subarray(32 * 3, 32 * 3 + 3)], [10, 20, 30]);
  assert.deepEqual([...hwc.subarray(3069, 3072)], [250, 251, 252]);
});

Deno.test("cifar binary reads from a path", async () => {
  const fixture = await makeCifarBinaryFixture({ recordsPerBatch: 2, seed: 5 });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/cifar-10-binary.tar.gz`;
    await Deno.writeFile(path, fixture.archive);
    const dataset = await readCifarBinaryArchive(path, { expectedMd5: fixture.md5.toUpperCase(), recordsPerBatch: 2 });
    assertBytesEqual(dataset.train.images, fixture.train.imagesHwc, "train images");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cifar binary rejects MD5 mismatch", async () => {
  const fixture = await makeCifarBinaryFixture();
  // The default expected MD5 is the official one, which a fixture never has.
  const error = await readCifarBinaryArchive(fixture.archive, { recordsPerBatch: 3 }).catch((e) => e);
  assert.ok(error instanceof Error);
  assert.match(error.message, new RegExp(`expected ${CIFAR10_BINARY_MD5}, found ${fixture.md5}`));
  assert.match(error.message, /download it again/);

  const wrong = "0".repeat(32);
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: wrong, recordsPerBatch: 3 }),
    new RegExp(`MD5 mismatch for <in-memory archive>: expected ${wrong}, found ${fixture.md5}`),
  );
});

Deno.test("cifar binary rejects truncated batch", async () => {
  const good = await makeCifarBinaryFixture({ recordsPerBatch: 3 });
  const short = good.batches.get("data_batch_4.bin")!.subarray(0, 2 * CIFAR10_RECORD_BYTES);
  const fixture = await makeCifarBinaryFixture({ recordsPerBatch: 3, replace: { "data_batch_4.bin": short } });
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3 }),
    /member cifar-10-batches-bin\/data_batch_4\.bin has 6146 bytes \(2 records\), but a batch holds 3 records \(9219 bytes\)\. The file is truncated/,
  );
});

Deno.test("cifar binary rejects wrong record size", async () => {
  const good = await makeCifarBinaryFixture({ recordsPerBatch: 3 });
  const ragged = good.batches.get("test_batch.bin")!.subarray(0, 3 * CIFAR10_RECORD_BYTES - 100);
  const fixture = await makeCifarBinaryFixture({ recordsPerBatch: 3, replace: { "test_batch.bin": ragged } });
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3 }),
    /member cifar-10-batches-bin\/test_batch\.bin has 9119 bytes, which is not a multiple of the 3073-byte record size/,
  );
});

Deno.test("cifar binary rejects missing member", async () => {
  const fixture = await makeCifarBinaryFixture({ replace: { "data_batch_2.bin": null, "batches.meta.txt": null } });
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3 }),
    /is missing data_batch_2\.bin, batches\.meta\.txt/,
  );
});

Deno.test("cifar binary rejects label out of range", async () => {
  const good = await makeCifarBinaryFixture({ recordsPerBatch: 3 });
  const batch = good.batches.get("data_batch_1.bin")!.slice();
  batch[CIFAR10_RECORD_BYTES] = 10;
  const fixture = await makeCifarBinaryFixture({ recordsPerBatch: 3, replace: { "data_batch_1.bin": batch } });
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3 }),
    /data_batch_1\.bin record 1 has label 10, but batches\.meta\.txt lists 10 classes/,
  );
});

Deno.test("cifar binary rejects unsafe member", async () => {
  const fixture = await makeCifarBinaryFixture({ extra: [{ name: "../escape.bin", data: "x" }] });
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3 }),
    /"\.\.\/escape\.bin" with a "\.\." segment/,
  );
});

Deno.test("cifar binary passes caps to tar reader", async () => {
  const fixture = await makeCifarBinaryFixture();
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3, maxMembers: 4 }),
    /maxMembers/,
  );
  await assert.rejects(
    readCifarBinaryArchive(fixture.archive, { expectedMd5: fixture.md5, recordsPerBatch: 3, maxTotalBytes: 1000 }),
    /maxTotalBytes/,
  );
});

Deno.test("cifar binary rejects non-archive bytes", async () => {
  const bytes = new TextEncoder().encode("<html>not found</html>");
  await assert.rejects(readCifarBinaryArchive(bytes, { expectedMd5: md5Hex(bytes) }), /Failed to read archive/);
  const duplicate = await makeTar([{ name: "a/test_batch.bin", data: "" }, { name: "b/test_batch.bin", data: "" }]);
  await assert.rejects(
    readCifarBinaryArchive(duplicate, { expectedMd5: md5Hex(duplicate) }),
    /contains test_batch\.bin twice/,
  );
});
