/**
 * Kernels of the native backend against the wasm backend on random inputs.
 * The tests cover convolutions in the WideResNet geometries and around them,
 * matrix products, element-wise ops with the broadcasts that training uses,
 * batch norm, sums, transposes, and the cases that must fall back to the cpu
 * kernels. They also check the pool that recycles native output arrays.
 *
 * Tolerances, for float32 (unit roundoff u = 2^-24 = 6e-8):
 * - element-wise ops, compares, select, transpose and AddN compute the same
 *   single IEEE operation per element on both backends, so the values must
 *   be identical. Exp and Log come from different math libraries (glibc and
 *   the wasm build's), which may differ in the last bit: 3e-7 of the value.
 * - convolutions and matrix products sum K products in another order
 *   (oneDNN against XNNPACK); the error grows about as sqrt(K) u, which for
 *   K <= 1024 here stays far below 1e-5 of the largest output.
 * - FusedBatchNorm folds (x - mean) * gamma / sqrt(var + eps) + beta into
 *   one multiply-add per element, in another order than wasm: 1e-6.
 * - Sum and Mean accumulate in double on native and in float32 on wasm,
 *   whose error is up to n u relative to the sum of |x|: 1e-5 of the
 *   largest output.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { Random } from "../learning/random.ts";
import {
  assertClose,
  assertIdentical,
  computeOn,
  computeOnBoth,
  nativeUnavailable,
  randomNormal,
  WorstErrors,
} from "./_backend_compare.ts";

const ignore = nativeUnavailable !== null;

const CONV_TOLERANCE = 1e-5;
const MATMUL_TOLERANCE = 1e-5;
const TRANSCENDENTAL_TOLERANCE = 3e-7;
const BATCH_NORM_TOLERANCE = 1e-6;
const SUM_TOLERANCE = 1e-5;

type Shape4D = [number, number, number, number];
type ExplicitPad = [[0, 0], [number, number], [number, number], [0, 0]];

interface ConvCase {
  label: string;
  x: Shape4D;
  /** [kh, kw, in, out] */
  filter: Shape4D;
  strides: number | [number, number];
  pad: "same" | "valid" | number | ExplicitPad;
}

/** The convolutions of WideResNet-28-2 (numeric symmetric padding), then the other paddings and shapes. */
const CONV_CASES: ConvCase[] = [
  { label: "3x3 stride 1 pad 1, stem 3->32 at 32x32", x: [1, 32, 32, 3], filter: [3, 3, 3, 32], strides: 1, pad: 1 },
  { label: "3x3 stride 1 pad 1, 32->32 at 32x32", x: [1, 32, 32, 32], filter: [3, 3, 32, 32], strides: 1, pad: 1 },
  { label: "3x3 stride 2 pad 1, 32->64 at 16x16", x: [2, 16, 16, 32], filter: [3, 3, 32, 64], strides: 2, pad: 1 },
  { label: "1x1 stride 2 pad 0, 32->64 at 16x16", x: [2, 16, 16, 32], filter: [1, 1, 32, 64], strides: 2, pad: 0 },
  { label: "1x1 stride 1 pad 0, 13->21", x: [5, 8, 8, 13], filter: [1, 1, 13, 21], strides: 1, pad: 0 },
  { label: "3x3 stride 2 pad 1, 13->7 at 8x8", x: [5, 8, 8, 13], filter: [3, 3, 13, 7], strides: 2, pad: 1 },
  { label: "3x3 stride 2 pad 1, odd 9x9", x: [2, 9, 9, 5], filter: [3, 3, 5, 11], strides: 2, pad: 1 },
  { label: "1x1 stride 2 pad 0, odd 9x9", x: [2, 9, 9, 5], filter: [1, 1, 5, 11], strides: 2, pad: 0 },
  { label: "3x3 stride 1 'same', 7x10", x: [5, 7, 10, 6], filter: [3, 3, 6, 9], strides: 1, pad: "same" },
  { label: "3x3 stride 2 'same', even 8x8", x: [1, 8, 8, 6], filter: [3, 3, 6, 9], strides: 2, pad: "same" },
  { label: "3x3 stride 2 'same', odd 9x7", x: [2, 9, 7, 6], filter: [3, 3, 6, 9], strides: 2, pad: "same" },
  { label: "3x3 stride 1 'valid', 7x10", x: [5, 7, 10, 6], filter: [3, 3, 6, 9], strides: 1, pad: "valid" },
  { label: "3x3 stride 2 'valid', even 8x8", x: [1, 8, 8, 6], filter: [3, 3, 6, 9], strides: 2, pad: "valid" },
  { label: "5x3 strides [2, 1] 'same'", x: [2, 9, 8, 4], filter: [5, 3, 4, 3], strides: [2, 1], pad: "same" },
  {
    label: "3x3 stride 1 explicit pad [1, 2] x [0, 1]",
    x: [2, 7, 9, 5],
    filter: [3, 3, 5, 4],
    strides: 1,
    pad: [[0, 0], [1, 2], [0, 1], [0, 0]],
  },
];

function convOutputShape(c: ConvCase): Shape4D {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad).outShape as Shape4D;
}

function size(shape: number[]): number {
  return shape.reduce((product, d) => product * d, 1);
}

Deno.test({
  name: "native convolutions match wasm",
  ignore,
  fn: async () => {
    const worst = new WorstErrors();
    for (const [index, c] of CONV_CASES.entries()) {
      const random = Random.derive(1, "conv", index);
      const outShape = convOutputShape(c);
      const x = randomNormal(random, size(c.x));
      const filter = randomNormal(random, size(c.filter), 1 / Math.sqrt(c.filter[0] * c.filter[1] * c.filter[2]));
      const bias = randomNormal(random, c.filter[3]);
      const dy = randomNormal(random, size(outShape));
      const [native, wasm] = await computeOnBoth(() => {
        const x4 = tf.tensor4d(x, c.x);
        const filter4 = tf.tensor4d(filter, c.filter);
        const dy4 = tf.tensor4d(dy, outShape);
        return [
          tf.conv2d(x4, filter4, c.strides, c.pad),
          tf.fused.conv2d({ x: x4, filter: filter4, strides: c.strides, pad: c.pad, bias: tf.tensor1d(bias) }),
          tf.conv2dTranspose(dy4, filter4, c.x, c.strides, c.pad),
          tf.engine().runKernel(
            "Conv2DBackpropFilter",
            { x: x4, dy: dy4 },
            { strides: c.strides, pad: c.pad, dataFormat: "NHWC", filterShape: c.filter } as unknown as tf.NamedAttrMap,
          ) as tf.Tensor,
        ];
      });
      const kernels = ["Conv2D", "FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"];
      for (const [k, kernel] of kernels.entries()) {
        const error = assertClose(`${kernel} ${c.label}`, native[k], wasm[k], CONV_TOLERANCE);
        worst.record(kernel, error, CONV_TOLERANCE);
      }
    }
    console.log(`worst relative errors: ${worst.summary()}`);
  },
});

Deno.test({
  name: "native convolutions fall back correctly",
  ignore,
  fn: async () => {
    const random = new Random(2);
    const x = randomNormal(random, 2 * 9 * 9 * 5);
    const filter = randomNormal(random, 3 * 3 * 5 * 4, 0.2);
    const bias = randomNormal(random, 4);
    const worst = new WorstErrors();

    // Dilation 2: the native kernel handles dilation 1 only.
    const [dilatedNative, dilatedWasm] = await computeOnBoth(() =>
      tf.conv2d(tf.tensor4d(x, [2, 9, 9, 5]), tf.tensor4d(filter, [3, 3, 5, 4]), 1, "same", "NHWC", 2)
    );
    worst.record(
      "dilation 2",
      assertClose("Conv2D dilation 2", dilatedNative[0], dilatedWasm[0], CONV_TOLERANCE),
      CONV_TOLERANCE,
    );

    // FusedConv2D with an activation or a bias that is not per channel: the native kernel handles linear only.
    const [fusedNative, fusedWasm] = await computeOnBoth(() => {
      const x4 = tf.tensor4d(x, [2, 9, 9, 5]);
      const filter4 = tf.tensor4d(filter, [3, 3, 5, 4]);
      return [
        tf.fused.conv2d({ x: x4, filter: filter4, strides: 1, pad: 1, bias: tf.tensor1d(bias), activation: "relu" }),
        tf.fused.conv2d({
          x: x4,
          filter: filter4,
          strides: 2,
          pad: 1,
          bias: tf.tensor1d(bias),
          activation: "leakyrelu",
          leakyreluAlpha: 0.1,
        }),
      ];
    });
    worst.record(
      "fused relu",
      assertClose("FusedConv2D relu", fusedNative[0], fusedWasm[0], CONV_TOLERANCE),
      CONV_TOLERANCE,
    );
    worst.record(
      "fused leakyrelu",
      assertClose("FusedConv2D leakyrelu", fusedNative[1], fusedWasm[1], CONV_TOLERANCE),
      CONV_TOLERANCE,
    );

    // NCHW on native against NHWC on wasm, transposed to NCHW.
    const [nchwNative] = await computeOn("native", () => {
      const xNchw = tf.transpose(tf.tensor4d(x, [2, 9, 9, 5]), [0, 3, 1, 2]) as tf.Tensor4D;
      return tf.conv2d(xNchw, tf.tensor4d(filter, [3, 3, 5, 4]), 2, 1, "NCHW");
    });
    const [nhwcWasm] = await computeOn("wasm", () => {
      const y = tf.conv2d(tf.tensor4d(x, [2, 9, 9, 5]), tf.tensor4d(filter, [3, 3, 5, 4]), 2, 1, "NHWC");
      return tf.transpose(y, [0, 3, 1, 2]);
    });
    worst.record("NCHW", assertClose("Conv2D NCHW", nchwNative, nhwcWasm, CONV_TOLERANCE), CONV_TOLERANCE);

    // A float32 tensor cast from int32, which tfjs-backend-cpu stores as the int32 array it was cast from.
    const integers = Int32Array.from(x, (v) => Math.round(4 * v));
    const [castNative, castWasm] = await computeOnBoth(() => {
      const xCast = tf.cast(tf.tensor4d(integers, [2, 9, 9, 5], "int32"), "float32") as tf.Tensor4D;
      return tf.conv2d(xCast, tf.tensor4d(filter, [3, 3, 5, 4]), 1, "valid");
    });
    worst.record(
      "cast input",
      assertClose("Conv2D cast from int32", castNative[0], castWasm[0], CONV_TOLERANCE),
      CONV_TOLERANCE,
    );
    console.log(`relative errors: ${worst.summary()}`);
  },
});

Deno.test({
  name: "native conv with ceil rounding falls back",
  ignore,
  fn: async () => {
    // Rounding the output size up makes the last window read past the input:
    // 6 rows, 3x3 window, stride 2, no padding gives ceil(3 / 2) + 1 = 3 rows,
    // the last of which covers rows 4, 5 and a missing row 6 that counts as 0.
    // The cpu kernel skips the missing row, but oneDNN rejects this geometry.
    const x = Float32Array.from({ length: 36 }, (_, i) => i + 1);
    const [native] = await computeOn(
      "native",
      () => tf.conv2d(tf.tensor4d(x, [1, 6, 6, 1]), tf.ones([3, 3, 1, 1]) as tf.Tensor4D, 2, 0, "NHWC", 1, "ceil"),
    );
    const window = (top: number, left: number): number => {
      let total = 0;
      for (let r = top; r < Math.min(top + 3, 6); r++) {
        for (let c = left; c < Math.min(left + 3, 6); c++) total += x[r * 6 + c];
      }
      return total;
    };
    const expected = [0, 2, 4].flatMap((top) => [0, 2, 4].map((left) => window(top, left)));
    assert.deepEqual(native.shape, [1, 3, 3, 1]);
    assert.deepEqual([...native.values], expected);
  },
});

interface MatMulCase {
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

Deno.test({
  name: "native BatchMatMul matches wasm",
  ignore,
  fn: async () => {
    const cases: MatMulCase[] = [
      { a: [7, 9], b: [9, 11], transposeA: false, transposeB: false },
      { a: [9, 7], b: [9, 11], transposeA: true, transposeB: false },
      { a: [7, 9], b: [11, 9], transposeA: false, transposeB: true },
      { a: [9, 7], b: [11, 9], transposeA: true, transposeB: true },
      { a: [3, 4, 5], b: [3, 5, 6], transposeA: false, transposeB: false },
      { a: [3, 5, 4], b: [3, 6, 5], transposeA: true, transposeB: true },
      { a: [1, 4, 5], b: [3, 5, 6], transposeA: false, transposeB: false },
      { a: [3, 4, 5], b: [1, 6, 5], transposeA: false, transposeB: true },
      { a: [4, 5], b: [3, 5, 6], transposeA: false, transposeB: false },
      { a: [2, 3, 5, 4], b: [5, 6], transposeA: true, transposeB: false },
      { a: [12, 288], b: [288, 10], transposeA: false, transposeB: false },
      { a: [12, 288], b: [12, 10], transposeA: true, transposeB: false },
    ];
    const worst = new WorstErrors();
    for (const [index, c] of cases.entries()) {
      const random = Random.derive(3, "matmul", index);
      const a = randomNormal(random, size(c.a));
      const b = randomNormal(random, size(c.b));
      const [native, wasm] = await computeOnBoth(() =>
        tf.matMul(tf.tensor(a, c.a), tf.tensor(b, c.b), c.transposeA, c.transposeB)
      );
      const label = `BatchMatMul [${c.a}]${c.transposeA ? "^T" : ""} x [${c.b}]${c.transposeB ? "^T" : ""}`;
      worst.record("BatchMatMul", assertClose(label, native[0], wasm[0], MATMUL_TOLERANCE), MATMUL_TOLERANCE);
    }
    console.log(`worst relative error: ${worst.summary()}`);
  },
});

Deno.test({
  name: "native BatchMatMul keeps batch rank",
  ignore,
  fn: async () => {
    // The output batch shape is the broadcast of both batch shapes, leading ones included.
    const cases: MatMulCase[] = [
      { a: [1, 1, 4, 5], b: [3, 5, 6], transposeA: false, transposeB: false },
      { a: [4, 5], b: [1, 1, 5, 6], transposeA: false, transposeB: false },
    ];
    for (const c of cases) {
      const random = new Random(size(c.a));
      const a = randomNormal(random, size(c.a));
      const b = randomNormal(random, size(c.b));
      const [native, wasm] = await computeOnBoth(() => tf.matMul(tf.tensor(a, c.a), tf.tensor(b, c.b)));
      assertClose(`BatchMatMul [${c.a}] x [${c.b}]`, native[0], wasm[0], MATMUL_TOLERANCE);
    }
  },
});

Deno.test({
  name: "native BatchMatMul rejects mismatched batches",
  ignore,
  fn: async () => {
    // Batch shapes [2, 3] and [6] have the same count but do not broadcast.
    await tf.setBackend("native");
    assert.throws(() => tf.tidy(() => tf.matMul(tf.ones([2, 3, 2, 3]), tf.ones([6, 3, 2]))), /broadcast/);
    await tf.setBackend("wasm");
  },
});

/** Operand shapes of binary ops: same shape, scalar, per channel, trailing block, and non-trailing broadcasts. */
const BINARY_SHAPES: [string, number[], number[]][] = [
  ["same shape", [2, 5, 5, 7], [2, 5, 5, 7]],
  ["scalar right", [2, 5, 5, 7], []],
  ["scalar left", [], [2, 5, 5, 7]],
  ["per-channel [C]", [2, 5, 5, 7], [7]],
  ["per-channel [1,1,1,C] left", [1, 1, 1, 7], [2, 5, 5, 7]],
  ["trailing block [W,C]", [2, 5, 5, 7], [5, 7]],
  ["[N,1,1,C] fallback", [2, 1, 1, 7], [2, 5, 5, 7]],
  ["[N,H,W,C] with [N,1,1,C] fallback", [2, 5, 5, 7], [2, 1, 1, 7]],
  ["outer product fallback", [6, 1], [1, 7]],
];

const BINARY_OPS: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
  ["Add", tf.add],
  ["Sub", tf.sub],
  ["Multiply", tf.mul],
  ["RealDiv", tf.div],
  ["SquaredDifference", tf.squaredDifference],
  ["Maximum", tf.maximum],
  ["Minimum", tf.minimum],
];

Deno.test({
  name: "native binary ops match wasm",
  ignore,
  fn: async () => {
    for (const [index, [shapeLabel, aShape, bShape]] of BINARY_SHAPES.entries()) {
      const random = Random.derive(4, "binary", index);
      const a = randomNormal(random, size(aShape));
      const b = randomNormal(random, size(bShape));
      const [native, wasm] = await computeOnBoth(() => {
        const at = tf.tensor(a, aShape);
        const bt = tf.tensor(b, bShape);
        return BINARY_OPS.map(([, op]) => op(at, bt));
      });
      for (const [k, [name]] of BINARY_OPS.entries()) assertIdentical(`${name} ${shapeLabel}`, native[k], wasm[k]);
    }
  },
});

Deno.test({
  name: "native Maximum and Minimum propagate NaN",
  ignore,
  fn: async () => {
    // tfjs-backend-cpu uses Math.max and Math.min, which return NaN when either operand is NaN.
    // (tfjs-backend-wasm 4.22 returns the other operand when the second one is NaN.)
    const a = Float32Array.from([NaN, 1, NaN, -2, 3]);
    const b = Float32Array.from([1, NaN, NaN, 5, -Infinity]);
    const native = await computeOn("native", () => [tf.maximum(a, b), tf.minimum(a, b)]);
    assert.deepEqual([...native[0].values], [NaN, NaN, NaN, 5, 3]);
    assert.deepEqual([...native[1].values], [NaN, NaN, NaN, -2, -Infinity]);
  },
});

/** Inputs of unary ops: random values, then the special values every op must handle. */
function unaryInput(random: Random, positive: boolean): Float32Array {
  const values = randomNormal(random, 4096 + 7);
  if (positive) values.forEach((v, i) => values[i] = Math.abs(v) + 1e-3);
  values.set([0, -0, NaN, Infinity, -Infinity, -1, 1e-30], 4096);
  return values;
}

Deno.test({
  name: "native unary ops match wasm",
  ignore,
  fn: async () => {
    const exact: [string, (x: tf.Tensor) => tf.Tensor, boolean][] = [
      ["Neg", tf.neg, false],
      ["Relu", tf.relu, false],
      ["LeakyRelu", (x) => tf.leakyRelu(x, 0.1), false],
      ["Square", tf.square, false],
      ["Abs", tf.abs, false],
      ["Sqrt", tf.sqrt, true],
      ["Rsqrt", tf.rsqrt, true],
    ];
    const approximate: [string, (x: tf.Tensor) => tf.Tensor, boolean][] = [
      ["Exp", tf.exp, false],
      ["Log", tf.log, true],
    ];
    const worst = new WorstErrors();
    for (const [name, op, positive] of [...exact, ...approximate]) {
      const x = unaryInput(Random.derive(5, name), positive);
      const [native, wasm] = await computeOnBoth(() => op(tf.tensor1d(x)));
      if (exact.some(([exactName]) => exactName === name)) {
        assertIdentical(name, native[0], wasm[0]);
        continue;
      }
      // Relative error per element, as Exp spans many orders of magnitude.
      const [actual, expected] = [native[0].values, wasm[0].values];
      let worstElement = 0;
      for (let i = 0; i < expected.length; i++) {
        if (!Number.isFinite(expected[i]) || expected[i] === 0) {
          assert.ok(Object.is(actual[i], expected[i]), `${name}(${x[i]}) is ${actual[i]}, expected ${expected[i]}`);
          continue;
        }
        const error = Math.abs(actual[i] - expected[i]) / Math.abs(expected[i]);
        assert.ok(error <= TRANSCENDENTAL_TOLERANCE, `${name}(${x[i]}): relative error ${error.toExponential(2)}`);
        worstElement = Math.max(worstElement, error);
      }
      worst.record(name, worstElement, TRANSCENDENTAL_TOLERANCE);
    }
    console.log(`worst relative errors per element: ${worst.summary()}`);
  },
});

Deno.test({
  name: "native LeakyRelu keeps NaN and signed zeros",
  ignore,
  fn: async () => {
    const x = Float32Array.from([NaN, -0, 0, -2, 3, -Infinity, Infinity]);
    const native = await computeOn("native", () => tf.leakyRelu(x, 0.2));
    const expected = [NaN, -0, 0, Math.fround(0.2) * -2, 3, -Infinity, Infinity];
    assertIdentical("LeakyRelu", native[0], { shape: [7], dtype: "float32", values: Float32Array.from(expected) });
  },
});

Deno.test({
  name: "native compares and select match wasm",
  ignore,
  fn: async () => {
    const compares: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
      ["Greater", tf.greater],
      ["GreaterEqual", tf.greaterEqual],
      ["Less", tf.less],
      ["LessEqual", tf.lessEqual],
      ["Equal", tf.equal],
    ];
    const shapes = BINARY_SHAPES.filter(([label]) => !label.includes("fallback"));
    for (const [index, [shapeLabel, aShape, bShape]] of shapes.entries()) {
      const random = Random.derive(6, "compare", index);
      // Values on a grid of 0.5 so that ties occur, plus a NaN.
      const a = Float32Array.from(randomNormal(random, size(aShape)), (v) => Math.round(2 * v) / 2);
      const b = Float32Array.from(randomNormal(random, size(bShape)), (v) => Math.round(2 * v) / 2);
      a[a.length - 1] = NaN;
      const [native, wasm] = await computeOnBoth(() => {
        const at = tf.tensor(a, aShape);
        const bt = tf.tensor(b, bShape);
        const outputs = compares.map(([, op]) => op(at, bt));
        // Select on full-shape operands, as in LeakyRelu's gradient.
        const full = tf.add(at, tf.zerosLike(bt));
        const other = tf.mul(full, -3);
        outputs.push(tf.where(outputs[0] as tf.Tensor, full, other));
        return outputs;
      });
      for (const [k, [name]] of compares.entries()) assertIdentical(`${name} ${shapeLabel}`, native[k], wasm[k]);
      assertIdentical(`Select ${shapeLabel}`, native[compares.length], wasm[compares.length]);
    }
  },
});

Deno.test({
  name: "native FusedBatchNorm matches wasm",
  ignore,
  fn: async () => {
    const random = new Random(7);
    const shape = [4, 6, 6, 13];
    const x = randomNormal(random, size(shape), 2, 0.5);
    const mean = randomNormal(random, 13, 0.5);
    const variance = Float32Array.from(randomNormal(random, 13), (v) => v * v + 0.1);
    const scale = randomNormal(random, 13);
    const offset = randomNormal(random, 13);
    const [native, wasm] = await computeOnBoth(() => {
      const x4 = tf.tensor4d(x, shape as Shape4D);
      return [
        tf.batchNorm(x4, tf.tensor1d(mean), tf.tensor1d(variance), tf.tensor1d(offset), tf.tensor1d(scale), 1e-3),
        tf.batchNorm(x4, tf.tensor1d(mean), tf.tensor1d(variance), undefined, undefined, 1e-3),
        tf.batchNorm(x4, tf.tensor1d(mean), tf.tensor1d(variance), undefined, tf.tensor1d(scale), 1e-5),
        tf.batchNorm(
          x4,
          tf.tensor4d(mean, [1, 1, 1, 13]),
          tf.tensor4d([0.7], [1, 1, 1, 1]),
          tf.tensor4d(offset, [1, 1, 1, 13]),
          tf.tensor4d([1.5], [1, 1, 1, 1]),
          1e-3,
        ),
        // Per-row statistics of full shape [H, W, C]: not per channel, so the cpu kernel runs.
        tf.batchNorm(
          x4,
          tf.tensor3d(x.subarray(0, 6 * 6 * 13), [6, 6, 13]),
          tf.fill([6, 6, 13], 2),
          undefined,
          undefined,
          1e-3,
        ),
      ];
    });
    const labels = [
      "with scale and offset",
      "without scale and offset",
      "scale only",
      "[1,1,1,C] and size-1 variance and scale",
      "[H,W,C]",
    ];
    const worst = new WorstErrors();
    for (const [k, label] of labels.entries()) {
      const error = assertClose(`FusedBatchNorm ${label}`, native[k], wasm[k], BATCH_NORM_TOLERANCE);
      worst.record("FusedBatchNorm", error, BATCH_NORM_TOLERANCE);
    }
    console.log(`worst relative error: ${worst.summary()}`);
  },
});

Deno.test({
  name: "native Sum and Mean match wasm",
  ignore,
  fn: async () => {
    const shape = [8, 6, 10, 7];
    const x = randomNormal(new Random(8), size(shape), 1, 0.3);
    const cases: [string, number | number[] | undefined, boolean][] = [
      ["leading [0]", 0, false],
      ["leading [0, 1, 2]", [0, 1, 2], false],
      ["leading [0, 1, 2] keepDims", [0, 1, 2], true],
      ["trailing [3]", 3, false],
      ["trailing [-1] keepDims", -1, true],
      ["trailing [1, 2, 3] unsorted", [3, 1, 2], false],
      ["middle [1]", 1, false],
      ["middle [1, 2] keepDims", [1, 2], true],
      ["all axes", undefined, false],
      ["all axes keepDims", undefined, true],
      ["[0, 2] fallback", [0, 2], true],
      ["[] fallback", [], false],
    ];
    const worst = new WorstErrors();
    for (const [name, op] of [["Sum", tf.sum], ["Mean", tf.mean]] as const) {
      const [native, wasm] = await computeOnBoth(() => {
        const x4 = tf.tensor(x, shape);
        return [...cases.map(([, axis, keepDims]) => op(x4, axis, keepDims)), op(tf.tensor1d(x))];
      });
      for (const [k, label] of [...cases.map(([label]) => label), "rank 1"].entries()) {
        worst.record(name, assertClose(`${name} ${label}`, native[k], wasm[k], SUM_TOLERANCE), SUM_TOLERANCE);
      }
    }
    console.log(`worst relative errors: ${worst.summary()}`);
  },
});

Deno.test({
  name: "native Transpose and AddN match wasm",
  ignore,
  fn: async () => {
    const cases: [number[], number[]][] = [
      [[37, 45], [1, 0]],
      [[5, 6, 7], [2, 0, 1]],
      [[5, 6, 7], [0, 2, 1]],
      [[3, 8, 8, 13], [0, 3, 1, 2]],
      [[3, 8, 8, 13], [3, 1, 2, 0]],
      [[3, 8, 8, 13], [1, 2, 0, 3]],
      [[2, 3, 4, 5, 6], [4, 2, 0, 3, 1]],
      [[2, 3, 4, 5, 6], [0, 1, 2, 3, 4]],
    ];
    for (const [index, [shape, perm]] of cases.entries()) {
      const x = randomNormal(Random.derive(9, index), size(shape));
      const [native, wasm] = await computeOnBoth(() => tf.transpose(tf.tensor(x, shape), perm));
      assertIdentical(`Transpose [${shape}] by [${perm}]`, native[0], wasm[0]);
    }

    const random = new Random(10);
    const parts = [0, 1, 2].map(() => randomNormal(random, 2 * 5 * 5 * 7));
    const [native, wasm] = await computeOnBoth(() => [
      tf.addN(parts.map((part) => tf.tensor(part, [2, 5, 5, 7]))),
      tf.addN([tf.tensor(parts[0], [2, 5, 5, 7])]),
    ]);
    assertIdentical("AddN of 3", native[0], wasm[0]);
    assertIdentical("AddN of 1", native[1], wasm[1]);
  },
});

Deno.test({
  name: "native int32 ops fall back",
  ignore,
  fn: async () => {
    const random = new Random(11);
    const a = Int32Array.from({ length: 2 * 3 * 4 }, () => random.int(21) - 10);
    const b = Int32Array.from({ length: 4 }, () => random.int(9) + 1);
    const [native, wasm] = await computeOnBoth(() => {
      const at = tf.tensor3d(a, [2, 3, 4], "int32");
      const bt = tf.tensor1d(b, "int32");
      return [
        tf.add(at, bt),
        tf.sub(at, bt),
        tf.mul(at, bt),
        tf.maximum(at, bt),
        tf.minimum(at, bt),
        tf.neg(at),
        tf.abs(at),
        tf.square(at),
        tf.sum(at, [0, 1]),
        tf.sum(at, 2),
        tf.transpose(at, [2, 0, 1]),
        tf.greater(at, bt),
        tf.where(tf.greater(at, bt), at, tf.neg(at)),
        tf.addN([at, at, at]),
      ];
    });
    const labels = [
      "Add",
      "Sub",
      "Multiply",
      "Maximum",
      "Minimum",
      "Neg",
      "Abs",
      "Square",
      "Sum leading",
      "Sum trailing",
      "Transpose",
      "Greater",
      "Select",
      "AddN",
    ];
    for (const [k, label] of labels.entries()) assertIdentical(`${label} int32`, native[k], wasm[k]);

    // Hand-computed checks of the first element of a few outputs.
    assert.equal(native[0].values[0], a[0] + b[0]);
    assert.equal(native[8].values[0], a[0] + a[4] + a[8] + a[12] + a[16] + a[20]);

    // tfjs-backend-wasm has no int32 BatchMatMul, so the native result is checked by hand.
    const product = await computeOn(
      "native",
      () => tf.matMul(tf.tensor2d(a, [6, 4], "int32"), tf.tensor2d(b, [4, 1], "int32")),
    );
    assert.equal(product[0].dtype, "int32");
    const expectedProduct = [0, 1, 2, 3, 4, 5].map((r) =>
      a[4 * r] * b[0] + a[4 * r + 1] * b[1] + a[4 * r + 2] * b[2] + a[4 * r + 3] * b[3]
    );
    assert.deepEqual([...product[0].values], expectedProduct);
  },
});

Deno.test({
  name: "native kernels accept empty tensors",
  ignore,
  fn: async () => {
    const cases: [string, () => tf.Tensor, number[], number[]][] = [
      ["Add [0, 3] + [0, 3]", () => tf.add(tf.zeros([0, 3]), tf.zeros([0, 3])), [0, 3], []],
      ["Multiply [0, 3] * scalar", () => tf.mul(tf.zeros([0, 3]), tf.scalar(2)), [0, 3], []],
      ["Sum of [0, 3] over axis 0", () => tf.sum(tf.zeros([0, 3]), 0), [3], [0, 0, 0]],
      ["Sum of [3, 0] over axis 1", () => tf.sum(tf.zeros([3, 0]), 1), [3], [0, 0, 0]],
      ["BatchMatMul [2, 0] x [0, 3]", () => tf.matMul(tf.zeros([2, 0]), tf.zeros([0, 3])), [2, 3], [0, 0, 0, 0, 0, 0]],
      ["BatchMatMul [0, 2] x [2, 3]", () => tf.matMul(tf.zeros([0, 2]), tf.zeros([2, 3])), [0, 3], []],
    ];
    const failures: string[] = [];
    for (const [label, body, shape, values] of cases) {
      try {
        const [native] = await computeOn("native", body);
        assert.deepEqual(native.shape, shape, `${label}: shape`);
        assert.deepEqual([...native.values], values, `${label}: values`);
      } catch (error) {
        failures.push(`${label}: ${(error as Error).message.split("\n")[0]}`);
      }
    }
    assert.deepEqual(failures, []);
  },
});

/** Returns the values of a large native kernel output, so it comes from the pool (4096 floats or more). */
function pooledInput(seed: number): Float32Array {
  return randomNormal(new Random(seed), 64 * 128);
}

function assertValues(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${label}: value ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Runs native ops of the same size as `pooledInput` until the freed arrays are surely reused. */
function overwriteFreedArrays(): void {
  for (let i = 0; i < 4; i++) {
    const junk = tf.tidy(() => tf.add(tf.fill([64, 128], 1000 + i), tf.scalar(1)));
    junk.dispose();
  }
}

/** Returns `input + 1` computed by the native Add kernel, whose output array comes from the pool. */
function pooledSum(input: Float32Array): tf.Tensor2D {
  return tf.tidy(() => tf.add(tf.tensor2d(input, [64, 128]), tf.scalar(1)) as tf.Tensor2D);
}

Deno.test({
  name: "native pool keeps views and reads",
  ignore,
  fn: async () => {
    await tf.setBackend("native");
    const tensorsBefore = tf.memory().numTensors;
    const input = pooledInput(12);
    const expected = Float32Array.from(input, (v) => Math.fround(v + 1));

    // Outputs that tfjs-backend-cpu makes as views of the parent's array: contiguous slices, split and unstack.
    const parent = pooledSum(input);
    const row = tf.slice(parent, [3, 0], [2, 128]);
    const flat = tf.tidy(() => tf.slice(tf.reshape(parent, [-1]), [17], [300]));
    const [firstHalf, secondHalf] = tf.split(parent, 2, 0);
    const rows = tf.unstack(parent);
    const stridedRows = tf.stridedSlice(parent, [10, 0], [12, 128], [1, 1]);
    const valuesRead = parent.dataSync();
    const valuesAwaited = await parent.data();
    parent.dispose();
    overwriteFreedArrays();

    assertValues("slice rows", row.dataSync(), expected.subarray(3 * 128, 5 * 128));
    assertValues("slice flat", flat.dataSync(), expected.subarray(17, 317));
    assertValues("split", secondHalf.dataSync(), expected.subarray(32 * 128));
    assertValues("unstack", rows[5].dataSync(), expected.subarray(5 * 128, 6 * 128));
    assertValues("stridedSlice", stridedRows.dataSync(), expected.subarray(10 * 128, 12 * 128));
    assertValues("dataSync", valuesRead, expected);
    assertValues("data", valuesAwaited as Float32Array, expected);
    tf.dispose([row, flat, firstHalf, secondHalf, ...rows, stridedRows]);

    // A reshape shares the parent's array, which must stay out of the pool until both are disposed.
    const second = pooledSum(input);
    const reshaped = tf.reshape(second, [128, 64]);
    second.dispose();
    overwriteFreedArrays();
    assertValues("reshape", reshaped.dataSync(), expected);
    reshaped.dispose();

    assert.equal(tf.memory().numTensors, tensorsBefore, "tensors leaked");
    await tf.setBackend("wasm");
  },
});

Deno.test({
  name: "native kernels read small slices at their offset",
  ignore,
  fn: async () => {
    // Below the pool's minimum size, tfjs-backend-cpu's Slice returns a subarray that the native kernel receives.
    const x = randomNormal(new Random(13), 20 * 7);
    const native = await computeOn("native", () => {
      const rows = tf.slice(tf.tensor2d(x, [20, 7]), [5, 0], [3, 7]);
      return [tf.mul(rows, tf.scalar(2)), tf.sum(rows, 0), tf.transpose(rows)];
    });
    const rows = x.subarray(35, 56);
    assertValues("Multiply", native[0].values, Float32Array.from(rows, (v) => 2 * v));
    const columnSums = [0, 1, 2, 3, 4, 5, 6].map((c) => Math.fround(rows[c] + rows[7 + c] + rows[14 + c]));
    for (const [c, expected] of columnSums.entries()) {
      assert.ok(Math.abs(native[1].values[c] - expected) <= 1e-6 * Math.abs(expected) + 1e-7, `Sum column ${c}`);
    }
    assert.equal(native[2].values[1], rows[7]);
  },
});

Deno.test({
  name: "native memory stays flat over repeated ops",
  ignore,
  fn: async () => {
    await tf.setBackend("native");
    const random = new Random(14);
    const x = tf.tensor4d(randomNormal(random, 4 * 16 * 16 * 8), [4, 16, 16, 8]);
    const initialFilter = tf.tensor4d(randomNormal(random, 3 * 3 * 8 * 16, 0.2), [3, 3, 8, 16]);
    const filter = tf.variable(initialFilter);
    const step = (): tf.Scalar =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => {
          const y = tf.leakyRelu(tf.conv2d(x, filter, 1, 1), 0.1);
          const [zeros, ones] = [tf.zeros([16]), tf.ones([16])];
          const normalized = tf.batchNorm(y, tf.mean(y, [0, 1, 2]), ones, zeros, ones, 1e-3);
          return tf.sum(tf.square(tf.slice(normalized, [1, 0, 0, 0], [2, -1, -1, -1])));
        }, [filter]);
        filter.assign(tf.sub(filter, tf.mul(grads[filter.name], 1e-4)) as tf.Tensor4D);
        return value;
      });
    step().dispose();
    const baseline = tf.memory();
    const baseDataIds = tf.engine().backend.numDataIds();
    for (let i = 0; i < 5; i++) {
      step().dispose();
      const memory = tf.memory();
      assert.equal(memory.numTensors, baseline.numTensors, `tensors after step ${i + 2}`);
      assert.equal(memory.numBytes, baseline.numBytes, `bytes after step ${i + 2}`);
      assert.equal(tf.engine().backend.numDataIds(), baseDataIds, `data ids after step ${i + 2}`);
    }
    tf.dispose([x, initialFilter, filter]);
    await tf.setBackend("wasm");
  },
});

Deno.test({
  name: "damaged native library is rebuilt",
  ignore,
  fn: async () => {
    // A copy of the current build, truncated as by a full disk or a killed copy.
    // Loading it as it is would end the process with SIGBUS.
    const { loadNativeLibrary } = await import("../learning/backend/_native_library.ts");
    const built = (await loadNativeLibrary()).path;
    const buildDir = await Deno.makeTempDir();
    try {
      const name = built.split("/").at(-1)!;
      await Deno.copyFile(built, `${buildDir}/${name}`);
      await Deno.copyFile(`${built}.sha256`, `${buildDir}/${name}.sha256`);
      await Deno.truncate(`${buildDir}/${name}`, 50_000);
      const script = `
        import { loadNativeLibrary } from "${new URL("../learning/backend/_native_library.ts", import.meta.url)}";
        const library = await loadNativeLibrary();
        console.log("version", library.symbols.sn_version());
      `;
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--quiet", script],
        env: { SEMISUP_NATIVE_BUILD_DIR: buildDir },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.match(new TextDecoder().decode(output.stdout), /version 1/);
      assert.match(stderr, /does not match its checksum; building it again/);
      assert.ok((await Deno.stat(`${buildDir}/${name}`)).size > 50_000);
    } finally {
      await Deno.remove(buildDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "unusable native build folder is reported",
  ignore,
  fn: async () => {
    const file = await Deno.makeTempFile();
    try {
      const script = `
        import { loadNativeLibrary } from "${new URL("../learning/backend/_native_library.ts", import.meta.url)}";
        try { await loadNativeLibrary(); } catch (error) { console.log(error.name, error.message); }
      `;
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--quiet", script],
        env: { SEMISUP_NATIVE_BUILD_DIR: `${file}/below-a-file` },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      assert.match(stdout, /^NativeLibraryError Could not use the native build folder /);
      assert.match(stdout, /set SEMISUP_NATIVE_BUILD_DIR to a writable folder/);
    } finally {
      await Deno.remove(file);
    }
  },
});

/**
 * Runs `body` in a fresh Deno process whose environment is only PATH, HOME and
 * `env`, and returns its exit code, stdout and stderr.
 */
async function runScript(body: string, env: Record<string, string>): Promise<[number, string, string]> {
  const script = `import { loadNativeLibrary } from "${new URL(
    "../learning/backend/_native_library.ts",
    import.meta.url,
  )}";\n${body}`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return [output.code, decoder.decode(output.stdout), decoder.decode(output.stderr)];
}

Deno.test({
  name: "native threads follow the setting",
  ignore,
  fn: async () => {
    const body = `const library = await loadNativeLibrary(); console.log("threads", library.threads);`;
    const [code, stdout, stderr] = await runScript(body, { SEMISUP_NATIVE_THREADS: "1" });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /threads 1\n/);

    const [badCode, badStdout] = await runScript(
      `try { await loadNativeLibrary(); } catch (error) { console.log(error.message); }`,
      { SEMISUP_NATIVE_THREADS: "abc" },
    );
    assert.equal(badCode, 0);
    assert.match(badStdout, /Invalid SEMISUP_NATIVE_THREADS 'abc': expected a whole number >= 1/);
  },
});

Deno.test({
  name: "native load sets passive OpenMP waits",
  ignore,
  fn: async () => {
    const body = `await loadNativeLibrary(); console.log("policy", Deno.env.get("OMP_WAIT_POLICY"));`;
    const [code, stdout, stderr] = await runScript(body, {});
    assert.equal(code, 0, stderr);
    assert.match(stdout, /policy passive\n/);

    const [userCode, userStdout, userStderr] = await runScript(body, { OMP_WAIT_POLICY: "active" });
    assert.equal(userCode, 0, userStderr);
    assert.match(userStdout, /policy active\n/);
  },
});

Deno.test({
  name: "native cache id names source and threads",
  ignore,
  fn: async () => {
    const { initBackend } = await import("../learning/backend/backends.ts");
    const previous = tf.getBackend();
    try {
      const info = await initBackend("native");
      assert.match(info.cacheId, /^native-[0-9a-f]{16}-\d+t$/);
      const { loadNativeLibrary } = await import("../learning/backend/_native_library.ts");
      const library = await loadNativeLibrary();
      assert.equal(info.cacheId, `native-${library.sourceHash}-${library.threads}t`);
    } finally {
      await tf.setBackend(previous);
    }
  },
});
