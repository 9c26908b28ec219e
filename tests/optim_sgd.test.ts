import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { SGD } from "../learning/optim/sgd.ts";

await tf.setBackend("cpu");

function assertClose(actual: ArrayLike<number>, expected: number[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tolerance,
      `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`,
    );
  }
}

function makeParameters(): Map<string, tf.Variable> {
  return new Map([
    ["conv.weight", tf.variable(tf.tensor1d([1, -2]), true, `sgd_test_${crypto.randomUUID()}`)],
    ["conv.bias", tf.variable(tf.tensor1d([1, -2]), true, `sgd_test_${crypto.randomUUID()}`)],
    ["bn.weight", tf.variable(tf.tensor1d([3]), true, `sgd_test_${crypto.randomUUID()}`)],
  ]);
}

function gradients(values: Record<string, number[]>): Map<string, tf.Tensor> {
  return new Map(Object.entries(values).map(([name, v]) => [name, tf.tensor1d(v)]));
}

Deno.test("sgd first step is w - 1.9 lr (g + wd w)", () => {
  const parameters = makeParameters();
  const sgd = new SGD({ weightDecayNames: new Set(["conv.weight"]), weightDecay: 0.1 });
  const grads = gradients({ "conv.weight": [0.5, 1], "conv.bias": [0.5, 1] });
  sgd.step(parameters, grads, 0.5);
  // d = g + 0.1 w = [0.6, 0.8]; w - 0.5 * 1.9 * d
  assertClose(parameters.get("conv.weight")!.dataSync(), [0.43, -2.76], 1e-6, "decayed weight");
  // no decay: d = g = [0.5, 1]
  assertClose(parameters.get("conv.bias")!.dataSync(), [0.525, -2.95], 1e-6, "bias");
  tf.dispose([...grads.values()]);
  sgd.dispose();
  tf.dispose([...parameters.values()]);
});

Deno.test("sgd nesterov second step by hand", () => {
  const parameters = makeParameters();
  const sgd = new SGD({ weightDecayNames: new Set(["conv.weight"]), weightDecay: 0.1 });
  const first = gradients({ "conv.weight": [0.5, 1], "conv.bias": [0.5, 1] });
  const second = gradients({ "conv.weight": [1, -1], "conv.bias": [1, -1] });
  sgd.step(parameters, first, 0.5);
  sgd.step(parameters, second, 0.5);
  // d = [1.043, -1.276]; buf = 0.9 [0.6, 0.8] + d = [1.583, -0.556];
  // w = [0.43, -2.76] - 0.5 (d + 0.9 buf) = [-0.80385, -1.8718]
  assertClose(parameters.get("conv.weight")!.dataSync(), [-0.80385, -1.8718], 1e-6, "decayed weight");
  // d = [1, -1]; buf = [1.45, -0.1]; w = [0.525, -2.95] - 0.5 [2.305, -1.09]
  assertClose(parameters.get("conv.bias")!.dataSync(), [-0.6275, -2.405], 1e-6, "bias");
  assertClose(sgd.state().get("conv.weight")!.data, [1.583, -0.556], 1e-6, "momentum buffer");
  tf.dispose([...first.values(), ...second.values()]);
  sgd.dispose();
  tf.dispose([...parameters.values()]);
});

Deno.test("sgd classical momentum second step", () => {
  const parameters = makeParameters();
  const sgd = new SGD({ weightDecayNames: new Set(), nesterov: false });
  const first = gradients({ "conv.bias": [0.5, 1] });
  const second = gradients({ "conv.bias": [1, -1] });
  sgd.step(parameters, first, 0.5);
  sgd.step(parameters, second, 0.5);
  // w1 = w0 - 0.5 [0.5, 1] = [0.75, -2.5]; buf = [1.45, -0.1]; w2 = w1 - 0.5 buf
  assertClose(parameters.get("conv.bias")!.dataSync(), [0.025, -2.45], 1e-6, "bias");
  tf.dispose([...first.values(), ...second.values()]);
  sgd.dispose();
  tf.dispose([...parameters.values()]);
});

Deno.test("sgd skips parameters without gradient", () => {
  const parameters = makeParameters();
  const sgd = new SGD({ weightDecayNames: new Set(["bn.weight", "conv.weight"]) });
  const grads = gradients({ "conv.weight": [0, 0] });
  sgd.step(parameters, grads, 0.1);
  assert.deepEqual([...parameters.get("bn.weight")!.dataSync()], [3]);
  assert.deepEqual([...sgd.state().keys()], ["conv.weight"]);
  tf.dispose([...grads.values()]);
  sgd.dispose();
  tf.dispose([...parameters.values()]);
});

Deno.test("sgd state round trip continues identically", () => {
  const runA = makeParameters();
  const runB = makeParameters();
  const decay = new Set(["conv.weight"]);
  const sgdA = new SGD({ weightDecayNames: decay });
  const first = gradients({ "conv.weight": [0.5, 1], "conv.bias": [0.25, -1] });
  const second = gradients({ "conv.weight": [-0.5, 2], "conv.bias": [1, 1] });
  sgdA.step(runA, first, 0.03);
  // Resume in a fresh optimizer from A's weights and exported momentum buffers.
  for (const [name, parameter] of runA) runB.get(name)!.assign(parameter);
  const sgdB = new SGD({ weightDecayNames: decay });
  sgdB.loadState(sgdA.state());
  sgdA.step(runA, second, 0.02);
  sgdB.step(runB, second, 0.02);
  for (const name of runA.keys()) {
    assert.deepEqual([...runB.get(name)!.dataSync()], [...runA.get(name)!.dataSync()], name);
  }
  tf.dispose([...first.values(), ...second.values()]);
  sgdA.dispose();
  sgdB.dispose();
  tf.dispose([...runA.values(), ...runB.values()]);
});

Deno.test("sgd rejects bad input", () => {
  const parameters = makeParameters();
  const sgd = new SGD({ weightDecayNames: new Set() });
  const unknown = gradients({ "fc.weight": [1, 2] });
  assert.throws(() => sgd.step(parameters, unknown, 0.1), /unknown parameter "fc.weight"/);
  const wrongShape = gradients({ "bn.weight": [1, 2] });
  assert.throws(() => sgd.step(parameters, wrongShape, 0.1), /shape/);
  assert.throws(() => sgd.step(parameters, new Map(), Number.NaN), /lr must be/);
  assert.throws(() => new SGD({ weightDecayNames: new Set(), momentum: 0 }), /Nesterov/);
  tf.dispose([...unknown.values(), ...wrongShape.values()]);
  tf.dispose([...parameters.values()]);
});
