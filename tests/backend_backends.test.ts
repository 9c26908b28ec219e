import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  BACKEND_NAMES,
  BackendUnavailableError,
  initBackend,
  parseBackendName,
  WASM_MAX_FORWARD_IMAGES,
} from "../learning/backend/backends.ts";
import { wasmTrainingKernelsRegistered } from "../learning/backend/wasm_kernels.ts";
import { cpuTrainingKernelsRegistered } from "../learning/backend/cpu_kernels.ts";

/** True when `specifier` resolves through deno.json's import map. */
function inImportMap(specifier: string): boolean {
  try {
    import.meta.resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

const TFJS_NODE_INSTALLED = inImportMap("@tensorflow/tfjs-node");
const TFJS_NODE_GPU_INSTALLED = inImportMap("@tensorflow/tfjs-node-gpu");

/** Runs `body`, then makes the backend that was active before (if any) active again. */
async function restoringBackend<T>(body: () => Promise<T>): Promise<T> {
  const previous: string | null = tf.getBackend() ?? null;
  try {
    return await body();
  } finally {
    if (previous !== null) await tf.setBackend(previous);
  }
}

/**
 * Computes the gradient of sum(conv2d(x, w)) with respect to w, which is the
 * sum of x over each window. It reads with `data()` because the webgpu
 * backend's `dataSync` needs a canvas, which Deno lacks.
 */
async function convFilterGradient(): Promise<number[]> {
  const dw = tf.tidy(() => {
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
    const w = tf.ones([2, 2, 1, 1]);
    return tf.grads((w: tf.Tensor) => tf.conv2d(x, w as tf.Tensor4D, 1, "valid").sum())([w])[0]!;
  });
  const values = Array.from(await dw.data());
  dw.dispose();
  return values;
}

Deno.test("parseBackendName accepts every valid name", () => {
  for (const name of BACKEND_NAMES) assert.equal(parseBackendName(name), name);
  assert.equal(parseBackendName(" WASM "), "wasm");
  assert.equal(parseBackendName("TensorFlow-GPU"), "tensorflow-gpu");
});

Deno.test("parseBackendName rejects unknown names", () => {
  for (const value of ["gpu", "", "webgl", "tensorflow_gpu"]) {
    assert.throws(() => parseBackendName(value), (error: Error) => {
      assert.ok(error.message.includes(`'${value}'`), error.message);
      assert.ok(error.message.includes("auto, native, wasm, cpu, tensorflow, tensorflow-gpu, webgpu"), error.message);
      return true;
    });
  }
});

Deno.test("initBackend wasm registers training kernels", async () => {
  await restoringBackend(async () => {
    const info = await initBackend("wasm");
    assert.equal(info.name, "wasm");
    assert.equal(info.tfjsBackend, "wasm");
    assert.equal(tf.getBackend(), "wasm");
    assert.equal(info.version, "4.22.0");
    assert.equal(info.maxForwardImages, WASM_MAX_FORWARD_IMAGES);
    assert.match(info.description, /SIMD on/);
    assert.ok(wasmTrainingKernelsRegistered());
    // Windows of x = [[1,2,3],[4,5,6],[7,8,9]] under a 2x2 filter: dW = [[12,16],[24,28]].
    assert.deepEqual(await convFilterGradient(), [12, 16, 24, 28]);
  });
});

Deno.test("initBackend cpu registers training kernels", async () => {
  await restoringBackend(async () => {
    const info = await initBackend("cpu");
    assert.equal(info.name, "cpu");
    assert.equal(tf.getBackend(), "cpu");
    assert.equal(info.maxForwardImages, Infinity);
    assert.ok(cpuTrainingKernelsRegistered());
    assert.deepEqual(await convFilterGradient(), [12, 16, 24, 28]);
  });
});

Deno.test({
  name: "initBackend tensorflow explains the install",
  ignore: TFJS_NODE_INSTALLED,
  async fn() {
    await restoringBackend(async () => {
      await tf.setBackend("cpu");
      await assert.rejects(initBackend("tensorflow"), (error: Error) => {
        assert.ok(error instanceof BackendUnavailableError);
        assert.match(error.message, /@tensorflow\/tfjs-node 4\.22\.0/);
        assert.match(error.message, /deno add npm:@tensorflow\/tfjs-node@4\.22\.0/);
        assert.match(error.message, /--allow-scripts=npm:@tensorflow\/tfjs-node@4\.22\.0/);
        assert.match(error.message, /--allow-ffi/);
        assert.match(error.message, /--backend wasm works/);
        return true;
      });
      assert.equal(tf.getBackend(), "cpu", "a failed init leaves the active backend alone");
    });
  },
});

Deno.test({
  name: "initBackend tensorflow-gpu explains the install",
  ignore: TFJS_NODE_GPU_INSTALLED,
  async fn() {
    await assert.rejects(initBackend("tensorflow-gpu"), (error: Error) => {
      assert.ok(error instanceof BackendUnavailableError);
      assert.match(error.message, /deno add npm:@tensorflow\/tfjs-node-gpu@4\.22\.0/);
      assert.match(error.message, /CUDA/);
      return true;
    });
  },
});

Deno.test("initBackend auto logs each skipped backend", async () => {
  await restoringBackend(async () => {
    const lines: string[] = [];
    const info = await initBackend("auto", { log: (line) => lines.push(line) });
    assert.ok(["tensorflow-gpu", "tensorflow", "webgpu", "native", "wasm"].includes(info.name), info.name);
    assert.equal(tf.getBackend(), info.tfjsBackend);
    assert.match(lines.at(-1)!, new RegExp(`^Backend auto: using ${info.name} `));
    if (!TFJS_NODE_GPU_INSTALLED) assert.match(lines[0]!, /^Backend auto: skipping tensorflow-gpu: /);
    if (!TFJS_NODE_GPU_INSTALLED && !TFJS_NODE_INSTALLED) {
      assert.match(lines[1]!, /^Backend auto: skipping tensorflow: /);
    }
  });
});

/** The WebGPU adapter here, or null; `auto` must not pick a software one. */
const adapter = await (navigator as Navigator & { gpu?: GPU }).gpu?.requestAdapter() ?? null;
const softwareAdapter = adapter !== null &&
  ((adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader/i.test(adapter.info.description));

Deno.test("initBackend auto falls back from native to wasm in one line", async () => {
  // A fresh process with an empty build folder and a compiler that does not
  // exist, as on a machine without g++.
  const buildDir = await Deno.makeTempDir();
  const script = `
    import { initBackend } from "${new URL("../learning/backend/backends.ts", import.meta.url)}";
    const info = await initBackend("auto", { log: (line) => console.log(line) });
    console.log("chosen:", info.name);
  `;
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      env: { SEMISUP_NATIVE_CXX: "/nonexistent/g++", SEMISUP_NATIVE_BUILD_DIR: buildDir },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    assert.match(stdout, /chosen: wasm/);
    const native = stdout.split("\n").filter((line) => /native/.test(line));
    assert.equal(native.length, 1, stdout);
    assert.match(native[0], /fast CPU path is off: .*apt-get install g\+\+ libdnnl-dev/);
  } finally {
    await Deno.remove(buildDir, { recursive: true });
  }
});

Deno.test({
  name: "initBackend auto skips a software WebGPU adapter",
  ignore: !softwareAdapter || TFJS_NODE_INSTALLED || TFJS_NODE_GPU_INSTALLED,
  async fn() {
    await restoringBackend(async () => {
      const lines: string[] = [];
      const info = await initBackend("auto", { log: (line) => lines.push(line) });
      assert.ok(info.name === "native" || info.name === "wasm", info.name);
      assert.ok(lines.some((line) => /skipping webgpu: .*software adapter/.test(line)), lines.join("\n"));
    });
  },
});

Deno.test({
  name: "initBackend webgpu computes a conv gradient",
  ignore: adapter === null,
  async fn() {
    await restoringBackend(async () => {
      const info = await initBackend("webgpu");
      assert.equal(tf.getBackend(), "webgpu");
      assert.ok(info.maxForwardImages >= 1, `maxForwardImages ${info.maxForwardImages}`);
      assert.deepEqual(await convFilterGradient(), [12, 16, 24, 28]);
    });
  },
});
