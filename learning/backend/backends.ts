/**
 * Selection and set-up of the TensorFlow.js compute backend.
 *
 * | name             | tfjs backend | needs                                                        |
 * | ---------------- | ------------ | ------------------------------------------------------------ |
 * | `native`         | `native`     | g++ and oneDNN (Debian: `apt-get install g++ libdnnl-dev`)    |
 * | `wasm`           | `wasm`       | nothing: the `.wasm` files ship in the npm package           |
 * | `cpu`            | `cpu`        | nothing (plain JavaScript, slowest)                          |
 * | `tensorflow`     | `tensorflow` | `@tensorflow/tfjs-node` with libtensorflow installed         |
 * | `tensorflow-gpu` | `tensorflow` | `@tensorflow/tfjs-node-gpu`, CUDA and cuDNN                  |
 * | `webgpu`         | `webgpu`     | a WebGPU adapter (Deno 2.9 has `navigator.gpu` without flags) |
 * | `auto`           | first of tensorflow-gpu, tensorflow, hardware webgpu, native, wasm |
 *
 * Under Deno, `@tensorflow/tfjs-backend-wasm` 4.22 loads its `.wasm` files
 * from its own folder in `node_modules` through the package's Node build,
 * so `setWasmPaths` is not needed. It runs single-threaded with SIMD.
 *
 * On webgpu, read tensors with `await tensor.data()`: the backend's
 * `dataSync` draws through a canvas, which Deno lacks, and throws.
 *
 * @example
 * ```ts
 * import { initBackend, parseBackendName } from "./backends.ts";
 *
 * const info = await initBackend(parseBackendName("auto"));
 * console.log(`${info.name}: ${info.description}`);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { registerCpuTrainingKernels } from "./cpu_kernels.ts";
import { registerWasmTrainingKernels } from "./wasm_kernels.ts";
import { NativeLibraryError } from "./_native_library.ts";

/** A backend choice as given on the command line. */
export type BackendName = "auto" | "native" | "wasm" | "cpu" | "tensorflow" | "tensorflow-gpu" | "webgpu";

/** Every valid {@link BackendName}, in the order help text lists them. */
export const BACKEND_NAMES: readonly BackendName[] = [
  "auto",
  "native",
  "wasm",
  "cpu",
  "tensorflow",
  "tensorflow-gpu",
  "webgpu",
];

/** The backend that {@link initBackend} set up. */
export interface BackendInfo {
  name: Exclude<BackendName, "auto">;
  /** Name passed to `tf.setBackend`. */
  tfjsBackend: string;
  /** Version of the package that provides the backend. */
  version: string;
  /**
   * The backend in cache keys: its name, and for native also the hash of the
   * C++ source it was built from and its thread count, since both change the
   * results.
   */
  cacheId: string;
  /**
   * Images one WideResNet-28-2 forward plus backward pass may hold on this
   * backend at 32x32 input; Infinity where only host or device memory
   * limits it. Callers split larger batches into chunks of this size.
   */
  maxForwardImages: number;
  description: string;
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /** Receives one line per backend that `auto` skips and one for the choice. Default `console.warn`. */
  log?: (message: string) => void;
}

/** Thrown when a backend cannot be loaded on this machine. */
export class BackendUnavailableError extends Error {
  override name = "BackendUnavailableError";
}

/**
 * Images per forward plus backward pass of WideResNet-28-2 on the wasm
 * backend, whose heap is capped at 4 GiB and never shrinks. One
 * `tf.variableGrads` pass of learning/nn/wide_resnet.ts grew the heap to
 * 2958 MiB at 96 images and 3880 MiB at 128, and failed at 192, so 96
 * leaves about 1 GiB for optimizer state, EMA weights and fragmentation.
 */
// NOTE: re-measure when the model or the training step keeps more tensors.
export const WASM_MAX_FORWARD_IMAGES = 96;

/**
 * Bytes of the largest WideResNet-28-2 activation per 32x32 image:
 * 32x32 pixels, 32 channels (the first group), float32.
 */
const WRN_LARGEST_ACTIVATION_BYTES = 32 * 32 * 32 * 4;

const TFJS_NODE_VERSION = "4.22.0";

/**
 * Parses a backend name from the command line or a config file.
 *
 * @example
 * ```ts
 * parseBackendName("wasm"); // "wasm"
 * parseBackendName("gpu"); // throws: lists the valid names
 * ```
 */
export function parseBackendName(value: string): BackendName {
  const name = value.trim().toLowerCase();
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new Error(invalidBackendMessage(value));
}

function invalidBackendMessage(value: string): string {
  return `Invalid backend '${value}'; valid backends are: ${BACKEND_NAMES.join(", ")}.`;
}

/**
 * Loads backend `name`, makes it the active TensorFlow.js backend and
 * registers the kernels training needs. With `auto` it tries
 * tensorflow-gpu, tensorflow, webgpu on a hardware adapter, native and wasm, in
 * that order, and logs why it skipped each one. Throws
 * {@link BackendUnavailableError} with install instructions when the named
 * backend cannot be loaded.
 *
 * @example
 * ```ts
 * const info = await initBackend("wasm");
 * console.log(info.maxForwardImages); // 96
 * ```
 */
export async function initBackend(name: BackendName, options: InitBackendOptions = {}): Promise<BackendInfo> {
  const log = options.log ?? ((message: string) => console.warn(message));
  switch (name) {
    case "native":
      return await initNative();
    case "wasm":
      return await initWasm();
    case "cpu":
      return await initCpu();
    case "tensorflow":
      return await initTensorflow(false);
    case "tensorflow-gpu":
      return await initTensorflow(true);
    case "webgpu":
      return await initWebgpu(false);
    case "auto":
      return await initAuto(log);
    default:
      throw new Error(invalidBackendMessage(String(name)));
  }
}

async function initAuto(log: (message: string) => void): Promise<BackendInfo> {
  const attempts: [Exclude<BackendName, "auto">, () => Promise<BackendInfo>][] = [
    ["tensorflow-gpu", () => initTensorflow(true)],
    ["tensorflow", () => initTensorflow(false)],
    ["webgpu", () => initWebgpu(true)],
  ];
  for (const [name, init] of attempts) {
    try {
      const info = await init();
      log(`Backend auto: using ${name} (${info.description}).`);
      return info;
    } catch (error) {
      if (!(error instanceof BackendUnavailableError)) throw error;
      log(`Backend auto: skipping ${name}: ${firstLine(error.message)}`);
    }
  }
  try {
    const info = await initNative();
    log(`Backend auto: using native (${info.description}).`);
    return info;
  } catch (error) {
    if (!(error instanceof BackendUnavailableError)) throw error;
    log(`Backend auto: the fast CPU path is off: ${firstLine(error.message)}`);
  }
  const info = await initWasm();
  log(`Backend auto: using wasm (${info.description}).`);
  return info;
}

function firstLine(text: string): string {
  return text.split("\n")[0] ?? text;
}

async function activate(tfjsBackend: string): Promise<void> {
  const ok = await tf.setBackend(tfjsBackend);
  if (!ok || tf.getBackend() !== tfjsBackend) {
    throw new BackendUnavailableError(
      `TensorFlow.js could not initialize backend '${tfjsBackend}'; see the warning above for the cause.`,
    );
  }
  await tf.ready();
}

async function initWasm(): Promise<BackendInfo> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  await activate("wasm");
  registerWasmTrainingKernels();
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  return {
    name: "wasm",
    cacheId: "wasm",
    tfjsBackend: "wasm",
    version: wasm.version_wasm,
    maxForwardImages: WASM_MAX_FORWARD_IMAGES,
    description: `tfjs-backend-wasm ${wasm.version_wasm} (XNNPACK, SIMD ${simd ? "on" : "off"}, ` +
      `${wasm.getThreadsCount()} thread(s), 4 GiB heap; conv gradients as XNNPACK convolutions)`,
  };
}

async function initNative(): Promise<BackendInfo> {
  const { NATIVE_BACKEND_NAME, registerNativeBackend } = await import("./native_backend.ts");
  let library;
  try {
    library = await registerNativeBackend();
  } catch (error) {
    if (!(error instanceof NativeLibraryError)) throw error;
    throw new BackendUnavailableError(error.message, { cause: error });
  }
  await activate(NATIVE_BACKEND_NAME);
  return {
    name: "native",
    // Sums split across threads round differently, so the thread count is part of the key.
    cacheId: `native-${library.sourceHash}-${library.threads}t`,
    tfjsBackend: NATIVE_BACKEND_NAME,
    version: `${tf.version_cpu}+semisup-native`,
    maxForwardImages: Infinity,
    description: `tfjs-backend-cpu ${tf.version_cpu} with oneDNN and OpenMP kernels, ${library.threads} thread(s)`,
  };
}

async function initCpu(): Promise<BackendInfo> {
  await activate("cpu");
  registerCpuTrainingKernels();
  return {
    name: "cpu",
    cacheId: "cpu",
    tfjsBackend: "cpu",
    version: tf.version_cpu,
    maxForwardImages: Infinity,
    description: `tfjs-backend-cpu ${tf.version_cpu} (plain JavaScript, 1 thread; conv gradients as convolutions)`,
  };
}

/** Returns the steps that install tfjs-node (or tfjs-node-gpu) for Deno, for error messages. */
function tensorflowInstallHelp(packageName: string, gpu: boolean): string {
  const spec = `npm:${packageName}@${TFJS_NODE_VERSION}`;
  // NOTE: these steps could not be run here: the package's install script
  // downloads libtensorflow from outside the npm registry.
  return [
    `To install it on a machine with internet access, run in the repository root:`,
    `  deno add ${spec}`,
    `  deno install --allow-scripts=${spec}`,
    `The install script downloads libtensorflow${gpu ? " built for CUDA" : ""}; it only runs with ` +
    `"nodeModulesDir": "auto" (set in deno.json) and --allow-scripts. Run with -A or at least ` +
    `--allow-ffi, because Deno loads Node-API addons such as tfjs_binding.node only with FFI permission.`,
    ...(gpu ? [`The GPU build also needs the CUDA and cuDNN versions that the ${packageName} README lists.`] : []),
    `Without it, --backend wasm works everywhere.`,
  ].join("\n");
}

/** The part of `@tensorflow/tfjs-node`'s exports that is read here. */
interface TfjsNodeModule {
  version?: Record<string, string>;
  default?: { version?: Record<string, string> };
}

async function initTensorflow(gpu: boolean): Promise<BackendInfo> {
  const name = gpu ? "tensorflow-gpu" : "tensorflow";
  const packageName = gpu ? "@tensorflow/tfjs-node-gpu" : "@tensorflow/tfjs-node";
  // A bare specifier resolves only when `deno add` put the package into the
  // import map. An `npm:` specifier would make Deno download the package
  // (and change deno.lock) on every attempt, yet still fail without the
  // libtensorflow that the install script fetches.
  const specifier = packageName;

  let tfnode: TfjsNodeModule;
  try {
    tfnode = await import(specifier);
  } catch (error) {
    throw new BackendUnavailableError(
      `Backend '${name}' needs ${packageName} ${TFJS_NODE_VERSION}, which could not be loaded ` +
        `(${firstLine((error as Error).message)}).\n${tensorflowInstallHelp(packageName, gpu)}`,
      { cause: error },
    );
  }

  if (tf.findBackend("tensorflow") === null && tf.findBackendFactory("tensorflow") === null) {
    throw new BackendUnavailableError(
      `${packageName} loaded but registered no 'tensorflow' backend with this copy of TensorFlow.js ` +
        `(${tf.version_core}); install ${packageName} ${TFJS_NODE_VERSION} to match.`,
    );
  }
  await activate("tensorflow");

  // tfjs-node is CommonJS: its exports may arrive as named exports or under `default`.
  const version = (tfnode.version ?? tfnode.default?.version)?.["tfjs-node"] ?? TFJS_NODE_VERSION;
  return {
    name,
    cacheId: name,
    tfjsBackend: "tensorflow",
    version,
    maxForwardImages: Infinity,
    description: `${packageName} ${version} (libtensorflow${gpu ? " with CUDA" : ", CPU"})`,
  };
}

/** Returns a description of the adapter, or null when it is a hardware GPU. */
function softwareAdapterName(info: GPUAdapterInfo & { isFallbackAdapter?: boolean }): string | null {
  const label = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(" ");
  if (info.isFallbackAdapter === true) return label || "fallback adapter";
  return /llvmpipe|lavapipe|swiftshader|softpipe|software|basic render/i.test(label) ? label : null;
}

async function initWebgpu(requireHardware: boolean): Promise<BackendInfo> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (gpu === undefined) {
    throw new BackendUnavailableError(
      "Backend 'webgpu' needs navigator.gpu, which this Deno build lacks; Deno 2.9 has it by default, " +
        "older Deno versions need --unstable-webgpu. --backend wasm works without it.",
    );
  }

  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (adapter === null) {
    throw new BackendUnavailableError(
      "Backend 'webgpu' found no WebGPU adapter; install a GPU driver with Vulkan (Linux), Metal (macOS) " +
        "or Direct3D 12 (Windows) support, or use --backend wasm.",
    );
  }

  // On llvmpipe here, a 3x3 conv of x [64, 32, 32, 32] took 570 ms against 67 ms on wasm.
  const software = softwareAdapterName(adapter.info);
  if (requireHardware && software !== null) {
    throw new BackendUnavailableError(
      `Backend 'webgpu' only has the software adapter '${software}', which is slower than wasm; ` +
        "pass --backend webgpu to use it anyway.",
    );
  }

  await import("@tensorflow/tfjs-backend-webgpu");
  await activate("webgpu");

  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const bindingBytes = device.limits.maxStorageBufferBindingSize;
  const label = [adapter.info.vendor, adapter.info.description].filter((s) => s).join(" ") || "unnamed adapter";
  return {
    name: "webgpu",
    cacheId: "webgpu",
    tfjsBackend: "webgpu",
    version: tf.version_core,
    // NOTE: an estimate from the largest single activation; it ignores
    // temporary buffers that some webgpu kernels allocate.
    maxForwardImages: Math.floor(bindingBytes / WRN_LARGEST_ACTIVATION_BYTES),
    description: `tfjs-backend-webgpu ${tf.version_core} on ${label}` +
      `${software !== null ? " (software adapter)" : ""}, max storage binding ${bindingBytes} bytes`,
  };
}
