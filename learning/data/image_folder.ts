/**
 * Reader for image datasets stored as class folders ("ImageFolder" layout):
 *
 * ```
 * [top/]train/<class>/<image>.jpg|.jpeg|.png
 * [top/]test/<class>/<image>.jpg|.jpeg|.png
 * ```
 *
 * The source is a directory or a tar/tar.gz archive (a path or its bytes),
 * and everything may sit under one top folder. Files and folders whose name
 * starts with "." (such as .DS_Store or macOS "._" files) are skipped, and so
 * are top-level files next to train/ and test/.
 *
 * Labels follow the official CIFAR-10 order when the class folders are
 * exactly the CIFAR-10 class names, and sorted folder names otherwise.
 * Images are read in file-name order within each class.
 *
 * @example
 * ```ts
 * const dataset = await readImageFolder("/data/cifar10-jpeg.tar.gz");
 * console.log(dataset.train.count, dataset.classNames);
 * ```
 * @module
 */

import { basename, join } from "node:path";
import type { Dataset, ImageSet } from "./dataset.ts";
import { readTarArchive } from "./tar_archive.ts";
import { decodeImage, resizeBilinear } from "./_image_decode.ts";
import { CIFAR10_CLASS_NAMES } from "./cifar10.ts";

/** Options for {@linkcode readImageFolder}. */
export interface ImageFolderOptions {
  /** Image height in pixels every image must have (or is resized to). Default 32. */
  height?: number;
  /** Image width in pixels every image must have (or is resized to). Default 32. */
  width?: number;
  /**
   * What to do with an image of another size: "reject" (default) throws an
   * error naming the file; "resize" applies bilinear interpolation on
   * half-pixel centers without antialiasing.
   */
  wrongSize?: "reject" | "resize";
  /** Dataset name. Default: the source's base name without .tar.gz, .tgz or .tar. */
  name?: string;
  /** Cap on the extracted size of an archive in bytes. Default 1 GiB. */
  maxTotalBytes?: number;
  /** Cap on the member count of an archive. Default 200,000. */
  maxMembers?: number;
}

/** A file or directory found in the source, with a relative `/`-separated path. */
interface FolderEntry {
  path: string;
  /** Path for messages: the file path for a directory source, "archive: member" for an archive. */
  where: string;
  type: "file" | "directory";
  read: () => Promise<Uint8Array>;
}

const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png"];
const SPLITS = ["train", "test"] as const;

/**
 * Reads an ImageFolder directory or archive into a {@linkcode Dataset}.
 *
 * Grayscale and RGBA images are converted to RGB. Errors name the path and
 * the fix. They are raised for a missing train/ or test/ folder, a file that
 * is not .jpg/.jpeg/.png, an image that does not decode, and an image of the
 * wrong size (with `wrongSize: "reject"`). Further errors cover an empty
 * class folder, a file outside a class folder or in a subfolder of one, and
 * class folders that differ between train/ and test/.
 *
 * @example
 * ```ts
 * const dataset = await readImageFolder("my_images/", { wrongSize: "resize" });
 * ```
 */
export async function readImageFolder(source: string | Uint8Array, options: ImageFolderOptions = {}): Promise<Dataset> {
  const height = options.height ?? 32;
  const width = options.width ?? 32;
  const wrongSize = options.wrongSize ?? "reject";
  if (wrongSize !== "reject" && wrongSize !== "resize") {
    throw new Error(`wrongSize must be "reject" or "resize", got ${JSON.stringify(wrongSize)}.`);
  }
  for (const [field, value] of [["height", height], ["width", width]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`${field} must be a positive integer number of pixels, got ${value}.`);
    }
  }
  const label = typeof source === "string" ? source : "<in-memory archive>";

  const entries = (await listEntries(source, options)).filter((entry) => !isHidden(entry.path));
  const root = findRoot(entries, label);
  const splits = {
    train: collectSplit(entries, root, "train", label),
    test: collectSplit(entries, root, "test", label),
  };
  const classNames = checkClasses(splits.train, splits.test, root, label);

  const sets = {} as Record<(typeof SPLITS)[number], ImageSet>;
  for (const split of SPLITS) {
    sets[split] = await decodeSplit(splits[split], classNames, { height, width, wrongSize });
  }
  return { name: options.name ?? defaultName(source), classNames, train: sets.train, test: sets.test };
}

async function listEntries(source: string | Uint8Array, options: ImageFolderOptions): Promise<FolderEntry[]> {
  if (typeof source !== "string") return archiveEntries(source, options);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(source);
  } catch (error) {
    throw new Error(
      `Image folder source ${source} not found (${(error as Error).message}); give a directory or a .tar.gz archive.`,
      { cause: error },
    );
  }
  if (info.isDirectory) return directoryEntries(source);
  if (/\.(tar\.gz|tgz|tar)$/i.test(source)) return archiveEntries(source, options);
  throw new Error(`${source} is neither a directory nor a .tar.gz, .tgz or .tar archive; give one of those.`);
}

async function archiveEntries(source: string | Uint8Array, options: ImageFolderOptions): Promise<FolderEntry[]> {
  const label = typeof source === "string" ? source : "<in-memory archive>";
  const members = await readTarArchive(source, {
    maxTotalBytes: options.maxTotalBytes,
    maxMembers: options.maxMembers,
    include: (path) => !isHidden(path),
  });
  return members.map((member) => ({
    path: member.path,
    where: `${label}: ${member.path}`,
    type: member.type,
    read: () => Promise.resolve(member.data),
  }));
}

/** Lists a directory tree; symlinks are followed, as when reading the folder directly. */
async function directoryEntries(dir: string): Promise<FolderEntry[]> {
  const entries: FolderEntry[] = [];
  const walk = async (relative: string): Promise<void> => {
    for await (const item of Deno.readDir(join(dir, relative))) {
      if (item.name.startsWith(".")) continue;
      const path = relative === "" ? item.name : `${relative}/${item.name}`;
      const fullPath = join(dir, path);
      const isDirectory = item.isSymlink ? (await Deno.stat(fullPath)).isDirectory : item.isDirectory;
      if (isDirectory) {
        entries.push({ path, where: fullPath, type: "directory", read: () => Promise.resolve(new Uint8Array(0)) });
        await walk(path);
      } else {
        entries.push({ path, where: fullPath, type: "file", read: () => Deno.readFile(fullPath) });
      }
    }
  };
  await walk("");
  return entries;
}

function isHidden(path: string): boolean {
  return path.split("/").some((segment) => segment.startsWith("."));
}

/** Returns the prefix ("" or "top/") under which train/ and test/ sit. */
function findRoot(entries: FolderEntry[], label: string): string {
  const firstSegments = new Set(entries.map((entry) => entry.path.split("/")[0]));
  const hasSplit = (prefix: string) =>
    entries.some((entry) => SPLITS.some((split) => entry.path.startsWith(`${prefix}${split}/`)));
  let root = "";
  if (!hasSplit("")) {
    const topFolders = [...firstSegments].filter((segment) =>
      entries.some((entry) =>
        entry.path.startsWith(`${segment}/`) || (entry.path === segment && entry.type === "directory")
      )
    );
    if (topFolders.length === 1) root = `${topFolders[0]}/`;
  }
  for (const split of SPLITS) {
    const present = entries.some((entry) =>
      entry.path === `${root}${split}` || entry.path.startsWith(`${root}${split}/`)
    );
    if (!present) {
      throw new Error(
        `${label} has no ${root}${split}/ folder. An image folder needs train/<class>/<image> and ` +
          `test/<class>/<image>, optionally under one top folder; add the missing folder.`,
      );
    }
  }
  return root;
}

/** Maps class name to image entries for one split, checking the folder depth. */
function collectSplit(
  entries: FolderEntry[],
  root: string,
  split: (typeof SPLITS)[number],
  label: string,
): Map<string, FolderEntry[]> {
  const prefix = `${root}${split}/`;
  const classes = new Map<string, FolderEntry[]>();
  for (const entry of entries) {
    if (!entry.path.startsWith(prefix)) continue;
    const parts = entry.path.slice(prefix.length).split("/");
    const where = entry.where;
    if (parts.length === 1 && entry.type === "file") {
      throw new Error(`${where} is outside a class folder; move it into ${prefix}<class>/ or remove it.`);
    }
    if (parts.length > 2 || (parts.length === 2 && entry.type === "directory")) {
      throw new Error(
        `${where} is nested inside a class folder; images must sit directly in ${prefix}<class>/. ` +
          `Move them up or remove the subfolder.`,
      );
    }
    const className = parts[0];
    if (!classes.has(className)) classes.set(className, []);
    if (parts.length === 2) {
      const extension = parts[1].slice(parts[1].lastIndexOf(".")).toLowerCase();
      if (!parts[1].includes(".") || !IMAGE_EXTENSIONS.includes(extension)) {
        throw new Error(
          `${where} is not an image file (supported: ${IMAGE_EXTENSIONS.join(", ")}); remove it or move it ` +
            `out of the image folder.`,
        );
      }
      classes.get(className)!.push(entry);
    }
  }
  for (const [className, files] of classes) {
    if (files.length === 0) {
      throw new Error(
        `${label}: class folder ${prefix}${className} is empty; add images to it or remove it from both ` +
          `train/ and test/.`,
      );
    }
    files.sort((a, b) => compareCodeUnits(a.path, b.path));
  }
  if (classes.size === 0) {
    throw new Error(`${label}: ${prefix} has no class folders; add ${prefix}<class>/<image> files.`);
  }
  return classes;
}

/** Checks that train and test have the same classes and returns them in label order. */
function checkClasses(
  train: Map<string, FolderEntry[]>,
  test: Map<string, FolderEntry[]>,
  root: string,
  label: string,
): string[] {
  const onlyTrain = [...train.keys()].filter((name) => !test.has(name)).sort();
  const onlyTest = [...test.keys()].filter((name) => !train.has(name)).sort();
  if (onlyTrain.length > 0 || onlyTest.length > 0) {
    throw new Error(
      `${label}: the class folders of ${root}train/ and ${root}test/ differ ` +
        `(only in train: [${onlyTrain.join(", ")}]; only in test: [${onlyTest.join(", ")}]). ` +
        `Both splits need the same class folders.`,
    );
  }
  const names = [...train.keys()];
  const isCifar10 = names.length === CIFAR10_CLASS_NAMES.length &&
    names.every((name) => CIFAR10_CLASS_NAMES.includes(name));
  if (isCifar10) return [...CIFAR10_CLASS_NAMES];
  if (names.length > 256) {
    throw new Error(`${label} has ${names.length} classes; labels are uint8, so at most 256 are supported.`);
  }
  return names.sort(compareCodeUnits);
}

/** Orders strings by UTF-16 code units, independent of the locale. */
function compareCodeUnits(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

async function decodeSplit(
  classes: Map<string, FolderEntry[]>,
  classNames: string[],
  shape: { height: number; width: number; wrongSize: "reject" | "resize" },
): Promise<ImageSet> {
  const { height, width } = shape;
  const imageBytes = height * width * 3;
  const count = [...classes.values()].reduce((sum, files) => sum + files.length, 0);
  const images = new Uint8Array(count * imageBytes);
  const labels = new Uint8Array(count);
  let index = 0;
  for (let classIndex = 0; classIndex < classNames.length; classIndex++) {
    for (const entry of classes.get(classNames[classIndex])!) {
      let image = decodeImage(await entry.read(), entry.where);
      if (image.height !== height || image.width !== width) {
        if (shape.wrongSize === "reject") {
          throw new Error(
            `${entry.where} is ${image.height}x${image.width} (height x width), but images must be ` +
              `${height}x${width}. Resize the file, or pass wrongSize: "resize".`,
          );
        }
        image = resizeBilinear(image, height, width);
      }
      images.set(image.data, index * imageBytes);
      labels[index] = classIndex;
      index++;
    }
  }
  return { images, labels, count, height, width, channels: 3 };
}

function defaultName(source: string | Uint8Array): string {
  if (typeof source !== "string") return "image-folder";
  return basename(source.replace(/[/\\]+$/, "")).replace(/\.(tar\.gz|tgz|tar)$/i, "");
}
