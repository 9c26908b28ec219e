import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import {
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
  wasmTrainingKernelsRegistered,
} from "../learning/backend/wasm_kernels.ts";
import {
  cpuTrainingKernelsRegistered,
  registerCpuTrainingKernels,
  unregisterCpuTrainingKernels,
} from "../learning/backend/cpu_kernels.ts";
import { assertNoTensorLeak } from "../learning/backend/memory.ts";
import { Random } from "../learning/random.ts";

type Shape4D = [number, number, number, number];
type Pad = "same" | "valid" | number | [[0, 0], [number, number], [number, number], [0, 0]];

interface ConvCase {
  label: string;
  xShape: Shape4D;
  filterShape: Shape4D;
  strides: [number, number];
  pad: Pad;
}

/** Runs `body` with `backendName` active, then makes the previous backend (if any) active again. */
async function onBackend<T>(backendName: string, body: () => T | Promise<T>): Promise<T> {
  const previous: string | null = tf.getBackend() ?? null;
  assert.ok(await tf.setBackend(backendName), `backend ${backendName} failed to initialize`);
  try {
    return await body();
  } finally {
    if (previous !== null) await tf.setBackend(previous);
  }
}

/** Runs `body` with the tfjs-backend-cpu package's own gradient kernels registered. */
async function withOriginalCpuKernels<T>(body: () => T | Promise<T>): Promise<T> {
  const wasRegistered = cpuTrainingKernelsRegistered();
  unregisterCpuTrainingKernels();
  try {
    return await body();
  } finally {
    if (wasRegistered) registerCpuTrainingKernels();
  }
}

function randomValues(rng: Random, size: number): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = rng.normal();
  return values;
}

/** max |actual - expected| / max |expected|. */
function relativeError(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

function outputShape(c: ConvCase): Shape4D {
  const info = tf.backend_util.computeConv2DInfo(c.xShape, c.filterShape, c.strides, 1, c.pad);
  return info.outShape as Shape4D;
}

interface Gradients {
  dFilter: Float32Array;
  dInput: Float32Array;
}

/** Both gradient kernels of case `c` on the active backend, from fixed x, filter and dy values. */
function gradientKernels(c: ConvCase, seed: number): Gradients {
  const rng = new Random(seed);
  const yShape = outputShape(c);
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  return tf.tidy(() => {
    const x = tf.tensor4d(randomValues(rng, size(c.xShape)), c.xShape);
    const filter = tf.tensor4d(randomValues(rng, size(c.filterShape)), c.filterShape);
    const dy = tf.tensor4d(randomValues(rng, size(yShape)), yShape);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC", dimRoundingMode: undefined };
    const dFilter = tf.engine().runKernel(
      "Conv2DBackpropFilter",
      { x, dy },
      { ...attrs, filterShape: c.filterShape } as unknown as tf.NamedAttrMap,
    ) as tf.Tensor;
    const dInput = tf.engine().runKernel(
      "Conv2DBackpropInput",
      { dy, filter },
      { ...attrs, inputShape: c.xShape } as unknown as tf.NamedAttrMap,
    ) as tf.Tensor;
    assert.deepEqual(dFilter.shape, c.filterShape, `${c.label}: dW shape`);
    assert.deepEqual(dInput.shape, c.xShape, `${c.label}: dx shape`);
    return { dFilter: dFilter.dataSync() as Float32Array, dInput: dInput.dataSync() as Float32Array };
  });
}

/** The convolutions of WideResNet-28-2, at a small batch and image size. */
const WIDE_RESNET_CASES: ConvCase[] = [
  { label: "3x3 stride 1 pad 1", xShape: [2, 8, 8, 32], filterShape: [3, 3, 32, 32], strides: [1, 1], pad: "same" },
  {
    label: "3x3 stride 1 explicit pad 1",
    xShape: [2, 8, 8, 16],
    filterShape: [3, 3, 16, 32],
    strides: [1, 1],
    pad: [[0, 0], [1, 1], [1, 1], [0, 0]],
  },
  // tf.pad by 1 then 'valid' stride 2: a 10x10 input of which row and column 9 are never read.
  {
    label: "3x3 stride 2 padded valid",
    xShape: [2, 10, 10, 32],
    filterShape: [3, 3, 32, 64],
    strides: [2, 2],
    pad: "valid",
  },
  // Numeric padding, as learning/nn passes it: 1 zero row and column on every side.
  { label: "3x3 stride 1 numeric pad 1", xShape: [2, 8, 8, 16], filterShape: [3, 3, 16, 16], strides: [1, 1], pad: 1 },
  { label: "3x3 stride 2 numeric pad 1", xShape: [2, 8, 8, 16], filterShape: [3, 3, 16, 32], strides: [2, 2], pad: 1 },
  { label: "1x1 stride 1", xShape: [2, 8, 8, 16], filterShape: [1, 1, 16, 32], strides: [1, 1], pad: "valid" },
  { label: "1x1 stride 2", xShape: [2, 8, 8, 32], filterShape: [1, 1, 32, 64], strides: [2, 2], pad: "valid" },
];

/** Random shapes, strides and paddings, including odd sizes, stride 3 and asymmetric padding. */
function randomCases(count: number, seed: number): ConvCase[] {
  const rng = new Random(seed);
  const cases: ConvCase[] = [];
  while (cases.length < count) {
    const kh = 1 + rng.int(4);
    const kw = 1 + rng.int(4);
    const stride = 1 + rng.int(3);
    const xShape: Shape4D = [1 + rng.int(3), 3 + rng.int(9), 3 + rng.int(9), 1 + rng.int(6)];
    const filterShape: Shape4D = [kh, kw, xShape[3], 1 + rng.int(6)];
    const padKind = rng.int(3);
    const pad: Pad = padKind === 0
      ? "same"
      : padKind === 1
      ? "valid"
      : [[0, 0], [rng.int(kh), rng.int(kh)], [rng.int(kw), rng.int(kw)], [0, 0]];
    const c: ConvCase = { label: "", xShape, filterShape, strides: [stride, stride], pad };
    const [, outHeight, outWidth] = outputShape(c);
    if (outHeight < 1 || outWidth < 1) continue;
    c.label = `random x ${xShape} w ${filterShape} stride ${stride} pad ${JSON.stringify(pad)}`;
    cases.push(c);
  }
  return cases;
}

const TOLERANCE = 1e-5;

async function compareWithCpu(cases: ConvCase[], backendName: "wasm" | "cpu"): Promise<void> {
  const expected = await withOriginalCpuKernels(() =>
    onBackend("cpu", () => cases.map((c, i) => gradientKernels(c, i)))
  );
  const actual = await onBackend(backendName, () => cases.map((c, i) => gradientKernels(c, i)));
  cases.forEach((c, i) => {
    const dFilterError = relativeError(actual[i]!.dFilter, expected[i]!.dFilter);
    const dInputError = relativeError(actual[i]!.dInput, expected[i]!.dInput);
    assert.ok(dFilterError < TOLERANCE, `${c.label}: dW relative error ${dFilterError}`);
    assert.ok(dInputError < TOLERANCE, `${c.label}: dx relative error ${dInputError}`);
  });
}

Deno.test("wasm gradient kernels match cpu on WideResNet convolutions", async () => {
  registerWasmTrainingKernels();
  await compareWithCpu(WIDE_RESNET_CASES, "wasm");
});

Deno.test("wasm gradient kernels match cpu on random shapes", async () => {
  registerWasmTrainingKernels();
  await compareWithCpu(randomCases(12, 20240611), "wasm");
});

Deno.test("cpu gradient kernels match the package's kernels", async () => {
  const wasRegistered = cpuTrainingKernelsRegistered();
  registerCpuTrainingKernels();
  try {
    await compareWithCpu([...WIDE_RESNET_CASES.slice(0, 2), ...randomCases(6, 7)], "cpu");
  } finally {
    if (!wasRegistered) unregisterCpuTrainingKernels();
  }
});

Deno.test("wasm input gradient with unequal strides falls back", async () => {
  registerWasmTrainingKernels();
  const c: ConvCase = {
    label: "3x2 stride [2, 3]",
    xShape: [2, 8, 9, 3],
    filterShape: [3, 2, 3, 4],
    strides: [2, 3],
    pad: [[0, 0], [2, 0], [1, 1], [0, 0]],
  };
  await compareWithCpu([c], "wasm");
});

Deno.test("wasm registration is idempotent and reversible", () => {
  registerWasmTrainingKernels();
  registerWasmTrainingKernels();
  assert.ok(wasmTrainingKernelsRegistered());
  unregisterWasmTrainingKernels();
  try {
    assert.equal(wasmTrainingKernelsRegistered(), false);
    assert.equal(tf.getKernel("Conv2DBackpropFilter", "wasm"), undefined, "tfjs-backend-wasm 4.22 has no dW kernel");
    assert.notEqual(tf.getKernel("Conv2DBackpropInput", "wasm"), undefined, "the package's dx kernel is back");
  } finally {
    registerWasmTrainingKernels();
  }
  assert.ok(wasmTrainingKernelsRegistered());
});

/**
 * Computes the gradients of a cross-entropy loss with respect to the input
 * and every weight of a small network with the layer kinds of WideResNet:
 * 3x3 stride 1, explicit pad then 3x3 stride 2 'valid', a 1x1 stride 2
 * shortcut, ReLU and a dense head.
 */
function smallNetGradients(seed: number): Float32Array[] {
  const rng = new Random(seed);
  const tensor = (shape: Shape4D | [number, number]) =>
    tf.tensor(randomValues(rng, shape.reduce((a, b) => a * b, 1)), shape).mul(0.3);
  return tf.tidy(() => {
    const x = tensor([3, 9, 9, 3]);
    const w1 = tensor([3, 3, 3, 8]);
    const w2 = tensor([3, 3, 8, 16]);
    const wShortcut = tensor([1, 1, 8, 16]);
    const dense = tensor([16, 5]);
    const labels = tf.oneHot(tf.tensor1d([0, 3, 4], "int32"), 5);
    const loss = (x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor, wShortcut: tf.Tensor, dense: tf.Tensor) => {
      const h1 = tf.relu(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, "same"));
      const padded = tf.pad(h1, [[0, 0], [1, 1], [1, 1], [0, 0]]) as tf.Tensor4D;
      const h2 = tf.conv2d(padded, w2 as tf.Tensor4D, 2, "valid");
      const shortcut = tf.conv2d(h1 as tf.Tensor4D, wShortcut as tf.Tensor4D, 2, "valid");
      const pooled = tf.mean(tf.relu(tf.add(h2, shortcut)), [1, 2]);
      return tf.losses.softmaxCrossEntropy(labels, tf.matMul(pooled, dense)) as tf.Scalar;
    };
    const grads = tf.grads(loss)([x, w1, w2, wShortcut, dense]);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

Deno.test("wasm tf.grads of a small conv net equals cpu", async () => {
  registerWasmTrainingKernels();
  const expected = await withOriginalCpuKernels(() => onBackend("cpu", () => smallNetGradients(3)));
  const actual = await onBackend("wasm", () => smallNetGradients(3));
  const names = ["x", "w1", "w2", "wShortcut", "dense"];
  names.forEach((name, i) => {
    const error = relativeError(actual[i]!, expected[i]!);
    assert.ok(error < 1e-4, `gradient of ${name}: relative error ${error}`);
  });
});

Deno.test("wasm gradient kernels leak no tensors over 100 calls", async () => {
  registerWasmTrainingKernels();
  await onBackend("wasm", async () => {
    const cases: ConvCase[] = [
      // Large enough that leaked XNNPACK operators (each packs dy as a 1 MiB filter) would grow the heap.
      { label: "3x3 stride 1", xShape: [16, 32, 32, 16], filterShape: [3, 3, 16, 16], strides: [1, 1], pad: "same" },
      { label: "3x3 stride 2", xShape: [4, 17, 17, 8], filterShape: [3, 3, 8, 16], strides: [2, 2], pad: "valid" },
      { label: "1x1 stride 2", xShape: [4, 16, 16, 8], filterShape: [1, 1, 8, 16], strides: [2, 2], pad: "valid" },
    ];
    const wasm = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm;
    for (const c of cases) {
      const x = tf.randomNormal(c.xShape, 0, 1, "float32", 1);
      const filter = tf.randomNormal(c.filterShape, 0, 1, "float32", 2);
      const dy = tf.randomNormal(outputShape(c), 0, 1, "float32", 3);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: "NHWC" } as unknown as tf.NamedAttrMap;
      const call = () => [
        tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, { ...attrs, filterShape: c.filterShape }) as tf.Tensor,
        tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, { ...attrs, inputShape: c.xShape }) as tf.Tensor,
      ];
      tf.dispose(call());
      const heapBefore = wasm.HEAPU8.length;
      await assertNoTensorLeak(call, 100);
      const growth = wasm.HEAPU8.length - heapBefore;
      assert.ok(growth < 32 * 2 ** 20, `${c.label}: wasm heap grew by ${growth} bytes over 100 calls`);
      tf.dispose([x, filter, dy]);
    }
  });
});

Deno.test("wasm gather gradient matches cpu", async () => {
  const { initBackend } = await import("../learning/backend/backends.ts");
  const previous = tf.getBackend();
  const gradientOn = async (backend: "wasm" | "cpu") => {
    await initBackend(backend);
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]);
    const weights = tf.tensor2d([[1, -1, 2], [0.5, 3, -2], [1, 1, 1], [-1, 0, 4]]);
    const gather = (v: tf.Tensor) => tf.sum(tf.mul(tf.gather(v, tf.tensor1d([3, 0, 0, 2], "int32")), weights));
    const grad = tf.grad(gather)(x);
    const values = Array.from(await grad.data());
    tf.dispose([x, weights, grad]);
    return values;
  };
  const cpu = await gradientOn("cpu");
  const wasm = await gradientOn("wasm");
  if (previous) await tf.setBackend(previous);
  assert.deepEqual(wasm, cpu);
  // Row 0 is gathered twice, rows 2 and 3 once, row 1 never.
  assert.deepEqual(cpu, [1.5, 4, -1, 0, 0, 0, -1, 0, 4, 1, -1, 2]);
});
