/**
 * The canonical in-memory dataset and its on-disk form.
 *
 * Images are uint8 RGB in HWC order, `count * height * width * channels`
 * bytes per split. On disk a dataset folder holds the four raw arrays
 * (`train_images.bin`, `train_labels.bin`, `test_images.bin`,
 * `test_labels.bin`) and `dataset.json` with the name, class names, counts,
 * shape and the SHA-256 of each array file.
 *
 * @example
 * ```ts
 * const hashes = await saveDataset("runs/data/cifar10", dataset);
 * const again = await loadDataset("runs/data/cifar10");
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";

/** One split: images (HWC, RGB, uint8) and their labels. */
export interface ImageSet {
  /** Pixels of all images, `count * height * width * channels` bytes, HWC order. */
  images: Uint8Array;
  /** Class index of each image, in `[0, classNames.length)`. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
  /** Image height in pixels. */
  height: number;
  /** Image width in pixels. */
  width: number;
  /** Channels per pixel (3 for RGB). */
  channels: number;
}

/** A labeled image classification dataset with a training and a test split. */
export interface Dataset {
  /** Short identifier, for example "cifar10". */
  name: string;
  /** Class names indexed by label. */
  classNames: string[];
  /** Training split. */
  train: ImageSet;
  /** Test split. */
  test: ImageSet;
}

/** Contents of `dataset.json`. */
export interface DatasetManifest {
  format: "semisup-dataset";
  version: 1;
  name: string;
  classNames: string[];
  height: number;
  width: number;
  channels: number;
  trainCount: number;
  testCount: number;
  /** SHA-256 (hex) of each array file, keyed by file name. */
  sha256: Record<string, string>;
}

/** Name of the manifest file inside a dataset folder. */
export const DATASET_MANIFEST_FILE = "dataset.json";

const ARRAY_FILES = ["train_images.bin", "train_labels.bin", "test_images.bin", "test_labels.bin"] as const;

/**
 * Checks that the arrays of `dataset` match its counts and shape and that
 * every label is a valid class index; throws an error naming the field.
 *
 * @example
 * ```ts
 * validateDataset(dataset); // throws if dataset.train.images has the wrong length
 * ```
 */
export function validateDataset(dataset: Dataset): void {
  if (typeof dataset.name !== "string" || dataset.name === "") {
    throw new Error(`Dataset name must be a non-empty string, got ${JSON.stringify(dataset.name)}.`);
  }
  const numClasses = dataset.classNames.length;
  if (numClasses < 1 || numClasses > 256) {
    throw new Error(`Dataset "${dataset.name}" must have 1 to 256 classes (labels are uint8), got ${numClasses}.`);
  }
  for (const split of ["train", "test"] as const) {
    const set = dataset[split];
    for (const field of ["count", "height", "width", "channels"] as const) {
      if (!Number.isInteger(set[field]) || set[field] < 0) {
        throw new Error(
          `Dataset "${dataset.name}" ${split}.${field} must be a non-negative integer, got ${set[field]}.`,
        );
      }
    }
    const imageBytes = set.count * set.height * set.width * set.channels;
    if (set.images.length !== imageBytes) {
      throw new Error(
        `Dataset "${dataset.name}" ${split}.images has ${set.images.length} bytes, but ${split}.count * height * ` +
          `width * channels is ${imageBytes}.`,
      );
    }
    if (set.labels.length !== set.count) {
      throw new Error(
        `Dataset "${dataset.name}" ${split}.labels has ${set.labels.length} entries, but ${split}.count is ${set.count}.`,
      );
    }
    const badIndex = set.labels.findIndex((label) => label >= numClasses);
    if (badIndex >= 0) {
      throw new Error(
        `Dataset "${dataset.name}" ${split}.labels[${badIndex}] is ${set.labels[badIndex]}, ` +
          `but there are only ${numClasses} classes.`,
      );
    }
  }
  const { train, test } = dataset;
  if (train.height !== test.height || train.width !== test.width || train.channels !== test.channels) {
    throw new Error(
      `Dataset "${dataset.name}" train images are ${train.height}x${train.width}x${train.channels} but test images ` +
        `are ${test.height}x${test.width}x${test.channels}; both splits must have one shape.`,
    );
  }
}

/**
 * Writes `dataset` into `dir` (created if missing) and returns the SHA-256
 * (hex) of each written file, keyed by file name. `dataset.json` is written
 * last, so a folder with a manifest is complete.
 *
 * @example
 * ```ts
 * const hashes = await saveDataset("runs/data/cifar10", dataset);
 * console.log(hashes["train_images.bin"]);
 * ```
 */
export async function saveDataset(dir: string, dataset: Dataset): Promise<Record<string, string>> {
  validateDataset(dataset);
  await Deno.mkdir(dir, { recursive: true });

  const arrays: Record<(typeof ARRAY_FILES)[number], Uint8Array> = {
    "train_images.bin": dataset.train.images,
    "train_labels.bin": dataset.train.labels,
    "test_images.bin": dataset.test.images,
    "test_labels.bin": dataset.test.labels,
  };
  const hashes: Record<string, string> = {};
  for (const file of ARRAY_FILES) {
    await Deno.writeFile(join(dir, file), arrays[file]);
    hashes[file] = sha256Hex(arrays[file]);
  }

  const manifest: DatasetManifest = {
    format: "semisup-dataset",
    version: 1,
    name: dataset.name,
    classNames: [...dataset.classNames],
    height: dataset.train.height,
    width: dataset.train.width,
    channels: dataset.train.channels,
    trainCount: dataset.train.count,
    testCount: dataset.test.count,
    sha256: { ...hashes },
  };
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
  await Deno.writeFile(join(dir, DATASET_MANIFEST_FILE), manifestBytes);
  hashes[DATASET_MANIFEST_FILE] = sha256Hex(manifestBytes);
  return hashes;
}

/** Options for {@linkcode loadDataset}. */
export interface LoadDatasetOptions {
  /** Also compare each array file with the SHA-256 in `dataset.json` (reads are hashed; about 1 s for CIFAR-10). */
  verifyHashes?: boolean;
}

/**
 * Reads a dataset folder written by {@linkcode saveDataset}. File sizes are
 * checked against `dataset.json`, and a mismatch is an error naming the file.
 *
 * @example
 * ```ts
 * const dataset = await loadDataset("runs/data/cifar10", { verifyHashes: true });
 * console.log(dataset.train.count);
 * ```
 */
export async function loadDataset(dir: string, options: LoadDatasetOptions = {}): Promise<Dataset> {
  const manifest = await readManifest(dir);
  const { height, width, channels } = manifest;
  const expectedSizes: Record<(typeof ARRAY_FILES)[number], number> = {
    "train_images.bin": manifest.trainCount * height * width * channels,
    "train_labels.bin": manifest.trainCount,
    "test_images.bin": manifest.testCount * height * width * channels,
    "test_labels.bin": manifest.testCount,
  };

  const arrays = {} as Record<(typeof ARRAY_FILES)[number], Uint8Array>;
  for (const file of ARRAY_FILES) {
    const path = join(dir, file);
    let data: Uint8Array;
    try {
      data = await Deno.readFile(path);
    } catch (error) {
      throw new Error(
        `Cannot read ${path} (${(error as Error).message}); the dataset folder is incomplete. ` +
          `Prepare the dataset again.`,
        { cause: error },
      );
    }
    if (data.length !== expectedSizes[file]) {
      throw new Error(
        `${path} has ${data.length} bytes, but ${DATASET_MANIFEST_FILE} expects ${expectedSizes[file]}; ` +
          `the dataset folder is truncated or corrupt. Prepare the dataset again.`,
      );
    }
    const expectedHash = manifest.sha256?.[file];
    if (options.verifyHashes && expectedHash !== undefined && sha256Hex(data) !== expectedHash) {
      throw new Error(
        `${path} has SHA-256 ${sha256Hex(data)}, but ${DATASET_MANIFEST_FILE} records ${expectedHash}; ` +
          `the file changed after it was written. Prepare the dataset again.`,
      );
    }
    arrays[file] = data;
  }

  const dataset: Dataset = {
    name: manifest.name,
    classNames: manifest.classNames,
    train: {
      images: arrays["train_images.bin"],
      labels: arrays["train_labels.bin"],
      count: manifest.trainCount,
      height,
      width,
      channels,
    },
    test: {
      images: arrays["test_images.bin"],
      labels: arrays["test_labels.bin"],
      count: manifest.testCount,
      height,
      width,
      channels,
    },
  };
  try {
    validateDataset(dataset);
  } catch (error) {
    throw new Error(`Dataset folder ${dir} is invalid: ${(error as Error).message} Prepare the dataset again.`, {
      cause: error,
    });
  }
  return dataset;
}

async function readManifest(dir: string): Promise<DatasetManifest> {
  const path = join(dir, DATASET_MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(
      `Cannot read ${path} (${(error as Error).message}); ${dir} is not a prepared dataset folder. ` +
        `Prepare the dataset first.`,
      { cause: error },
    );
  }
  let manifest: DatasetManifest;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path} is not valid JSON (${(error as Error).message}). Prepare the dataset again.`, {
      cause: error,
    });
  }
  if (manifest === null || typeof manifest !== "object" || manifest.format !== "semisup-dataset") {
    throw new Error(`${path} is not a semisup dataset manifest (format must be "semisup-dataset").`);
  }
  if (manifest.version !== 1) {
    throw new Error(`${path} has version ${manifest.version}; this reader supports version 1 only.`);
  }
  if (!Array.isArray(manifest.classNames) || !manifest.classNames.every((name) => typeof name === "string")) {
    throw new Error(`${path}: classNames must be an array of strings.`);
  }
  for (const field of ["height", "width", "channels", "trainCount", "testCount"] as const) {
    if (!Number.isInteger(manifest[field]) || manifest[field] < 0) {
      throw new Error(`${path}: ${field} must be a non-negative integer, got ${JSON.stringify(manifest[field])}.`);
    }
  }
  return manifest;
}

function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
