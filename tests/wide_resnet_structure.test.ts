/**
 * WideResNet-28-2 structure: parameter count, TorchSSL names, shapes and
 * order, weight layouts, state_dict loading and the initialisation.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { disposeBatchStats, WideResNet } from "../learning/nn/wide_resnet.ts";
import { goldenDir, readPack } from "./_golden.ts";

await tf.setBackend("cpu");

const noGolden = goldenDir() === null;
if (noGolden) console.warn("golden folder not found: golden WideResNet structure tests are skipped");

function standardDeviation(values: Float32Array): { mean: number; std: number } {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  return { mean, std: Math.sqrt(squares / values.length) };
}

Deno.test("WideResNet parameter and buffer counts", () => {
  const model = new WideResNet();
  try {
    assert.equal(model.parameterCount(), 1_469_642);
    assert.equal(model.parameters.size, 108);
    assert.equal(model.buffers.size, 50);
    assert.equal(model.weightDecayNames.size, 29);
    for (const name of model.weightDecayNames) {
      assert.ok(name.endsWith(".weight"), name);
      assert.ok(!name.includes("bn"), name);
    }
    assert.ok(model.weightDecayNames.has("fc.weight"));
    assert.ok(model.weightDecayNames.has("block2.layer.0.convShortcut.weight"));
  } finally {
    model.dispose();
  }
});

Deno.test("WideResNet tfjs layouts of parameters", () => {
  const model = new WideResNet();
  try {
    assert.deepEqual(model.parameters.get("conv1.weight")!.shape, [3, 3, 3, 16]);
    assert.deepEqual(model.parameters.get("block2.layer.0.convShortcut.weight")!.shape, [1, 1, 32, 64]);
    assert.deepEqual(model.parameters.get("block3.layer.3.conv2.weight")!.shape, [3, 3, 128, 128]);
    assert.deepEqual(model.parameters.get("fc.weight")!.shape, [128, 10]);
    assert.deepEqual(model.buffers.get("bn1.running_var")!.shape, [128]);
    for (const variable of model.buffers.values()) assert.equal(variable.trainable, false);
    for (const variable of model.parameters.values()) assert.equal(variable.trainable, true);
  } finally {
    model.dispose();
  }
});

Deno.test("WideResNet rejects invalid options", () => {
  assert.throws(() => new WideResNet({ depth: 27 }), /depth must be 6n \+ 4/);
  assert.throws(() => new WideResNet({ widenFactor: 0 }), /widenFactor/);
  assert.throws(() => new WideResNet({ bnMomentum: 0.999 + 1 }), /bnMomentum/);
});

Deno.test("WideResNet names and shapes equal TorchSSL state_dict", { ignore: noGolden }, () => {
  const golden = readPack("wrn28_2_forward", "weights");
  const model = new WideResNet();
  try {
    const state = model.stateDict();
    assert.deepEqual([...state.keys()], [...golden.keys()]);
    for (const [name, tensor] of golden) {
      assert.deepEqual(state.get(name)!.shape, tensor.shape, name);
      const isParameter = tensor.kind === "parameter";
      assert.equal(model.parameters.has(name), isParameter, name);
      assert.equal(model.buffers.has(name), !isParameter, name);
    }
    const parameterOrder = [...golden].filter(([, t]) => t.kind === "parameter").map(([name]) => name);
    assert.deepEqual([...model.parameters.keys()], parameterOrder);
    const decayed = [...golden].filter(([, t]) => (t.weight_decay ?? 0) > 0).map(([name]) => name);
    assert.deepEqual([...model.weightDecayNames].sort(), decayed.sort());
  } finally {
    model.dispose();
  }
});

Deno.test("WideResNet loadStateDict converts layouts", { ignore: noGolden }, () => {
  const golden = readPack("wrn28_2_forward", "weights");
  const model = new WideResNet();
  try {
    model.loadStateDict(golden);

    // Conv OIHW [32, 16, 3, 3] -> HWIO [3, 3, 16, 32]: hwio[h][w][i][o] = oihw[o][i][h][w].
    const torchConv = golden.get("block1.layer.0.conv1.weight")!.data;
    const tfjsConv = model.parameters.get("block1.layer.0.conv1.weight")!.arraySync() as number[][][][];
    for (const [o, i, h, w] of [[0, 0, 0, 0], [31, 15, 2, 2], [5, 7, 1, 2], [17, 3, 2, 0]]) {
      assert.equal(tfjsConv[h][w][i][o], torchConv[((o * 16 + i) * 3 + h) * 3 + w]);
    }

    // Linear [10, 128] -> [128, 10].
    const torchFc = golden.get("fc.weight")!.data;
    const tfjsFc = model.parameters.get("fc.weight")!.arraySync() as number[][];
    for (const [o, i] of [[0, 0], [9, 127], [3, 64]]) assert.equal(tfjsFc[i][o], torchFc[o * 128 + i]);

    assert.deepEqual(model.buffers.get("bn1.running_var")!.dataSync(), golden.get("bn1.running_var")!.data);
  } finally {
    model.dispose();
  }
});

Deno.test("WideResNet stateDict round trip is exact", { ignore: noGolden }, () => {
  const golden = readPack("wrn28_2_forward", "weights");
  const model = new WideResNet({ seed: 5 });
  try {
    model.loadStateDict(golden);
    const state = model.stateDict();
    for (const [name, tensor] of golden) {
      assert.deepEqual(state.get(name)!.data, tensor.data, name);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("WideResNet loadStateDict names a bad tensor", { ignore: noGolden }, () => {
  const golden = readPack("wrn28_2_forward", "weights");
  const model = new WideResNet();
  try {
    const before = model.stateDict();

    const missing = new Map(golden);
    missing.delete("block2.layer.1.bn2.running_var");
    assert.throws(() => model.loadStateDict(missing), /missing tensor "block2\.layer\.1\.bn2\.running_var"/);

    const extra = new Map(golden);
    extra.set("block4.layer.0.conv1.weight", { shape: [1], data: new Float32Array(1) });
    assert.throws(() => model.loadStateDict(extra), /unexpected tensor "block4\.layer\.0\.conv1\.weight"/);

    const misShaped = new Map(golden);
    misShaped.set("fc.weight", { shape: [128, 10], data: golden.get("fc.weight")!.data });
    assert.throws(() => model.loadStateDict(misShaped), /"fc\.weight" has shape \[128,10\], expected \[10,128\]/);

    const shortData = new Map(golden);
    shortData.set("fc.bias", { shape: [10], data: new Float32Array(9) });
    assert.throws(() => model.loadStateDict(shortData), /"fc\.bias" has 9 values, expected 10/);

    // A failed load assigns nothing.
    const after = model.stateDict();
    for (const [name, tensor] of before) assert.deepEqual(after.get(name)!.data, tensor.data, name);

    // PyTorch's num_batches_tracked counters are accepted and ignored.
    const withCounters = new Map(golden);
    withCounters.set("bn1.num_batches_tracked", { shape: [], data: new Float32Array([0]) });
    model.loadStateDict(withCounters);
    assert.deepEqual(model.stateDict().get("fc.weight")!.data, golden.get("fc.weight")!.data);
  } finally {
    model.dispose();
  }
});

Deno.test("WideResNet initialisation statistics", () => {
  const model = new WideResNet({ seed: 3 });
  try {
    const state = model.stateDict();
    let convWeights = 0;
    for (const [name, { shape, data }] of state) {
      if (name.endsWith(".weight") && shape.length === 4) {
        convWeights++;
        const [outChannels, inChannels, kh, kw] = shape;
        const expectedStd = Math.sqrt(2 / (outChannels * kh * kw));
        const { mean, std } = standardDeviation(data);
        // The sample std of n normal draws has a relative standard error of 1 / sqrt(2n).
        const tolerance = 5 / Math.sqrt(2 * data.length);
        assert.ok(Math.abs(std / expectedStd - 1) < tolerance, `${name}: std ${std}, expected ${expectedStd}`);
        assert.ok(Math.abs(mean) < 5 * expectedStd / Math.sqrt(data.length), `${name}: mean ${mean}`);

        const bias = state.get(name.replace(/weight$/, "bias"))!.data;
        const bound = 1 / Math.sqrt(inChannels * kh * kw);
        assert.ok(bias.every((b) => Math.abs(b) <= bound), `${name}: bias outside +-${bound}`);
        assert.ok(new Set(bias).size === bias.length, `${name}: repeated bias values`);
      }
    }
    assert.equal(convWeights, 28);

    // Scaled by 1 / bound, all 2,032 conv biases are uniform(-1, 1) draws with std 1 / sqrt(3).
    const scaledBiases: number[] = [];
    for (const [name, { shape }] of state) {
      if (!name.endsWith(".weight") || shape.length !== 4) continue;
      const bound = 1 / Math.sqrt(shape[1] * shape[2] * shape[3]);
      for (const b of state.get(name.replace(/weight$/, "bias"))!.data) scaledBiases.push(b / bound);
    }
    assert.equal(scaledBiases.length, 2032);
    const biasStats = standardDeviation(Float32Array.from(scaledBiases));
    assert.ok(Math.abs(biasStats.std * Math.sqrt(3) - 1) < 0.05, `scaled conv bias std ${biasStats.std}`);
    assert.ok(Math.abs(biasStats.mean) < 0.05, `scaled conv bias mean ${biasStats.mean}`);

    const fc = standardDeviation(state.get("fc.weight")!.data);
    const fcStd = Math.sqrt(2 / (128 + 10));
    assert.ok(Math.abs(fc.std / fcStd - 1) < 5 / Math.sqrt(2 * 1280), `fc.weight std ${fc.std}, expected ${fcStd}`);
    assert.ok(state.get("fc.bias")!.data.every((v) => v === 0));

    for (const [name, { data }] of state) {
      if (/bn\d?\.weight$|running_var$/.test(name)) assert.ok(data.every((v) => v === 1), name);
      if (/bn\d?\.bias$|running_mean$/.test(name)) assert.ok(data.every((v) => v === 0), name);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("WideResNet initialisation is seeded", () => {
  const first = new WideResNet({ seed: 11 });
  const again = new WideResNet({ seed: 11 });
  const other = new WideResNet({ seed: 12 });
  try {
    const a = first.stateDict().get("block2.layer.1.conv1.weight")!.data;
    assert.deepEqual(again.stateDict().get("block2.layer.1.conv1.weight")!.data, a);
    assert.notDeepEqual(other.stateDict().get("block2.layer.1.conv1.weight")!.data, a);
  } finally {
    first.dispose();
    again.dispose();
    other.dispose();
  }
});

Deno.test("WideResNet depth 10 width 1 runs", () => {
  // One block per group, and block1 maps 16 -> 16 channels, so it has no convShortcut.
  const model = new WideResNet({ depth: 10, widenFactor: 1, numClasses: 5 });
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 1) as tf.Tensor4D;
  try {
    assert.ok(!model.parameters.has("block1.layer.0.convShortcut.weight"));
    assert.deepEqual(model.parameters.get("block2.layer.0.convShortcut.weight")!.shape, [1, 1, 16, 32]);
    assert.deepEqual(model.parameters.get("fc.weight")!.shape, [64, 5]);

    const train = model.apply(x, true);
    assert.deepEqual(train.logits.shape, [2, 5]);
    // bn1 and bn2 of three blocks plus the final bn1.
    assert.equal(train.batchStats.length, 7);
    model.updateRunningStats(train.batchStats);
    disposeBatchStats(train.batchStats);

    const evaluation = model.apply(x, false);
    assert.deepEqual(evaluation.logits.shape, [2, 5]);
    assert.equal(evaluation.batchStats.length, 0);
    tf.dispose([train.logits, evaluation.logits]);
  } finally {
    x.dispose();
    model.dispose();
  }
});
