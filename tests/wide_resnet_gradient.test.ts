/**
 * WideResNet gradients: the custom conv and BN gradients against tfjs'
 * own gradient chain, and the full network against TorchSSL's gradient of a
 * FixMatch supervised loss.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { conv2d, trainBatchNorm } from "../learning/nn/_layers.ts";
import { type BatchNormStats, disposeBatchStats, WideResNet } from "../learning/nn/wide_resnet.ts";
import { normalizeImages } from "../learning/nn/normalize.ts";
import { goldenDir, readArray, readManifest, readPack } from "./_golden.ts";

await tf.setBackend("cpu");

const noGolden = goldenDir() === null;
if (noGolden) console.warn("golden folder not found: the WideResNet gradient test against TorchSSL is skipped");

function maxAbsDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, "length");
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

function l2(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum);
}

/** Converts a tfjs-layout gradient to PyTorch layout (conv OIHW, linear [out, in]). */
function torchLayout(gradient: tf.Tensor): Float32Array {
  return tf.tidy(() => {
    if (gradient.rank === 4) return tf.transpose(gradient, [3, 2, 0, 1]).dataSync() as Float32Array;
    if (gradient.rank === 2) return tf.transpose(gradient).dataSync() as Float32Array;
    return gradient.dataSync() as Float32Array;
  });
}

Deno.test("conv2d gradient equals tfjs pad + conv2d gradient", () => {
  const cases: [number, number, number][] = [[3, 1, 6], [3, 2, 6], [3, 2, 7], [1, 2, 6], [1, 1, 5]];
  for (const [kernelSize, stride, size] of cases) {
    tf.tidy(() => {
      const x = tf.randomNormal([2, size, size, 3], 0, 1, "float32", 1) as tf.Tensor4D;
      const kernel = tf.randomNormal([kernelSize, kernelSize, 3, 4], 0, 1, "float32", 2) as tf.Tensor4D;
      const bias = tf.randomNormal([4], 0, 1, "float32", 3) as tf.Tensor1D;
      const p = (kernelSize - 1) / 2;
      const reference = (a: tf.Tensor4D, k: tf.Tensor4D, b: tf.Tensor1D) =>
        tf.add(tf.conv2d(tf.pad(a, [[0, 0], [p, p], [p, p], [0, 0]]), k, stride, "valid"), b) as tf.Tensor4D;
      const expectedOutput = reference(x, kernel, bias);
      const weights = tf.randomNormal(expectedOutput.shape, 0, 1, "float32", 4);
      const label = `kernel ${kernelSize}, stride ${stride}, size ${size}`;

      const actualOutput = conv2d(x, kernel, bias, stride);
      assert.deepEqual(actualOutput.shape, expectedOutput.shape, label);
      assert.ok(maxAbsDifference(actualOutput.dataSync(), expectedOutput.dataSync()) <= 1e-5, label);

      const expected = tf.grads((a, k, b) =>
        tf.sum(tf.mul(reference(a as tf.Tensor4D, k as tf.Tensor4D, b as tf.Tensor1D), weights))
      )([x, kernel, bias]);
      const actual = tf.grads((a, k, b) =>
        tf.sum(tf.mul(conv2d(a as tf.Tensor4D, k as tf.Tensor4D, b as tf.Tensor1D, stride), weights))
      )([x, kernel, bias]);
      ["dx", "dKernel", "dBias"].forEach((name, i) => {
        const scale = Math.max(1, maxAbs(expected[i].dataSync()));
        assert.ok(maxAbsDifference(actual[i].dataSync(), expected[i].dataSync()) <= 1e-5 * scale, `${label}: ${name}`);
      });
    });
  }
});

Deno.test("trainBatchNorm gradient equals tf.moments chain", () => {
  tf.tidy(() => {
    const x = tf.add(tf.mul(tf.randomNormal([3, 4, 5, 6], 0, 1, "float32", 5), 3), 2) as tf.Tensor4D;
    const gamma = tf.randomUniform([6], 0.5, 1.5, "float32", 6) as tf.Tensor1D;
    const beta = tf.randomNormal([6], 0, 1, "float32", 7) as tf.Tensor1D;
    const weights = tf.randomNormal(x.shape, 0, 1, "float32", 8);
    const reference = (a: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D) => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return tf.batchNorm(a, mean, variance, b, g, 1e-3);
    };

    const { y, mean, variance } = trainBatchNorm(x, gamma, beta, 1e-3);
    assert.ok(maxAbsDifference(y.dataSync(), reference(x, gamma, beta).dataSync()) <= 1e-5);
    const moments = tf.moments(x, [0, 1, 2]);
    assert.ok(maxAbsDifference(mean.dataSync(), moments.mean.dataSync()) <= 1e-5);
    assert.ok(maxAbsDifference(variance.dataSync(), moments.variance.dataSync()) <= 1e-4);
    tf.dispose([mean, variance]);

    const expected = tf.grads((a, g, b) =>
      tf.sum(tf.mul(reference(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D), weights))
    )([x, gamma, beta]);
    const actual = tf.grads((a, g, b) => {
      const result = trainBatchNorm(a as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
      tf.dispose([result.mean, result.variance]);
      return tf.sum(tf.mul(result.y, weights));
    })([x, gamma, beta]);
    ["dx", "dGamma", "dBeta"].forEach((name, i) => {
      const scale = Math.max(1, maxAbs(expected[i].dataSync()));
      assert.ok(maxAbsDifference(actual[i].dataSync(), expected[i].dataSync()) <= 1e-5 * scale, name);
    });
  });
});

Deno.test("WideResNet gradient equals TorchSSL", { ignore: noGolden }, () => {
  // TorchSSL FixMatch step with p_cutoff 0.95: the mask is all zero, so the
  // gradient is that of the supervised loss alone, over one train-mode forward
  // of cat(labeled, weak, strong) = 20 images.
  const manifest = readManifest("fixmatch_step");
  const variant = manifest.variants.p0_95;
  const images = new Uint8Array(20 * 32 * 32 * 3);
  images.set(readArray("fixmatch_step", "x_lb_uint8"), 0);
  images.set(readArray("fixmatch_step", "x_ulb_w_uint8"), 4 * 3072);
  images.set(readArray("fixmatch_step", "x_ulb_s_uint8"), 12 * 3072);
  const labels = tf.oneHot(tf.tensor1d(Array.from(readArray("fixmatch_step", "y_lb")), "int32"), 10);

  const model = new WideResNet();
  model.loadStateDict(readPack("wrn28_2_forward", "weights"));
  const x = normalizeImages(images, 20);
  let stats: BatchNormStats[] = [];
  let logitsValues: ArrayLike<number> = [];
  const started = performance.now();
  const { value, grads } = tf.variableGrads(() => {
    const { logits, batchStats } = model.apply(x, true);
    stats = batchStats;
    logitsValues = logits.dataSync();
    const labeledLogits = tf.slice(logits, [0, 0], [4, 10]);
    return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(labeledLogits)), 1))) as tf.Scalar;
  }, [...model.parameters.values()]);
  const gradients = model.parameterGradients(grads);
  const torchGradients = new Map([...gradients].map(([name, g]) => [name, torchLayout(g)]));
  console.log(
    `train-mode forward + backward of 20 images on cpu: ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );

  try {
    assert.ok(maxAbsDifference(logitsValues, readArray("fixmatch_step", "logits_p0_95")) <= 1e-5, "logits");
    assert.ok(Math.abs(value.dataSync()[0] - variant.sup_loss) <= 1e-6, `loss ${value.dataSync()[0]}`);

    // Every parameter gets a gradient except the bn1 whose output TorchSSL discards.
    const withoutGradient = [...model.parameters.keys()].filter((name) => !gradients.has(name));
    assert.deepEqual(withoutGradient, [
      "block2.layer.0.bn1.weight",
      "block2.layer.0.bn1.bias",
      "block3.layer.0.bn1.weight",
      "block3.layer.0.bn1.bias",
    ]);

    // Conv biases that feed a train-mode BN (directly or through the residual
    // stream) have an exact gradient of 0, so only float32 rounding remains.
    const zeroGradient = new Set<string>(manifest.zero_gradient_tensors.names);
    assert.equal(zeroGradient.size, 18);
    for (const name of zeroGradient) {
      assert.ok(
        maxAbs(torchGradients.get(name)!) <= 1e-6,
        `${name}: max |gradient| ${maxAbs(torchGradients.get(name)!)}`,
      );
    }

    // Full gradients of 13 tensors. A few BN outputs lie within float32
    // rounding of the LeakyReLU kink, where the derivative jumps from 0.1 to 1,
    // so the bound is relative to the tensor's largest gradient.
    for (const [name, expected] of readPack("fixmatch_step", "grad_subset_p0_95")) {
      if (zeroGradient.has(name)) continue;
      const difference = maxAbsDifference(torchGradients.get(name)!, expected.data);
      assert.ok(
        difference <= 1e-2 * maxAbs(expected.data),
        `${name}: max |difference| ${difference}, max |gradient| ${maxAbs(expected.data)}`,
      );
    }

    // L2 norm of the gradient of every other parameter tensor.
    let squaredError = 0;
    let squaredNorm = 0;
    for (const [name, gradient] of torchGradients) {
      if (zeroGradient.has(name)) continue;
      const expected = variant.per_tensor[name].grad_l2;
      const actual = l2(gradient);
      assert.ok(Math.abs(actual - expected) <= 2e-3 * expected, `${name}: gradient L2 ${actual}, expected ${expected}`);
      squaredError += (actual - expected) ** 2;
      squaredNorm += expected ** 2;
    }
    assert.ok(
      Math.sqrt(squaredError / squaredNorm) <= 5e-4,
      `relative error of the gradient norms ${Math.sqrt(squaredError / squaredNorm)}`,
    );
  } finally {
    disposeBatchStats(stats);
    tf.dispose([x, labels, value, ...Object.values(grads)]);
    model.dispose();
  }
});
