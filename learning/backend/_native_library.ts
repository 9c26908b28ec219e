/**
 * Builds and loads `native/semisup_native.cpp`, the shared library behind the
 * "native" backend, through Deno's FFI.
 *
 * The library is compiled on first use with the system's g++ (or the
 * compiler named by SEMISUP_NATIVE_CXX) against
 * oneDNN (Debian: `apt-get install g++ libdnnl-dev`) into
 * `build/native/libsemisup_native-<hash>.so` under the repository root (or
 * SEMISUP_NATIVE_BUILD_DIR), named
 * by a hash of the source and the compiler flags so an edited source builds
 * anew. The compiler writes to a temporary name that is renamed into place,
 * so an interrupted build never leaves a library that a later run loads.
 *
 * @module
 */

import { createHash } from "node:crypto";

const SOURCE_URL = new URL("./native/semisup_native.cpp", import.meta.url);
const DEFAULT_BUILD_DIR_URL = new URL("../../build/native/", import.meta.url);
const COMPILER_FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17"];
const LINK_FLAGS = ["-ldnnl"];

/** OpenMP wait policy unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT. */
const DEFAULT_WAIT_POLICY = "passive";

/** How to get the native backend on Debian or Ubuntu, for one-line messages. */
export const NATIVE_INSTALL_HINT = "install g++ and oneDNN (Debian/Ubuntu: apt-get install g++ libdnnl-dev)";

const SYMBOLS = {
  sn_last_error: { parameters: [], result: "pointer" },
  sn_version: { parameters: [], result: "i32" },
  sn_max_threads: { parameters: [], result: "i32" },
  sn_set_threads: { parameters: ["i32"], result: "void" },
  sn_conv2d_forward: { parameters: ["buffer", "buffer", "buffer", "buffer", "buffer"], result: "i32" },
  sn_conv2d_backward_data: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  sn_conv2d_backward_weights: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  sn_matmul: {
    parameters: ["i64", "i64", "i64", "i64", "i32", "i32", "buffer", "i64", "buffer", "i64", "buffer"],
    result: "i32",
  },
  sn_binary: { parameters: ["i32", "buffer", "i64", "buffer", "i64", "buffer", "i64"], result: "i32" },
  sn_binary_strided: {
    parameters: ["i32", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  sn_unary: { parameters: ["i32", "buffer", "buffer", "i64", "f32"], result: "i32" },
  sn_compare: { parameters: ["i32", "buffer", "i64", "buffer", "i64", "buffer", "i64"], result: "i32" },
  sn_select: { parameters: ["buffer", "buffer", "buffer", "buffer", "i64"], result: "i32" },
  sn_batch_norm: {
    parameters: [
      "buffer",
      "i64",
      "i64",
      "buffer",
      "i64",
      "buffer",
      "i64",
      "buffer",
      "i64",
      "buffer",
      "i64",
      "f32",
      "buffer",
    ],
    result: "i32",
  },
  sn_reduce_sum: { parameters: ["buffer", "i64", "i64", "i64", "f64", "buffer"], result: "i32" },
  sn_transpose: { parameters: ["buffer", "buffer", "buffer", "i32", "buffer"], result: "i32" },
  sn_batch_norm_train: {
    parameters: ["buffer", "i64", "i64", "buffer", "buffer", "f32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  sn_batch_norm_train_backward: {
    parameters: [
      "buffer",
      "buffer",
      "i64",
      "i64",
      "buffer",
      "buffer",
      "buffer",
      "f32",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  sn_fma_peak: { parameters: ["f64"], result: "f64" },
  sn_leaky_relu_backward: { parameters: ["buffer", "buffer", "i64", "f32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library's functions. */
export type NativeSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A loaded native library and where it came from. */
export interface NativeLibrary {
  symbols: NativeSymbols;
  path: string;
  /** Hash of the C++ source, compiler and flags the library was built from. */
  sourceHash: string;
  /** OpenMP threads the kernels use. */
  threads: number;
}

/** Error raised when the native library cannot be built or loaded; its message gives the install command. */
export class NativeLibraryError extends Error {
  override name = "NativeLibraryError";
}

let loaded: NativeLibrary | null = null;

/**
 * Returns the native library, building it first when no build of the
 * current source exists. Throws {@link NativeLibraryError} when g++ or
 * oneDNN is missing or the build fails.
 *
 * @example
 * ```ts
 * const library = await loadNativeLibrary();
 * console.log(library.path, library.threads);
 * ```
 */
export async function loadNativeLibrary(): Promise<NativeLibrary> {
  if (loaded !== null) return loaded;
  const threads = requestedThreads();
  const { path, hash } = await ensureBuilt();

  // libgomp reads its settings when it loads, so they go in before dlopen. Its
  // default waits by spinning, and when another process or the augmentation
  // worker takes a core, the spinning thread burns the time the descheduled one
  // needs: a MixMatch step took 9.6 to 12.1 s spinning and 3.6 s with passive
  // waits while another process used one of the 2 cores.
  if (Deno.env.get("OMP_WAIT_POLICY") === undefined && Deno.env.get("GOMP_SPINCOUNT") === undefined) {
    Deno.env.set("OMP_WAIT_POLICY", DEFAULT_WAIT_POLICY);
  }
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen(path, SYMBOLS);
  } catch (error) {
    throw new NativeLibraryError(
      `Could not load ${path} (${firstLine((error as Error).message)}); ${NATIVE_INSTALL_HINT}.`,
      { cause: error },
    );
  }

  if (threads !== null) library.symbols.sn_set_threads(threads);
  loaded = { symbols: library.symbols, path, sourceHash: hash, threads: library.symbols.sn_max_threads() };
  return loaded;
}

/** Returns the thread count SEMISUP_NATIVE_THREADS asks for, or null for one per core. */
function requestedThreads(): number | null {
  const setting = Deno.env.get("SEMISUP_NATIVE_THREADS");
  if (setting === undefined || setting === "") return null;
  const threads = Number(setting);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new NativeLibraryError(
      `Invalid SEMISUP_NATIVE_THREADS '${setting}': expected a whole number >= 1, or unset for one per core.`,
    );
  }
  return threads;
}

/**
 * Returns the message of the last failed native call on this thread.
 *
 * @example
 * ```ts
 * if (library.symbols.sn_select(c, a, b, out, n) !== 0) throw new Error(nativeError(library));
 * ```
 */
export function nativeError(library: NativeLibrary): string {
  const pointer = library.symbols.sn_last_error();
  return pointer === null ? "unknown native error" : new Deno.UnsafePointerView(pointer).getCString();
}

/** Returns the build folder: SEMISUP_NATIVE_BUILD_DIR, or build/native/ in the repository. */
function buildDir(): URL {
  const override = Deno.env.get("SEMISUP_NATIVE_BUILD_DIR");
  return override ? new URL(`file://${override.replace(/\/*$/, "/")}`) : DEFAULT_BUILD_DIR_URL;
}

async function ensureBuilt(): Promise<{ path: string; hash: string }> {
  const directory = buildDir();
  const compiler = Deno.env.get("SEMISUP_NATIVE_CXX") || "g++";

  const source = await Deno.readTextFile(SOURCE_URL);
  const hash = sha256(new TextEncoder().encode([source, compiler, COMPILER_FLAGS.join(" ")].join("\0"))).slice(0, 16);
  const target = new URL(`libsemisup_native-${hash}.so`, directory);
  try {
    if (!(await isIntact(target))) await build(compiler, directory, hash, target);
  } catch (error) {
    if (error instanceof NativeLibraryError) throw error;
    throw new NativeLibraryError(
      `Could not use the native build folder ${directory.pathname} (${firstLine((error as Error).message)}); ` +
        `set SEMISUP_NATIVE_BUILD_DIR to a writable folder.`,
      { cause: error },
    );
  }
  return { path: target.pathname, hash };
}

/**
 * Returns true when `library` exists and matches the checksum written next to
 * it after its build. A truncated or damaged library would crash the process
 * with SIGBUS inside dlopen, so a mismatch removes it to be built again.
 */
async function isIntact(library: URL): Promise<boolean> {
  const checksum = new URL(`${library.href}.sha256`);
  let bytes: Uint8Array;
  let expected: string;
  try {
    [bytes, expected] = await Promise.all([Deno.readFile(library), Deno.readTextFile(checksum)]);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  if (sha256(bytes) === expected.trim()) return true;
  console.warn(`native backend: ${library.pathname} does not match its checksum; building it again`);
  await Deno.remove(library).catch(() => {});
  return false;
}

async function build(compiler: string, directory: URL, hash: string, target: URL): Promise<void> {
  await Deno.mkdir(directory, { recursive: true });
  const temporary = new URL(`.tmp-${Deno.pid}-${hash}.so`, directory);
  console.warn(`native backend: compiling ${SOURCE_URL.pathname} with ${compiler} (first use, about 10 s)`);
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(compiler, {
      args: [...COMPILER_FLAGS, SOURCE_URL.pathname, ...LINK_FLAGS, "-o", temporary.pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    throw new NativeLibraryError(
      `Could not run the compiler '${compiler}' to build the native backend ` +
        `(${firstLine((error as Error).message)}); ${NATIVE_INSTALL_HINT}, or set SEMISUP_NATIVE_CXX to a ` +
        `compiler's path (without flags).`,
      { cause: error },
    );
  }

  if (!output.success) {
    await Deno.remove(temporary).catch(() => {});
    const stderr = new TextDecoder().decode(output.stderr);
    if (/dnnl\.hpp: No such file|cannot find -ldnnl/.test(stderr)) {
      throw new NativeLibraryError(
        `Could not build the native backend: oneDNN is not installed; ${NATIVE_INSTALL_HINT}.`,
      );
    }
    const log = new URL("build-error.log", directory);
    await Deno.writeTextFile(log, stderr).catch(() => {});
    const firstError = stderr.split("\n").find((line) => /\berror\b/i.test(line)) ?? firstLine(stderr);
    throw new NativeLibraryError(
      `Could not build the native backend: ${compiler} failed: ${firstError.trim()} ` +
        `(full output in ${log.pathname}).`,
    );
  }

  // The library goes in place first and its checksum after, so an interrupted
  // build leaves no checksum and the next run builds again.
  await Deno.rename(temporary, target);
  const checksumTemporary = new URL(`.tmp-${Deno.pid}-${hash}.sha256`, directory);
  await Deno.writeTextFile(checksumTemporary, sha256(await Deno.readFile(target)) + "\n");
  await Deno.rename(checksumTemporary, new URL(`${target.href}.sha256`));
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] ?? text;
}
