/**
 * Reader and downloader for the official CIFAR-10 binary release
 * (`cifar-10-binary.tar.gz`).
 *
 * The archive holds `cifar-10-batches-bin/data_batch_1.bin` to
 * `data_batch_5.bin` (training), `test_batch.bin` and `batches.meta.txt`
 * (class names, one per line). Each batch is a run of 3073-byte records:
 * one label byte, then the 32x32 image as 1024 red, 1024 green and 1024 blue
 * bytes (CHW). The reader converts images to HWC.
 *
 * @example
 * ```ts
 * const path = "runs/download/cifar-10-binary.tar.gz";
 * await downloadCifarBinary(CIFAR10_BINARY_URL, path);
 * const dataset = await readCifarBinaryArchive(path);
 * console.log(dataset.train.count); // 50000
 * ```
 * @module
 */

import type { Dataset, ImageSet } from "./dataset.ts";
import { readTarArchive, type TarMember } from "./tar_archive.ts";
import { hashBytes, hashFile } from "./_hash.ts";
import { downloadFile, type DownloadOptions, type DownloadResult } from "./_download.ts";
import { CIFAR10_BINARY_MD5, CIFAR10_BINARY_URL, CIFAR10_IMAGE_SHAPE, CIFAR10_RECORDS_PER_BATCH } from "./cifar10.ts";

export type { DownloadOptions, DownloadResult } from "./_download.ts";

/** Bytes per record: one label byte and 32 * 32 * 3 pixel bytes. */
export const CIFAR10_RECORD_BYTES = 3073;

const TRAIN_BATCHES = [
  "data_batch_1.bin",
  "data_batch_2.bin",
  "data_batch_3.bin",
  "data_batch_4.bin",
  "data_batch_5.bin",
];
const TEST_BATCH = "test_batch.bin";
const META_FILE = "batches.meta.txt";
const NEEDED_FILES = [...TRAIN_BATCHES, TEST_BATCH, META_FILE];

/** Options for {@linkcode readCifarBinaryArchive}. */
export interface CifarBinaryReadOptions {
  /** MD5 (hex) the archive must have. Default: the published MD5 of the official archive. */
  expectedMd5?: string;
  /** Records each batch file must hold. Default 10,000, as in the official archive. */
  recordsPerBatch?: number;
  /** Cap on the extracted size in bytes, passed to the tar reader. Default 1 GiB. */
  maxTotalBytes?: number;
  /** Cap on the member count, passed to the tar reader. Default 200,000. */
  maxMembers?: number;
}

/**
 * Reads the official CIFAR-10 binary archive (a path or its bytes) into a
 * {@linkcode Dataset} named "cifar10".
 *
 * The MD5 is verified before anything is parsed. Throws an error naming the
 * member for a missing batch, a batch whose size is not `recordsPerBatch`
 * records of 3073 bytes, or a label outside the class list.
 *
 * @example
 * ```ts
 * const dataset = await readCifarBinaryArchive("cifar-10-binary.tar.gz");
 * console.log(dataset.classNames); // ["airplane", "automobile", ...]
 * ```
 */
export async function readCifarBinaryArchive(
  source: Uint8Array | string,
  options: CifarBinaryReadOptions = {},
): Promise<Dataset> {
  const expectedMd5 = (options.expectedMd5 ?? CIFAR10_BINARY_MD5).toLowerCase();
  const recordsPerBatch = options.recordsPerBatch ?? CIFAR10_RECORDS_PER_BATCH;
  const label = typeof source === "string" ? source : "<in-memory archive>";

  const foundMd5 = typeof source === "string" ? await hashFile(source, "md5") : hashBytes(source, "md5");
  if (foundMd5 !== expectedMd5) {
    throw new Error(
      `MD5 mismatch for ${label}: expected ${expectedMd5}, found ${foundMd5}. The file is corrupt, ` +
        `incomplete or not cifar-10-binary.tar.gz; delete it and download it again from ${CIFAR10_BINARY_URL}.`,
    );
  }

  const members = await readTarArchive(source, {
    maxTotalBytes: options.maxTotalBytes,
    maxMembers: options.maxMembers,
    include: (path) => NEEDED_FILES.includes(baseName(path)),
  });
  const files = indexNeededMembers(members, label);

  const classNames = new TextDecoder().decode(files.get(META_FILE)!.data)
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
  if (classNames.length === 0) {
    throw new Error(
      `Archive ${label}: ${files.get(META_FILE)!.path} lists no class names; download the archive again.`,
    );
  }

  const train = allocateImageSet(TRAIN_BATCHES.length * recordsPerBatch);
  TRAIN_BATCHES.forEach((name, batch) => {
    parseBatchInto(files.get(name)!, train, batch * recordsPerBatch, recordsPerBatch, classNames.length, label);
  });
  const test = allocateImageSet(recordsPerBatch);
  parseBatchInto(files.get(TEST_BATCH)!, test, 0, recordsPerBatch, classNames.length, label);
  return { name: "cifar10", classNames, train, test };
}

/**
 * Downloads the official CIFAR-10 binary archive to `destPath` over HTTPS.
 *
 * Data goes to a temporary file next to `destPath`, which is renamed only
 * after the download is complete and its MD5 matches. If `destPath` already
 * exists with the expected MD5, nothing is downloaded.
 *
 * @example
 * ```ts
 * const result = await downloadCifarBinary(CIFAR10_BINARY_URL, "runs/download/cifar-10-binary.tar.gz", {
 *   timeoutMs: 60_000,
 *   retries: 3,
 * });
 * console.log(result.downloaded, result.md5);
 * ```
 */
export function downloadCifarBinary(
  url: string = CIFAR10_BINARY_URL,
  destPath: string,
  options: Partial<DownloadOptions> = {},
): Promise<DownloadResult> {
  return downloadFile(url, destPath, {
    expectedMd5: CIFAR10_BINARY_MD5,
    // The official archive is 170,052,171 bytes.
    maxBytes: 256 * 1024 * 1024,
    ...options,
  });
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function indexNeededMembers(members: TarMember[], label: string): Map<string, TarMember> {
  const files = new Map<string, TarMember>();
  for (const member of members) {
    if (member.type !== "file") continue;
    const name = baseName(member.path);
    const previous = files.get(name);
    if (previous !== undefined) {
      throw new Error(
        `Archive ${label} contains ${name} twice ("${previous.path}" and "${member.path}"); ` +
          `it is not the official archive. Download it again from ${CIFAR10_BINARY_URL}.`,
      );
    }
    files.set(name, member);
  }
  const missing = NEEDED_FILES.filter((name) => !files.has(name));
  if (missing.length > 0) {
    throw new Error(
      `Archive ${label} is missing ${missing.join(", ")} (expected under cifar-10-batches-bin/). ` +
        `Download the archive again from ${CIFAR10_BINARY_URL}.`,
    );
  }
  return files;
}

function allocateImageSet(count: number): ImageSet {
  const { height, width, channels } = CIFAR10_IMAGE_SHAPE;
  return {
    images: new Uint8Array(count * height * width * channels),
    labels: new Uint8Array(count),
    count,
    height,
    width,
    channels,
  };
}

/** Parses one batch file into `target` from record `firstRecord` on, converting images from CHW to HWC. */
function parseBatchInto(
  member: TarMember,
  target: ImageSet,
  firstRecord: number,
  recordsPerBatch: number,
  numClasses: number,
  label: string,
): void {
  const size = member.data.length;
  if (size % CIFAR10_RECORD_BYTES !== 0) {
    throw new Error(
      `Archive ${label}: member ${member.path} has ${size} bytes, which is not a multiple of the ` +
        `${CIFAR10_RECORD_BYTES}-byte record size (1 label byte + 3072 pixel bytes). ` +
        `The file is corrupt; download the archive again.`,
    );
  }
  const count = size / CIFAR10_RECORD_BYTES;
  if (count !== recordsPerBatch) {
    throw new Error(
      `Archive ${label}: member ${member.path} has ${size} bytes (${count} records), but a batch holds ` +
        `${recordsPerBatch} records (${recordsPerBatch * CIFAR10_RECORD_BYTES} bytes). The file is truncated; ` +
        `download the archive again.`,
    );
  }

  const plane = target.height * target.width;
  const imageBytes = plane * target.channels;
  for (let record = 0; record < count; record++) {
    const offset = record * CIFAR10_RECORD_BYTES;
    const classIndex = member.data[offset];
    if (classIndex >= numClasses) {
      throw new Error(
        `Archive ${label}: member ${member.path} record ${record} has label ${classIndex}, but ` +
          `batches.meta.txt lists ${numClasses} classes. The file is corrupt; download the archive again.`,
      );
    }
    target.labels[firstRecord + record] = classIndex;
    const pixels = member.data.subarray(offset + 1, offset + CIFAR10_RECORD_BYTES);
    const out = (firstRecord + record) * imageBytes;
    for (let p = 0; p < plane; p++) {
      target.images[out + p * 3] = pixels[p];
      target.images[out + p * 3 + 1] = pixels[plane + p];
      target.images[out + p * 3 + 2] = pixels[2 * plane + p];
    }
  }
}
