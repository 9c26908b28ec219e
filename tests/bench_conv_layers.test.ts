/**
 * Convolution layer list and FLOP counts of the benchmark, against shapes
 * and counts worked out by hand for WRN-28-2 on 32x32 images.
 */

import assert from "node:assert/strict";
import {
  convFlops,
  describeConvShape,
  groupConvShapes,
  TRAINING_PASSES_PER_CONV,
  trainingConvFlops,
  wideResNetConvLayers,
} from "../bench/_conv_layers.ts";

Deno.test("conv layers of WRN-28-2 in forward order", () => {
  const layers = wideResNetConvLayers({ batchSize: 64 });
  assert.equal(layers.length, 28);
  const summary = layers.map((layer) =>
    `${layer.name} ${layer.inHeight} ${layer.inChannels}->${layer.outChannels} k${layer.kernelSize} s${layer.stride} ` +
    `p${layer.padding} ${layer.outHeight}`
  );
  assert.deepEqual(summary.slice(0, 5), [
    "conv1 32 3->16 k3 s1 p1 32",
    "block1.layer.0.conv1 32 16->32 k3 s1 p1 32",
    "block1.layer.0.conv2 32 32->32 k3 s1 p1 32",
    "block1.layer.0.convShortcut 32 16->32 k1 s1 p0 32",
    "block1.layer.1.conv1 32 32->32 k3 s1 p1 32",
  ]);
  assert.deepEqual(summary.slice(10, 14), [
    "block2.layer.0.conv1 32 32->64 k3 s2 p1 16",
    "block2.layer.0.conv2 16 64->64 k3 s1 p1 16",
    "block2.layer.0.convShortcut 32 32->64 k1 s2 p0 16",
    "block2.layer.1.conv1 16 64->64 k3 s1 p1 16",
  ]);
  assert.deepEqual(summary.slice(19, 22), [
    "block3.layer.0.conv1 16 64->128 k3 s2 p1 8",
    "block3.layer.0.conv2 8 128->128 k3 s1 p1 8",
    "block3.layer.0.convShortcut 16 64->128 k1 s2 p0 8",
  ]);
  assert.equal(summary[27], "block3.layer.3.conv2 8 128->128 k3 s1 p1 8");
  assert.ok(layers.every((layer) => layer.batchSize === 64 && layer.inWidth === layer.inHeight));
});

Deno.test("conv FLOP count of one pass", () => {
  const [stem, first] = wideResNetConvLayers({ batchSize: 64 });
  assert.equal(convFlops(stem), 2 * 64 * 32 * 32 * 3 * 3 * 3 * 16);
  assert.equal(convFlops(first), 2 * 64 * 32 * 32 * 3 * 3 * 16 * 32);
  const shortcut = wideResNetConvLayers({ batchSize: 2 }).find((layer) =>
    layer.name === "block3.layer.0.convShortcut"
  )!;
  assert.equal(convFlops(shortcut), 2 * 2 * 8 * 8 * 64 * 128);
});

Deno.test("conv training FLOPs of WRN-28-2", () => {
  // Multiply-accumulates per image, by hand: the stem, then per group the
  // strided first conv1, seven same-size 3x3 convolutions and the 1x1 shortcut.
  const stem = 32 * 32 * 27 * 16;
  const group1 = 32 * 32 * 9 * 16 * 32 + 7 * 32 * 32 * 9 * 32 * 32 + 32 * 32 * 16 * 32;
  const group2 = 16 * 16 * 9 * 32 * 64 + 7 * 16 * 16 * 9 * 64 * 64 + 16 * 16 * 32 * 64;
  const group3 = 8 * 8 * 9 * 64 * 128 + 7 * 8 * 8 * 9 * 128 * 128 + 8 * 8 * 64 * 128;
  const macsPerImage = stem + group1 + group2 + group3;
  assert.equal(macsPerImage, 214_351_872);
  assert.equal(TRAINING_PASSES_PER_CONV, 3);
  assert.equal(trainingConvFlops(wideResNetConvLayers({ batchSize: 64 })), 3 * 2 * 64 * macsPerImage);
  assert.equal(trainingConvFlops(wideResNetConvLayers({ batchSize: 1 })), 3 * 2 * macsPerImage);
});

Deno.test("conv shape groups of WRN-28-2", () => {
  const groups = groupConvShapes(wideResNetConvLayers({ batchSize: 64 }));
  assert.equal(groups.length, 10);
  assert.deepEqual(groups.map((group) => group.names.length), [1, 1, 7, 1, 1, 7, 1, 1, 7, 1]);
  assert.equal(groups.reduce((count, group) => count + group.names.length, 0), 28);
  assert.equal(describeConvShape(groups[0].layer), "64x32x32x3 -> 16, 3x3/1");
  assert.equal(describeConvShape(groups[4].layer), "64x32x32x32 -> 64, 3x3/2");
  assert.deepEqual(groups[2].names, [
    "block1.layer.0.conv2",
    "block1.layer.1.conv1",
    "block1.layer.1.conv2",
    "block1.layer.2.conv1",
    "block1.layer.2.conv2",
    "block1.layer.3.conv1",
    "block1.layer.3.conv2",
  ]);
});

Deno.test("conv layers of a small WideResNet", () => {
  const layers = wideResNetConvLayers({ batchSize: 3, depth: 10, widenFactor: 1, imageSize: 8 });
  assert.deepEqual(layers.map((layer) => [layer.name, layer.inHeight, layer.outHeight]), [
    ["conv1", 8, 8],
    ["block1.layer.0.conv1", 8, 8],
    ["block1.layer.0.conv2", 8, 8],
    ["block2.layer.0.conv1", 8, 4],
    ["block2.layer.0.conv2", 4, 4],
    ["block2.layer.0.convShortcut", 8, 4],
    ["block3.layer.0.conv1", 4, 2],
    ["block3.layer.0.conv2", 2, 2],
    ["block3.layer.0.convShortcut", 4, 2],
  ]);
});

Deno.test("conv layers reject invalid sizes", () => {
  assert.throws(() => wideResNetConvLayers({ batchSize: 0 }), /batchSize must be a positive integer, got 0/);
  assert.throws(() => wideResNetConvLayers({ batchSize: 2, imageSize: 1.5 }), /imageSize must be a positive integer/);
  assert.throws(() => wideResNetConvLayers({ batchSize: 2, depth: 12 }), /depth must be 6n \+ 4/);
});
