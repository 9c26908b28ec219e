import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  crossEntropy,
  maskedPseudoLabelCrossEntropy,
  softCrossEntropy,
  softmaxMeanSquaredError,
  stopGradient,
} from "../learning/algorithms/losses.ts";

await tf.setBackend("cpu");

const LN2 = Math.log(2);
const LN3 = Math.log(3);

function assertScalar(x: tf.Scalar, expected: number, what: string, tolerance = 1e-6): void {
  const value = x.dataSync()[0];
  x.dispose();
  assert.ok(Math.abs(value - expected) <= tolerance, `${what}: got ${value}, expected ${expected}`);
}

Deno.test("cross entropy with hard labels", () => {
  // Row 0: softmax [1/2, 1/2], label 1 -> ln 2. Row 1: softmax [3/4, 1/4], label 0 -> ln(4/3).
  const logits = tf.tensor2d([[0, 0], [LN3, 0]]);
  const labels = tf.tensor1d([1, 0], "int32");
  assertScalar(crossEntropy(logits, labels), (LN2 + Math.log(4 / 3)) / 2, "mean");
  assertScalar(crossEntropy(logits, labels, "sum"), LN2 + Math.log(4 / 3), "sum");
  assert.throws(() => crossEntropy(logits, tf.tensor1d([1], "int32")), /expected logits \[N, C\]/);
  tf.dispose([logits, labels]);
});

Deno.test("cross entropy with soft targets", () => {
  const logits = tf.tensor2d([[0, 0], [LN3, 0]]);
  const targets = tf.tensor2d([[0.25, 0.75], [0.5, 0.5]]);
  const row0 = LN2;
  const row1 = 0.5 * Math.log(4 / 3) + 0.5 * Math.log(4);
  assertScalar(softCrossEntropy(logits, targets), (row0 + row1) / 2, "mean");
  assertScalar(softCrossEntropy(logits, targets, "sum"), row0 + row1, "sum");
  tf.dispose([logits, targets]);
});

Deno.test("masked pseudo-label loss averages over all", () => {
  const logits = tf.tensor2d([[0, 0], [LN3, 0], [0, LN3]]);
  const pseudoLabels = tf.tensor1d([1, 0, 1], "int32");
  const mask = tf.tensor1d([1, 0, 1]);
  // Accepted rows: ln 2 and ln(4/3); the rejected row counts in the denominator.
  assertScalar(maskedPseudoLabelCrossEntropy(logits, pseudoLabels, mask), (LN2 + Math.log(4 / 3)) / 3, "mean");
  assertScalar(maskedPseudoLabelCrossEntropy(logits, pseudoLabels, tf.zeros([3])), 0, "all rejected");

  const grad = tf.grad((z: tf.Tensor) => maskedPseudoLabelCrossEntropy(z as tf.Tensor2D, pseudoLabels, mask))(logits);
  const rows = grad.arraySync() as number[][];
  assert.ok(rows[1].every((value) => value === 0), `rejected row has no gradient: ${rows[1]}`);
  // d/dz of CE/3 = (softmax - onehot) / 3; row 0: ([1/2, 1/2] - [0, 1]) / 3.
  assert.ok(Math.abs(rows[0][0] - 1 / 6) <= 1e-7, `row 0 gradient ${rows[0]}`);
  assert.ok(Math.abs(rows[0][1] + 1 / 6) <= 1e-7, `row 0 gradient ${rows[0]}`);
  tf.dispose([logits, pseudoLabels, mask, grad]);
});

Deno.test("softmax mean squared error by hand", () => {
  const logits = tf.tensor2d([[0, 0], [LN3, 0]]);
  const targets = tf.tensor2d([[1, 0], [0, 1]]);
  // Row 0: (0.5 - 1)^2 + 0.5^2 = 0.5. Row 1: 0.75^2 + 0.75^2 = 1.125. Mean over 4 elements.
  assertScalar(softmaxMeanSquaredError(logits, targets), (0.5 + 1.125) / 4, "mean");
  assertScalar(softmaxMeanSquaredError(logits, targets, "sum"), 0.5 + 1.125, "sum");
  tf.dispose([logits, targets]);
});

Deno.test("stop gradient blocks the gradient", () => {
  const x = tf.tensor1d([2, -3]);
  // d/dx sum(stop(x) * x) = stop(x) = x, not 2x.
  const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(stopGradient(v), v)))(x);
  assert.deepEqual([...grad.dataSync()], [2, -3]);
  const value = stopGradient(x);
  assert.deepEqual([...value.dataSync()], [2, -3]);
  tf.dispose([x, grad, value]);
});
