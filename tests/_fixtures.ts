/**
 * Small generated inputs for the data tests: tar.gz archives, archives in the
 * official CIFAR-10 binary format, and ImageFolder trees of JPEG and PNG files.
 * @module
 */

import * as tarStream from "tar-stream";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { gzipSync } from "node:zlib";
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { dirname, join } from "node:path";
import { Random } from "../learning/random.ts";
import { CIFAR10_CLASS_NAMES } from "../learning/data/cifar10.ts";

/** One archive member to write. */
export interface FixtureEntry {
  name: string;
  data?: Uint8Array | string;
  type?: "file" | "directory" | "symlink" | "link" | "fifo";
  linkname?: string;
}

/** Builds a tar archive with tar-stream's packer, gzip-compressed unless `gzip` is false. */
export async function makeTar(entries: FixtureEntry[], gzip = true): Promise<Uint8Array> {
  const pack = tarStream.pack();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Uint8Array);
  })();
  for (const entry of entries) {
    const type = entry.type ?? "file";
    const data = typeof entry.data === "string" ? new TextEncoder().encode(entry.data) : entry.data ?? new Uint8Array();
    const header = { name: entry.name, type, linkname: entry.linkname, mode: type === "file" ? 0o644 : 0o755 };
    await new Promise<void>((resolve, reject) =>
      pack.entry(header, Buffer.from(data), (error) => error ? reject(error) : resolve())
    );
  }
  pack.finalize();
  await done;
  const tar = new Uint8Array(Buffer.concat(chunks));
  return gzip ? new Uint8Array(gzipSync(tar)) : tar;
}

/** Returns the MD5 hex digest of bytes. */
export function md5Hex(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** A generated split in both layouts: HWC (expected reader output) and official records. */
export interface CifarFixtureSplit {
  imagesHwc: Uint8Array;
  labels: Uint8Array;
}

/** A generated archive in the official CIFAR-10 binary format with its expected contents. */
export interface CifarFixture {
  archive: Uint8Array;
  md5: string;
  classNames: string[];
  train: CifarFixtureSplit;
  test: CifarFixtureSplit;
  /** Batch file contents keyed by base name, as written into the archive. */
  batches: Map<string, Uint8Array>;
}

const PIXELS = 32 * 32;

/** Converts HWC images to official records: a label byte, then the R, G and B planes. */
export function toCifarRecords(imagesHwc: Uint8Array, labels: Uint8Array): Uint8Array {
  const records = new Uint8Array(labels.length * 3073);
  for (let n = 0; n < labels.length; n++) {
    records[n * 3073] = labels[n];
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        for (let c = 0; c < 3; c++) {
          records[n * 3073 + 1 + c * PIXELS + y * 32 + x] = imagesHwc[n * PIXELS * 3 + (y * 32 + x) * 3 + c];
        }
      }
    }
  }
  return records;
}

/**
 * Builds a tar.gz in the layout of cifar-10-binary.tar.gz with random images
 * and `recordsPerBatch` records per batch. `replace` swaps a member's bytes
 * (by base name) and `extra` appends more members.
 */
export async function makeCifarBinaryFixture(options: {
  recordsPerBatch?: number;
  seed?: number;
  replace?: Record<string, Uint8Array | null>;
  extra?: FixtureEntry[];
} = {}): Promise<CifarFixture> {
  const recordsPerBatch = options.recordsPerBatch ?? 3;
  const random = Random.derive(options.seed ?? 1, "cifar-fixture");
  const makeSplit = (count: number): CifarFixtureSplit => {
    const imagesHwc = new Uint8Array(count * PIXELS * 3);
    for (let i = 0; i < imagesHwc.length; i++) imagesHwc[i] = random.int(256);
    const labels = new Uint8Array(count);
    for (let i = 0; i < count; i++) labels[i] = random.int(10);
    return { imagesHwc, labels };
  };
  const train = makeSplit(5 * recordsPerBatch);
  const test = makeSplit(recordsPerBatch);

  const batches = new Map<string, Uint8Array>();
  for (let b = 0; b < 5; b++) {
    const from = b * recordsPerBatch;
    const to = from + recordsPerBatch;
    batches.set(
      `data_batch_${b + 1}.bin`,
      toCifarRecords(train.imagesHwc.subarray(from * PIXELS * 3, to * PIXELS * 3), train.labels.subarray(from, to)),
    );
  }
  batches.set("test_batch.bin", toCifarRecords(test.imagesHwc, test.labels));

  const classNames = [...CIFAR10_CLASS_NAMES];
  const files = new Map<string, Uint8Array>([
    ["batches.meta.txt", new TextEncoder().encode(classNames.join("\n") + "\n\n")],
    ...batches,
    ["readme.html", new TextEncoder().encode("<html></html>")],
  ]);
  const entries: FixtureEntry[] = [{ name: "cifar-10-batches-bin/", type: "directory" }];
  for (const [name, data] of files) {
    const replacement = options.replace?.[name];
    if (replacement === null) continue;
    entries.push({ name: `cifar-10-batches-bin/${name}`, data: replacement ?? data });
  }
  entries.push(...(options.extra ?? []));
  const archive = await makeTar(entries);
  return { archive, md5: md5Hex(archive), classNames, train, test, batches };
}

/** Encodes RGB (HWC) pixels as a PNG of the given color type (0 gray, 2 RGB, 6 RGBA). */
export function encodePng(
  rgb: Uint8Array,
  height: number,
  width: number,
  colorType: 0 | 2 | 6 = 2,
  alpha = 255,
): Uint8Array {
  const png = new PNG({ width, height });
  for (let p = 0; p < height * width; p++) {
    png.data[p * 4] = rgb[p * 3];
    png.data[p * 4 + 1] = rgb[p * 3 + 1];
    png.data[p * 4 + 2] = rgb[p * 3 + 2];
    png.data[p * 4 + 3] = alpha;
  }
  return new Uint8Array(PNG.sync.write(png, { colorType }));
}

/** Encodes RGB (HWC) pixels as a JPEG at quality 100. */
export function encodeJpeg(rgb: Uint8Array, height: number, width: number): Uint8Array {
  const rgba = new Uint8Array(height * width * 4);
  for (let p = 0; p < height * width; p++) {
    rgba.set(rgb.subarray(p * 3, p * 3 + 3), p * 4);
    rgba[p * 4 + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, 100).data);
}

/** Returns a solid-color RGB image. */
export function solidImage(height: number, width: number, color: [number, number, number]): Uint8Array {
  const rgb = new Uint8Array(height * width * 3);
  for (let p = 0; p < height * width; p++) rgb.set(color, p * 3);
  return rgb;
}

/** Returns an RGB image whose pixels all differ, seeded by `seed`. */
export function patternImage(height: number, width: number, seed: number): Uint8Array {
  const rgb = new Uint8Array(height * width * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 37 + seed * 101) % 256;
  return rgb;
}

/** Relative path to file bytes; the in-memory form of an ImageFolder tree. */
export type FileTree = Map<string, Uint8Array>;

/** Writes a file tree under `dir` (and empty folders for `emptyDirs`). */
export async function writeTree(dir: string, tree: FileTree, emptyDirs: string[] = []): Promise<void> {
  for (const [path, data] of tree) {
    await Deno.mkdir(dirname(join(dir, path)), { recursive: true });
    await Deno.writeFile(join(dir, path), data);
  }
  for (const path of emptyDirs) await Deno.mkdir(join(dir, path), { recursive: true });
}

/** Packs a file tree (and empty folders) into a tar.gz with directory entries. */
export function treeToTarGz(tree: FileTree, emptyDirs: string[] = []): Promise<Uint8Array> {
  const dirs = new Set<string>(emptyDirs);
  for (const path of tree.keys()) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  const entries: FixtureEntry[] = [...dirs].sort().map((name) => ({ name: `${name}/`, type: "directory" }));
  for (const [name, data] of tree) entries.push({ name, data });
  return makeTar(entries);
}

/**
 * Builds a small ImageFolder tree: for each split and class, `perClass` 32x32 images
 * with a distinct solid color, alternating JPEG and PNG, named so that file
 * order and listing order differ. Returns the tree and each image's color.
 */
export function makeImageFolderTree(options: {
  classNames: string[];
  perClass: { train: number; test: number };
  top?: string;
}): { tree: FileTree; colors: Map<string, [number, number, number]> } {
  const tree: FileTree = new Map();
  const colors = new Map<string, [number, number, number]>();
  const top = options.top === undefined ? "" : `${options.top}/`;
  for (const split of ["train", "test"] as const) {
    for (const [classIndex, className] of options.classNames.entries()) {
      // Insert in reverse file-name order, so a reader that keeps listing order fails.
      for (let i = options.perClass[split] - 1; i >= 0; i--) {
        const color: [number, number, number] = [
          (classIndex * 40 + 10) % 256,
          (i * 50 + 20) % 256,
          split === "train" ? 60 : 200,
        ];
        const isPng = i % 2 === 1;
        const path = `${top}${split}/${className}/${String(i).padStart(4, "0")}.${isPng ? "png" : "jpg"}`;
        const rgb = solidImage(32, 32, color);
        tree.set(path, isPng ? encodePng(rgb, 32, 32) : encodeJpeg(rgb, 32, 32));
        colors.set(path, color);
      }
    }
  }
  return { tree, colors };
}

/**
 * Asserts that two byte arrays are equal and reports the first differing
 * index; node:assert's deepEqual takes minutes to print a diff of arrays this large.
 */
export function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, message = "bytes"): void {
  if (actual.length !== expected.length) {
    throw new Error(`${message}: length ${actual.length}, expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      throw new Error(`${message}: first difference at index ${i}: ${actual[i]}, expected ${expected[i]}`);
    }
  }
}
