/**
 * SHA-256 helpers for cache keys and manifests.
 *
 * @example
 * ```ts
 * const key = hashJson({ stage: "split", labels: 40 });
 * ```
 * @module
 */

import { createHash } from "node:crypto";

/** Returns the SHA-256 hex digest of bytes or a string. */
export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Returns the SHA-256 hex digest of a file, read in one piece. */
export async function sha256File(path: string): Promise<string> {
  return sha256(await Deno.readFile(path));
}

/**
 * Serializes a value as JSON with object keys sorted, so equal values give
 * equal text whatever order their keys were set in.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item) => {
    if (item && typeof item === "object" && !Array.isArray(item) && !ArrayBuffer.isView(item)) {
      return Object.fromEntries(Object.keys(item).sort().map((k) => [k, item[k]]));
    }
    return item;
  });
}

/** Returns the SHA-256 hex digest of a value's canonical JSON. */
export function hashJson(value: unknown): string {
  return sha256(canonicalJson(value));
}
