import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { ExponentialMovingAverage } from "../learning/optim/ema.ts";
import { WideResNet } from "../learning/nn/wide_resnet.ts";

await tf.setBackend("cpu");

function variable(values: number[]): tf.Variable {
  return tf.variable(tf.tensor1d(values), true, `ema_test_${crypto.randomUUID()}`);
}

Deno.test("ema closed form for a constant parameter", () => {
  // Shadow registered at s0 = 2, then the parameter stays at w = -1:
  // after k updates shadow = w + d^k (s0 - w).
  const parameters = new Map([["fc.weight", variable([2, 2])], ["fc.bias", variable([0.5])]]);
  const ema = new ExponentialMovingAverage(parameters, 0.9);
  parameters.get("fc.weight")!.assign(tf.tensor1d([-1, -1]));
  for (let k = 1; k <= 7; k++) {
    ema.update(parameters);
    const shadow = ema.shadow("fc.weight");
    const expected = -1 + Math.pow(0.9, k) * 3;
    for (const value of shadow.dataSync()) {
      assert.ok(Math.abs(value - expected) <= 1e-6, `k = ${k}: got ${value}, expected ${expected}`);
    }
    shadow.dispose();
  }
  const bias = ema.shadow("fc.bias");
  assert.ok(Math.abs(bias.dataSync()[0] - 0.5) <= 1e-7);
  bias.dispose();
  ema.dispose();
  tf.dispose([...parameters.values()]);
});

Deno.test("ema update uses the given decay", () => {
  const parameters = new Map([["w", variable([0])]]);
  const ema = new ExponentialMovingAverage(parameters, 0.999);
  parameters.get("w")!.assign(tf.tensor1d([1]));
  ema.update(parameters, 0.1); // warm-up decay of update 0
  const shadow = ema.shadow("w");
  assert.ok(Math.abs(shadow.dataSync()[0] - 0.9) <= 1e-7);
  shadow.dispose();
  ema.dispose();
  tf.dispose([...parameters.values()]);
});

Deno.test("ema applyTo swaps weights and keeps bn buffers", () => {
  const model = new WideResNet({ depth: 10, widenFactor: 1, seed: 3 });
  const before = model.stateDict();
  const ema = new ExponentialMovingAverage(model.parameters, 0.5);
  for (const parameter of model.parameters.values()) parameter.assign(tf.onesLike(parameter));
  ema.update(model.parameters); // shadow = (1 + w0) / 2
  const restore = ema.applyTo(model.parameters);
  const swapped = model.stateDict();
  for (const [name, tensor] of before) {
    const got = swapped.get(name)!.data;
    const isBuffer = name.endsWith("running_mean") || name.endsWith("running_var");
    for (let i = 0; i < got.length; i++) {
      const expected = isBuffer ? tensor.data[i] : (1 + tensor.data[i]) / 2;
      assert.ok(Math.abs(got[i] - expected) <= 1e-6, `${name}[${i}]: got ${got[i]}, expected ${expected}`);
    }
  }
  restore();
  for (const [name, parameter] of model.parameters) {
    assert.ok(parameter.dataSync().every((value) => value === 1), `${name} restored`);
  }
  ema.dispose();
  model.dispose();
});

Deno.test("ema state round trip", () => {
  const parameters = new Map([["a", variable([1, 2])], ["b", variable([3])]]);
  const ema = new ExponentialMovingAverage(parameters, 0.9);
  parameters.get("a")!.assign(tf.tensor1d([5, 6]));
  ema.update(parameters);
  const saved = ema.state();
  const other = new ExponentialMovingAverage(parameters, 0.9);
  other.loadState(saved);
  const shadow = other.shadow("a");
  assert.deepEqual([...shadow.dataSync()], [...saved.get("a")!.data]);
  assert.ok(Math.abs(saved.get("a")!.data[0] - 1.4) <= 1e-6);
  shadow.dispose();
  assert.throws(() => other.loadState(new Map([["a", saved.get("a")!]])), /"b" is missing/);
  assert.throws(
    () => other.loadState(new Map([["a", { shape: [3], data: new Float32Array(3) }], ["b", saved.get("b")!]])),
    /shape \[3\]/,
  );
  assert.throws(() => other.update(new Map([["a", parameters.get("a")!]])), /do not match/);
  ema.dispose();
  other.dispose();
  tf.dispose([...parameters.values()]);
});
