import assert from "node:assert/strict";
import { cosineLearningRate, emaDecay, mixmatchLambdaU } from "../learning/optim/schedules.ts";
import { goldenDir, readManifest } from "./_golden.ts";

const noGolden = goldenDir() === null;

function assertRelClose(actual: number, expected: number, tolerance: number, what: string): void {
  const scale = Math.max(Math.abs(expected), Number.MIN_VALUE);
  const error = Math.abs(actual - expected) / scale;
  assert.ok(
    expected === 0 ? actual === 0 : error <= tolerance,
    `${what}: got ${actual}, expected ${expected} (relative error ${error})`,
  );
}

Deno.test({
  name: "cosine learning rate matches TorchSSL",
  ignore: noGolden,
  fn() {
    const manifest = readManifest("schedules");
    let checked = 0;
    for (const [total, rows] of Object.entries(manifest.lr as Record<string, { step: number; lr: number }[]>)) {
      for (const { step, lr } of rows) {
        assertRelClose(cosineLearningRate(step, Number(total)), lr, 1e-12, `lr(step ${step}, total ${total})`);
        checked++;
      }
    }
    assert.equal(checked, 12);
  },
});

Deno.test({
  name: "mixmatch lambda_u ramp matches TorchSSL",
  ignore: noGolden,
  fn() {
    const manifest = readManifest("schedules");
    let checked = 0;
    for (
      const [key, rows] of Object.entries(manifest.lambda_u as Record<string, { step: number; lambda_u: number }[]>)
    ) {
      const match = /total=(\d+), ramp_up=([\d./]+)/.exec(key);
      assert.ok(match !== null, `unexpected lambda_u key "${key}"`);
      const total = Number(match[1]);
      const rampUp = match[2] === "1/64" ? 1 / 64 : Number(match[2]);
      for (const { step, lambda_u } of rows) {
        assertRelClose(mixmatchLambdaU(step, total, 100, rampUp), lambda_u, 1e-12, `lambda_u(${key}, step ${step})`);
        checked++;
      }
    }
    assert.equal(checked, 24);
  },
});

Deno.test("mixmatch lambda_u is linear up to the ramp end", () => {
  assert.equal(mixmatchLambdaU(0, 20000), 0);
  for (const step of [1, 100, 2000, 4000, 7999]) {
    assertRelClose(mixmatchLambdaU(step, 20000), 100 * step / 8000, 1e-15, `lambda_u(${step})`);
  }
  assert.equal(mixmatchLambdaU(8000, 20000), 100);
  assert.equal(mixmatchLambdaU(8001, 20000), 100);
  assert.equal(mixmatchLambdaU(4000, 20000, 75, 0.4), 37.5);
});

Deno.test("cosine learning rate edge cases", () => {
  assert.equal(cosineLearningRate(0, 1000), 0.03);
  // With 0.5 cycles the rate reaches 0 at the last step and the max(0, ·) clamps past it.
  assert.ok(Math.abs(cosineLearningRate(1000, 1000, 0.1, 0.5)) < 1e-17);
  assert.equal(cosineLearningRate(3000, 1000, 0.1, 0.5), 0);
  assertRelClose(cosineLearningRate(500, 1000, 0.1, 0.5), 0.1 * Math.SQRT1_2, 1e-15, "half way (cos π/4)");
  assert.throws(() => cosineLearningRate(-1, 1000), /step must be/);
  assert.throws(() => cosineLearningRate(0, 0), /totalSteps must be/);
});

Deno.test("ema decay with and without warm-up", () => {
  assert.equal(emaDecay(0, 0.999, false), 0.999);
  assert.equal(emaDecay(12345, 0.999, false), 0.999);
  assert.equal(emaDecay(0, 0.999, true), 0.1);
  assert.equal(emaDecay(10, 0.999, true), 11 / 20);
  assert.equal(emaDecay(1_000_000, 0.999, true), 0.999);
  assert.throws(() => emaDecay(-1, 0.999, true), /step must be/);
  assert.throws(() => emaDecay(0, 1.5, true), /decay must be/);
});
