import { createHash } from "node:crypto";

/** Returns the hex digest of a file, read in chunks so large archives are not held in memory. */
export async function hashFile(path: string, algorithm: "md5" | "sha256"): Promise<string> {
  const hash = createHash(algorithm);
  using file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Returns the hex digest of bytes in memory. */
export function hashBytes(data: Uint8Array, algorithm: "md5" | "sha256"): string {
  return createHash(algorithm).update(data).digest("hex");
}
