/**
 * download: turns the configured source (official CIFAR-10 binary archive,
 * an ImageFolder, or generated images) into the canonical dataset arrays.
 *
 * @module
 */

import { forced, type RunContext, stageCode } from "../pipeline/runner.ts";
import type { StageResult } from "../pipeline/cache.ts";
import { describeSource, readSource } from "../pipeline/dataset_source.ts";
import { saveDataset } from "../learning/data/dataset.ts";

/** Builds (or finds in the cache) the dataset artifact. */
export async function run(context: RunContext): Promise<StageResult> {
  const { config, store } = context;
  const source = await describeSource(config.dataset, config.artifacts);
  return await store.run(
    { stage: "download", code: await stageCode("download"), params: source, inputs: {} },
    async ({ dir, workDir, log }) => {
      const dataset = await readSource(config.dataset, source, {
        workDir,
        downloads: `${config.artifacts}/downloads`,
        log,
      });
      log.info(
        `${dataset.name}: ${dataset.train.count} train / ${dataset.test.count} test images, ` +
          `${dataset.classNames.length} classes (${dataset.classNames.join(", ")})`,
      );
      const hashes = await saveDataset(dir, dataset);
      log.info(`array hashes: ${Object.entries(hashes).map(([f, h]) => `${f} ${h.slice(0, 12)}`).join(", ")}`);
    },
    { force: forced(context, "download") },
  );
}
