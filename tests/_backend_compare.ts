/**
 * Helpers for tests that run one computation on the native and on the wasm
 * backend and compare the outputs.
 *
 * Importing this module sets up both backends: native first (when g++ and
 * oneDNN are installed), then wasm, which stays active. Tests pass
 * `ignore: nativeUnavailable !== null` to skip where native cannot load.
 *
 * @example
 * ```ts
 * const [native, wasm] = await computeOnBoth(() => tf.add(tf.tensor(a), tf.tensor(b)));
 * assertClose("Add", native[0], wasm[0], 0);
 * ```
 * @module
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { BackendUnavailableError, initBackend } from "../learning/backend/backends.ts";
import type { Random } from "../learning/random.ts";

/** A backend that these tests compare. */
export type ComparedBackend = "native" | "wasm";

/** Shape, dtype and a copy of the values of one output tensor. */
export interface TensorValues {
  shape: number[];
  dtype: tf.DataType;
  values: Float32Array | Int32Array | Uint8Array;
}

async function loadNative(): Promise<string | null> {
  try {
    await initBackend("native");
    return null;
  } catch (error) {
    if (!(error instanceof BackendUnavailableError)) throw error;
    return error.message;
  }
}

// Test runs share the machine's cores with other processes. OpenMP threads
// that spin while they wait then slow every native kernel call: a MixMatch
// step of WideResNet-28-2 on 12 images took 13.7 s with libgomp's default
// policy and 0.4 s with passive waiting (2 cores, load average 3.8).
// libgomp reads the variable when the native library loads.
if (Deno.env.get("OMP_WAIT_POLICY") === undefined) Deno.env.set("OMP_WAIT_POLICY", "passive");

/** Why the native backend could not be loaded here, or null when it is loaded. */
export const nativeUnavailable: string | null = await loadNative();
await initBackend("wasm");
if (nativeUnavailable !== null) console.warn(`Native backend tests are skipped: ${nativeUnavailable}`);

/**
 * Runs `body` inside `tf.tidy` with `backend` active, copies every returned
 * tensor's values, disposes them, and asserts that no tensor leaked.
 *
 * @example
 * ```ts
 * const [sum] = await computeOn("native", () => tf.sum(tf.tensor(values)));
 * ```
 */
export async function computeOn(
  backend: ComparedBackend,
  body: () => tf.Tensor | tf.Tensor[],
): Promise<TensorValues[]> {
  assert.ok(await tf.setBackend(backend), `backend ${backend} failed to initialize`);
  const tensorsBefore = tf.memory().numTensors;
  const result = tf.tidy(body);
  const outputs = Array.isArray(result) ? result : [result];
  const copies = outputs.map((tensor) => ({
    shape: [...tensor.shape],
    dtype: tensor.dtype,
    values: (tensor.dataSync() as Float32Array | Int32Array | Uint8Array).slice(),
  }));
  tf.dispose(outputs);
  assert.equal(tf.memory().numTensors, tensorsBefore, `tensors leaked on ${backend}`);
  return copies;
}

/**
 * Runs `body` on the native backend, then on wasm, and returns both outputs
 * as `[native, wasm]`.
 *
 * @example
 * ```ts
 * const [native, wasm] = await computeOnBoth(() => tf.relu(tf.tensor(values)));
 * ```
 */
export async function computeOnBoth(body: () => tf.Tensor | tf.Tensor[]): Promise<[TensorValues[], TensorValues[]]> {
  const native = await computeOn("native", body);
  const wasm = await computeOn("wasm", body);
  return [native, wasm];
}

/**
 * Returns `size` draws of a normal distribution with mean `mean` and standard
 * deviation `std`, as float32.
 *
 * @example
 * ```ts
 * const x = randomNormal(new Random(1), 2 * 8 * 8 * 3);
 * ```
 */
export function randomNormal(random: Random, size: number, std = 1, mean = 0): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = mean + std * random.normal();
  return values;
}

/**
 * Returns max |actual - expected| / max |expected| over the finite entries,
 * or the absolute maximum difference when every expected entry is 0.
 *
 * @example
 * ```ts
 * maxRelativeError([1, 2.5], [1, 2]); // 0.25
 * ```
 */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, "value count");
  let maxDifference = 0;
  let maxExpected = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(expected[i])) continue;
    maxDifference = Math.max(maxDifference, Math.abs(actual[i] - expected[i]));
    maxExpected = Math.max(maxExpected, Math.abs(expected[i]));
  }
  return maxExpected === 0 ? maxDifference : maxDifference / maxExpected;
}

/**
 * Asserts equal shapes and dtypes, NaN and infinity in the same places, and
 * {@link maxRelativeError} at most `tolerance`. Returns the error.
 *
 * @example
 * ```ts
 * const error = assertClose("Conv2D 3x3", native[0], wasm[0], 1e-5);
 * ```
 */
export function assertClose(label: string, actual: TensorValues, expected: TensorValues, tolerance: number): number {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${label}: dtype`);
  for (let i = 0; i < expected.values.length; i++) {
    if (Number.isFinite(expected.values[i])) continue;
    assert.ok(
      Object.is(actual.values[i], expected.values[i]),
      `${label}: value ${i} is ${actual.values[i]}, expected ${expected.values[i]}`,
    );
  }
  const error = maxRelativeError(actual.values, expected.values);
  assert.ok(error <= tolerance, `${label}: max relative error ${error.toExponential(2)} > ${tolerance}`);
  return error;
}

/**
 * Asserts equal shapes and dtypes and identical values: NaN where expected
 * is NaN, and the same sign of each zero.
 *
 * @example
 * ```ts
 * assertIdentical("Neg", native[0], wasm[0]);
 * ```
 */
export function assertIdentical(label: string, actual: TensorValues, expected: TensorValues): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${label}: dtype`);
  assert.equal(actual.values.length, expected.values.length, `${label}: value count`);
  for (let i = 0; i < expected.values.length; i++) {
    const a = actual.values[i];
    const b = expected.values[i];
    const same = Number.isNaN(b) ? Number.isNaN(a) : Object.is(a, b);
    if (!same) {
      assert.fail(`${label}: value ${i} is ${Object.is(a, -0) ? "-0" : a}, expected ${Object.is(b, -0) ? "-0" : b}`);
    }
  }
}

/**
 * Collects the worst error per kernel family so a test can log its margins.
 *
 * @example
 * ```ts
 * const worst = new WorstErrors();
 * worst.record("Conv2D", 3e-7);
 * console.log(worst.summary());
 * ```
 */
export class WorstErrors {
  #worst = new Map<string, { error: number; tolerance: number }>();

  record(family: string, error: number, tolerance: number): void {
    const previous = this.#worst.get(family);
    if (previous === undefined || error > previous.error) this.#worst.set(family, { error, tolerance });
  }

  summary(): string {
    return [...this.#worst]
      .map(([family, { error, tolerance }]) =>
        `${family} ${error.toExponential(1)} (tolerance ${tolerance.toExponential(0)})`
      )
      .join(", ");
  }
}
