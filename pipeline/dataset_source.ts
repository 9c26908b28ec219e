/**
 * Resolving the dataset section of the config into a cache identity and a
 * reader call.
 *
 * @example
 * ```ts
 * const identity = await describeSource(config.dataset, "artifacts");
 * ```
 * @module
 */

import { resolve } from "node:path";
import type { StudyConfig } from "./config.ts";
import type { StageLogger } from "./log.ts";
import { sha256, sha256File } from "./hash.ts";
import type { Dataset } from "../learning/data/dataset.ts";
import { downloadCifarBinary, readCifarBinaryArchive } from "../learning/data/cifar_binary.ts";
import { readImageFolder } from "../learning/data/image_folder.ts";
import { syntheticDataset } from "../learning/data/synthetic.ts";

type DatasetConfig = StudyConfig["dataset"];

/** The identity of a dataset source in the download stage's key. */
export interface SourceIdentity {
  source: DatasetConfig["source"];
  /** Absolute path of a local input, or the URL. */
  location: string;
  /** SHA-256 of a local file, a digest of a folder listing, or the expected MD5 of a download. */
  content: string;
  options: Record<string, unknown>;
}

async function folderDigest(path: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string, prefix: string) => {
    const entries: Deno.DirEntry[] = [];
    for await (const entry of Deno.readDir(dir)) entries.push(entry);
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const relative = `${prefix}${entry.name}`;
      if (entry.isDirectory) await walk(`${dir}/${entry.name}`, `${relative}/`);
      else {
        const info = await Deno.stat(`${dir}/${entry.name}`);
        lines.push(`${relative}\t${info.size}\t${info.mtime?.getTime() ?? 0}`);
      }
    }
  };
  await walk(path, "");
  return sha256(lines.join("\n"));
}

/** Describes the configured source; reads local inputs to hash them. */
export async function describeSource(dataset: DatasetConfig, _artifacts: string): Promise<SourceIdentity> {
  const options = {
    wrong_size: dataset.wrong_size,
    max_extracted_bytes: dataset.max_extracted_bytes,
    max_members: dataset.max_members,
  };
  if (dataset.source === "synthetic") {
    return { source: "synthetic", location: "generated", content: "", options: { ...dataset.synthetic } };
  }
  if (dataset.path === null) {
    if (dataset.source === "image-folder") {
      throw new Error("dataset.source is image-folder but no path is set; pass --dataset PATH (a folder or .tar.gz)");
    }
    return { source: dataset.source, location: dataset.url, content: `md5:${dataset.md5}`, options };
  }
  const location = resolve(dataset.path);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(location);
  } catch {
    const flag = dataset.source === "image-folder" ? "--dataset" : "--archive";
    throw new Error(`dataset path not found: ${location}; check the ${flag} value`);
  }
  const content = info.isDirectory ? `listing:${await folderDigest(location)}` : `sha256:${await sha256File(location)}`;
  return { source: dataset.source, location, content, options };
}

/** Reads the dataset from its source. */
export async function readSource(
  dataset: DatasetConfig,
  identity: SourceIdentity,
  places: { workDir: string; downloads: string; log: StageLogger },
): Promise<Dataset> {
  const caps = { maxTotalBytes: dataset.max_extracted_bytes, maxMembers: dataset.max_members };
  switch (dataset.source) {
    case "synthetic":
      places.log.info("generating the synthetic dataset");
      return syntheticDataset({
        trainPerClass: dataset.synthetic.train_per_class,
        testPerClass: dataset.synthetic.test_per_class,
      });
    case "image-folder":
      places.log.info(`reading ImageFolder ${identity.location}`);
      return await readImageFolder(identity.location, { wrongSize: dataset.wrong_size, ...caps });
    case "cifar10-binary": {
      let archive = identity.location;
      if (dataset.path === null) {
        await Deno.mkdir(places.downloads, { recursive: true });
        archive = `${places.downloads}/cifar-10-binary.tar.gz`;
        places.log.info(`downloading ${dataset.url} to ${archive}`);
        try {
          await downloadCifarBinary(dataset.url, archive, { expectedMd5: dataset.md5 });
        } catch (error) {
          throw new Error(
            `${(error as Error).message}\nWithout access to ${dataset.url}, pass --dataset PATH (CIFAR-10 as ` +
              `train/<class>/ and test/<class>/ image folders, or a .tar.gz of them) or --archive PATH (a local ` +
              `cifar-10-binary.tar.gz).`,
            { cause: error },
          );
        }
      }
      places.log.info(`reading the CIFAR-10 binary archive ${archive} (checking MD5 ${dataset.md5})`);
      try {
        return await readCifarBinaryArchive(archive, { expectedMd5: dataset.md5, ...caps });
      } catch (error) {
        if (dataset.path === null || !/MD5/i.test((error as Error).message)) throw error;
        throw new Error(
          `${archive} is not the official cifar-10-binary.tar.gz (its MD5 differs from ${dataset.md5}); ` +
            `check the --archive path, or use --dataset for image folders.`,
          { cause: error },
        );
      }
    }
  }
}
