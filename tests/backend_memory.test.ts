import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { assertNoTensorLeak, countTensors } from "../learning/backend/memory.ts";

async function onCpu(body: () => Promise<void>): Promise<void> {
  const previous: string | null = tf.getBackend() ?? null;
  await tf.setBackend("cpu");
  try {
    await body();
  } finally {
    if (previous !== null) await tf.setBackend(previous);
  }
}

Deno.test("assertNoTensorLeak passes clean code", async () => {
  await onCpu(async () => {
    const x = tf.ones([4, 4]);
    await assertNoTensorLeak(() => tf.matMul(x, x), 10);
    await assertNoTensorLeak(() => tf.tidy(() => tf.relu(x.sub(1)).sum()), 10);
    x.dispose();
  });
});

Deno.test("assertNoTensorLeak reports a kept tensor", async () => {
  await onCpu(async () => {
    const keptTensors: tf.Tensor[] = [];
    await assert.rejects(
      assertNoTensorLeak(() => {
        keptTensors.push(tf.ones([2]).add(1));
        return [];
      }, 5),
      /numTensors (\d+) -> (\d+)/,
    );
    // The warm-up call plus 5 iterations each kept one tensor; the intermediate ones stay too.
    assert.equal(keptTensors.length, 6);
    tf.dispose(keptTensors);
  });
});

Deno.test("assertNoTensorLeak reports a leaked backend buffer", async () => {
  await onCpu(async () => {
    const backend = tf.engine().backend;
    const leaked: tf.DataId[] = [];
    const before = countTensors();
    await assert.rejects(
      assertNoTensorLeak(() => {
        // A kernel-style buffer that no tensor owns: invisible to tf.memory().numTensors.
        leaked.push(backend.write(new Float32Array(4), [4], "float32"));
        return [];
      }, 3),
      /numTensors (\d+) -> \1, numDataIds (\d+) -> (\d+)/,
    );
    assert.equal(countTensors().numDataIds, before.numDataIds + 4);
    for (const dataId of leaked) backend.disposeData(dataId);
    assert.equal(countTensors().numDataIds, before.numDataIds);
  });
});

Deno.test("assertNoTensorLeak rejects invalid iterations", async () => {
  for (const iterations of [0, -1, 1.5, NaN]) {
    await assert.rejects(assertNoTensorLeak(() => [], iterations), /iterations must be a positive integer/);
  }
});
