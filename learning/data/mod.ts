/**
 * Dataset sources, the canonical dataset format and the labeled split.
 *
 * @example
 * ```ts
 * import { makeLabeledSplit, readImageFolder, saveDataset } from "./learning/data/mod.ts";
 * const dataset = await readImageFolder("cifar10-jpeg.tar.gz");
 * await saveDataset("runs/data/cifar10", dataset);
 * const split = makeLabeledSplit(dataset.train.labels, 10, 4000, 0);
 * ```
 * @module
 */

export * from "./dataset.ts";
export * from "./cifar10.ts";
export * from "./cifar_binary.ts";
export * from "./image_folder.ts";
export * from "./split.ts";
export * from "./tar_archive.ts";
