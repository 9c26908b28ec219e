/**
 * In-memory reader for tar and tar.gz archives.
 *
 * Members are streamed through node:zlib (when the input is gzip-compressed)
 * and the npm `tar-stream` parser, and collected in memory; nothing is
 * written to disk. Because archives come from the network, every member path
 * is checked: absolute paths, `..` segments, links and device entries are
 * rejected, and the member count and total extracted size are capped.
 *
 * @example
 * ```ts
 * const members = await readTarArchive("cifar-10-binary.tar.gz", {
 *   include: (path) => path.endsWith(".bin"),
 * });
 * console.log(members.map((member) => member.path));
 * ```
 * @module
 */

import * as tarStream from "tar-stream";
import { createGunzip } from "node:zlib";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";

/** Default cap on the summed size of all file members (1 GiB). */
export const DEFAULT_MAX_TOTAL_BYTES: number = 1024 * 1024 * 1024;

/** Default cap on the number of members, directories included. */
export const DEFAULT_MAX_MEMBERS = 200_000;

/** One file or directory read from an archive. */
export interface TarMember {
  /** Normalized relative path: `/`-separated, without `./`, empty or trailing segments. */
  path: string;
  /** Member kind; links and special files are rejected before they get here. */
  type: "file" | "directory";
  /** File contents; empty for directories and for files skipped by `include`. */
  data: Uint8Array;
}

/** Limits and filters for {@linkcode readTarArchive}. */
export interface TarReadOptions {
  /** Maximum summed size in bytes of all file members, skipped ones included. Default 1 GiB. */
  maxTotalBytes?: number;
  /** Maximum number of members, directories included. Default 200,000. */
  maxMembers?: number;
  /**
   * Selects the file members whose contents are kept. Members it rejects are
   * still validated and counted against the caps but are left out of the result.
   * Directories are always returned.
   */
  include?: (path: string) => boolean;
}

/**
 * Reads every member of a tar or tar.gz archive into memory.
 *
 * `source` is a file path or the archive bytes; gzip compression is detected
 * from the first two bytes. Throws an error naming the entry for an absolute
 * path, a `..` segment, a symlink, hardlink or special file, and an error
 * naming the cap and its option when `maxMembers` or `maxTotalBytes` is exceeded.
 *
 * @example
 * ```ts
 * const members = await readTarArchive(archiveBytes, { maxMembers: 100 });
 * const readme = members.find((member) => member.path === "data/README");
 * ```
 */
export async function readTarArchive(
  source: Uint8Array | string,
  options: TarReadOptions = {},
): Promise<TarMember[]> {
  const maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
  const maxMembers = options.maxMembers ?? DEFAULT_MAX_MEMBERS;
  const include = options.include ?? (() => true);
  const label = typeof source === "string" ? source : "<in-memory archive>";

  const gzipped = await isGzip(source);
  const input: Readable = typeof source === "string"
    ? createReadStream(source)
    : Readable.from([source], { objectMode: false });
  const gunzip = gzipped ? createGunzip() : null;
  const extract = tarStream.extract();

  const fail = (error: Error) => extract.destroy(error);
  input.on("error", fail);
  if (gunzip !== null) {
    gunzip.on("error", fail);
    input.pipe(gunzip).pipe(extract);
  } else {
    input.pipe(extract);
  }

  const members: TarMember[] = [];
  let memberCount = 0;
  let totalBytes = 0;
  try {
    for await (const entry of extract) {
      const header = entry.header;
      memberCount++;
      if (memberCount > maxMembers) {
        throw new Error(
          `Archive ${label} has more than ${maxMembers} members (the maxMembers cap). ` +
            `If the archive is trusted, raise the maxMembers option.`,
        );
      }

      const path = normalizeMemberPath(header.name, label);
      const type = memberType(header, label);
      if (type === "directory") {
        await drain(entry);
        if (path !== "") members.push({ path, type, data: new Uint8Array(0) });
        continue;
      }

      totalBytes += header.size;
      if (totalBytes > maxTotalBytes) {
        throw new Error(
          `Archive ${label} extracts to more than ${maxTotalBytes} bytes (the maxTotalBytes cap), ` +
            `reached at member "${header.name}". If the archive is trusted, raise the maxTotalBytes option.`,
        );
      }

      if (include(path)) {
        members.push({ path, type, data: await collect(entry, header.size, header.name, label) });
      } else {
        await drain(entry);
      }
    }
  } catch (error) {
    throw wrapError(error, label);
  } finally {
    extract.destroy();
    gunzip?.destroy();
    input.destroy();
  }
  return members;
}

async function isGzip(source: Uint8Array | string): Promise<boolean> {
  let head: Uint8Array;
  if (typeof source === "string") {
    let file;
    try {
      file = await open(source, "r");
    } catch (error) {
      throw new Error(`Cannot open archive ${source}: ${(error as Error).message}`, { cause: error });
    }
    try {
      head = new Uint8Array(2);
      const { bytesRead } = await file.read(head, 0, 2, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  } else {
    head = source.subarray(0, 2);
  }
  return head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Normalizes a member name and rejects absolute paths and `..` segments. */
function normalizeMemberPath(name: string, label: string): string {
  if (name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name)) {
    throw new Error(
      `Archive ${label} contains the absolute path "${name}"; only relative member paths are accepted. ` +
        `Rebuild the archive with relative paths.`,
    );
  }
  const segments = name.split(/[/\\]/).filter((segment) => segment !== "" && segment !== ".");
  if (segments.includes("..")) {
    throw new Error(
      `Archive ${label} contains the path "${name}" with a ".." segment, which could write outside ` +
        `the target folder. Rebuild the archive without ".." in member paths.`,
    );
  }
  return segments.join("/");
}

function memberType(header: tarStream.Header, label: string): "file" | "directory" {
  switch (header.type) {
    case "file":
    case "contiguous-file":
      return "file";
    case "directory":
      return "directory";
    case "symlink":
    case "link":
      throw new Error(
        `Archive ${label} contains the ${header.type === "link" ? "hardlink" : "symlink"} ` +
          `"${header.name}" -> "${header.linkname}"; links are rejected. ` +
          `Rebuild the archive with regular files only (for example tar --dereference).`,
      );
    default:
      throw new Error(
        `Archive ${label} contains "${header.name}" of type ${header.type}; only regular files and ` +
          `directories are accepted. Rebuild the archive without special files.`,
      );
  }
}

async function collect(
  entry: AsyncIterable<unknown>,
  size: number,
  name: string,
  label: string,
): Promise<Uint8Array> {
  const data = new Uint8Array(size);
  let offset = 0;
  for await (const item of entry) {
    // tar-stream yields Buffer chunks, a Uint8Array subclass.
    const chunk = item as Uint8Array;
    if (offset + chunk.length > size) {
      throw new Error(`Archive ${label}: member "${name}" is longer than its header size ${size}.`);
    }
    data.set(chunk, offset);
    offset += chunk.length;
  }
  if (offset !== size) {
    throw new Error(
      `Archive ${label}: member "${name}" ends after ${offset} of ${size} bytes; ` +
        `the archive is truncated. Download or build it again.`,
    );
  }
  return data;
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of entry) {
    // Reading is what advances the parser to the next member.
  }
}

function wrapError(error: unknown, label: string): Error {
  if (!(error instanceof Error)) return new Error(`Failed to read archive ${label}: ${String(error)}`);
  if (error.message.includes(label)) return error;
  return new Error(
    `Failed to read archive ${label}: ${error.message}. ` +
      `The file is truncated or not a tar/tar.gz archive; download or build it again.`,
    { cause: error },
  );
}
