/** CIFAR-10 input normalisation against TorchSSL's ToTensor + Normalize output. */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { CIFAR10_MEAN, CIFAR10_STD, normalizeImages } from "../learning/nn/normalize.ts";
import { goldenDir, readArray, readManifest } from "./_golden.ts";

await tf.setBackend("cpu");

const noGolden = goldenDir() === null;
if (noGolden) console.warn("golden folder not found: golden normalisation tests are skipped");

Deno.test("normalizeImages constants equal PyTorch float32", { ignore: noGolden }, () => {
  const settings = readManifest("wrn28_2_forward").settings.normalize;
  assert.deepEqual([...CIFAR10_MEAN], settings.mean_float32);
  assert.deepEqual([...CIFAR10_STD], settings.std_float32);
});

Deno.test("normalizeImages is bit-exact against TorchSSL", { ignore: noGolden }, () => {
  const images = readArray("wrn28_2_forward", "input_uint8") as Uint8Array;
  const expected = readArray("wrn28_2_forward", "input") as Float32Array; // NCHW
  const x = normalizeImages(images, 8);
  const nchw = tf.transpose(x, [0, 3, 1, 2]);
  try {
    assert.deepEqual(x.shape, [8, 32, 32, 3]);
    assert.equal(x.dtype, "float32");
    const actual = nchw.dataSync() as Float32Array;
    let mismatches = 0;
    for (let i = 0; i < expected.length; i++) {
      if (!Object.is(actual[i], expected[i])) mismatches++;
    }
    assert.equal(mismatches, 0, `${mismatches} of ${expected.length} values differ from input.bin`);
  } finally {
    tf.dispose([x, nchw]);
  }
});

Deno.test("normalizeImages hand-computed values", () => {
  // Pixel (0, 128, 255) and non-square 1x2 images.
  const images = new Uint8Array([0, 128, 255, 255, 0, 128]);
  const x = normalizeImages(images, 1, 1, 2);
  try {
    assert.deepEqual(x.shape, [1, 1, 2, 3]);
    const values = x.dataSync();
    const f = Math.fround;
    assert.equal(values[0], f(f(0 - f(125.3 / 255)) / f(63.0 / 255)));
    assert.equal(values[1], f(f(f(128 / 255) - f(123.0 / 255)) / f(62.1 / 255)));
    assert.equal(values[2], f(f(1 - f(113.9 / 255)) / f(66.7 / 255)));
    assert.ok(Math.abs(values[0] - -125.3 / 63.0) < 1e-6);
    assert.ok(Math.abs(values[3] - (255 - 125.3) / 63.0) < 1e-6);
  } finally {
    x.dispose();
  }
});

Deno.test("normalizeImages rejects a wrong byte count", () => {
  assert.throws(() => normalizeImages(new Uint8Array(32 * 32 * 3 - 1), 1), /expected 3072 bytes/);
  assert.throws(() => normalizeImages(new Uint8Array(0), 0), /count must be a positive integer/);
});
