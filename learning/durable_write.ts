/**
 * Writing files so that their bytes are on disk before the call returns,
 * for data that a later rename makes visible as complete.
 *
 * @example
 * ```ts
 * await writeFileSynced("out/state.json", JSON.stringify({ iteration: 3 }));
 * ```
 * @module
 */

/**
 * Writes a file and flushes it to disk before returning. A failure names
 * the path.
 */
export async function writeFileSynced(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, create: true, truncate: true });
  } catch (error) {
    throw new Error(`failed to write ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } catch (error) {
    throw new Error(`failed to write ${path}: ${(error as Error).message}`, { cause: error });
  } finally {
    file.close();
  }
}
