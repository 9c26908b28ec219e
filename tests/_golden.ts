/**
 * Readers for the golden reference values (TorchSSL/PyTorch and PIL outputs).
 *
 * The golden folder is `$SEMISUP_GOLDEN` if set, else `<repo root>/../shared/golden`.
 * Tests that need it pass `ignore: goldenDir() === null`.
 *
 * @example
 * ```ts
 * const logits = readArray("fixmatch_step", "logits_p0") as Float32Array;
 * ```
 * @module
 */

import { fileURLToPath } from "node:url";

/** One tensor of a golden pack, in PyTorch layout. */
export interface GoldenTensor {
  shape: number[];
  data: Float32Array;
  kind?: string;
  weight_decay?: number;
}

// deno-lint-ignore no-explicit-any
type Manifest = any;

const manifests = new Map<string, Manifest>();

/** Returns the golden folder, or null when it is missing. */
export function goldenDir(): string | null {
  const dir = Deno.env.get("SEMISUP_GOLDEN") ??
    fileURLToPath(new URL("../../shared/golden", import.meta.url));
  try {
    return Deno.statSync(`${dir}/README.md`).isFile ? dir : null;
  } catch {
    return null;
  }
}

function requireDir(): string {
  const dir = goldenDir();
  if (dir === null) {
    throw new Error("golden folder not found: set SEMISUP_GOLDEN or place it at <repo>/../shared/golden");
  }
  return dir;
}

/** Reads and caches `<case>/manifest.json`. */
export function readManifest(caseName: string): Manifest {
  let manifest = manifests.get(caseName);
  if (manifest === undefined) {
    manifest = JSON.parse(Deno.readTextFileSync(`${requireDir()}/${caseName}/manifest.json`));
    manifests.set(caseName, manifest);
  }
  return manifest;
}

function readBytes(caseName: string, file: string): Uint8Array {
  const bytes = Deno.readFileSync(`${requireDir()}/${caseName}/${file}`);
  return bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
}

/** Reads `arrays.<name>` of a case as a Uint8Array or Float32Array (C order). */
export function readArray(caseName: string, name: string): Uint8Array | Float32Array {
  const entry = readManifest(caseName).arrays[name];
  if (entry === undefined) throw new Error(`golden array ${caseName}/${name} not found in the manifest`);
  const bytes = readBytes(caseName, entry.file);
  if (entry.dtype === "uint8") return bytes;
  if (entry.dtype === "float32") return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  throw new Error(`golden array ${caseName}/${name} has unsupported dtype ${entry.dtype}`);
}

/**
 * Reads `packs.<name>` of a case. Entries carrying a `what` field (packs that
 * store two versions of one tensor) are keyed `"<what>:<name>"`, others by name.
 */
export function readPack(caseName: string, name: string): Map<string, GoldenTensor> {
  const pack = readManifest(caseName).packs[name];
  if (pack === undefined) throw new Error(`golden pack ${caseName}/${name} not found in the manifest`);
  const bytes = readBytes(caseName, pack.file);
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, pack.total_elements);
  const tensors = new Map<string, GoldenTensor>();
  for (const t of pack.tensors) {
    const key = t.what === undefined ? t.name : `${t.what}:${t.name}`;
    tensors.set(key, {
      shape: t.shape,
      data: all.subarray(t.offset_elements, t.offset_elements + t.numel),
      kind: t.kind,
      weight_decay: t.weight_decay,
    });
  }
  return tensors;
}
