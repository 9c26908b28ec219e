/**
 * evaluate: test accuracy of each trained cell's EMA model (and of the raw
 * model, for comparison), with per-class accuracy and the confusion matrix.
 *
 * @module
 */

import { type CellResult, forced, type RunContext, stageCode } from "../pipeline/runner.ts";
import { type StageResult, writeFileSynced } from "../pipeline/cache.ts";
import { formatDuration } from "../pipeline/log.ts";
import { sha256 } from "../pipeline/hash.ts";
import { loadDataset } from "../learning/data/dataset.ts";
import { initBackend } from "../learning/backend/backends.ts";
import { WideResNet } from "../learning/nn/wide_resnet.ts";
import { readTensorFile } from "../learning/training/tensor_file.ts";
import { balancedSubset, classificationMetrics } from "../learning/metrics.ts";
import { predictLabels } from "../learning/predict.ts";
import { modelOptions } from "./train.ts";
import { backendManifestInfo, checkTrainingBackend } from "./train_cell.ts";

/** Evaluates every trained cell. */
export async function run(context: RunContext): Promise<Map<string, CellResult>> {
  const { config, store } = context;
  const dataset = context.outputs.get("download") as StageResult;
  const trained = context.outputs.get("train") as Map<string, CellResult>;
  const code = await stageCode("evaluate");
  const results = new Map<string, CellResult>();
  const backend = await initBackend(config.backend);
  checkTrainingBackend(backend);
  const backendName = backend.name;

  for (const [cell, train] of trained) {
    const params = { ...config.evaluate, backend: backend.cacheId };
    const result = await store.run(
      {
        stage: "evaluate",
        code,
        params,
        inputs: { train: train.key, dataset: dataset.key },
        info: backendManifestInfo(backend),
      },
      async ({ dir, log }) => {
        const { test, classNames } = await loadDataset(dataset.dir);
        const count = config.evaluate.test_images === "all" ? test.count : config.evaluate.test_images;
        const indices = balancedSubset(test.labels, classNames.length, count);
        const labels = Array.from(indices, (i) => test.labels[i]);
        const model = new WideResNet(modelOptions(config, 0));
        const evaluated: Record<string, unknown> = {};

        for (const variant of ["ema_model", "model"]) {
          const started = performance.now();
          const weights = await readTensorFile(`${train.dir}/${variant}`);
          model.loadStateDict(weights);
          const bytes = await Deno.readFile(`${train.dir}/${variant}.bin`);
          const predictions = predictLabels(model, test.images, indices, config.evaluate.batch_size);
          const metrics = classificationMetrics(labels, predictions, classNames.length);
          const seconds = (performance.now() - started) / 1000;
          log.info(
            `${cell} ${variant === "ema_model" ? "EMA" : "raw"} model: top-1 ${(metrics.accuracy * 100).toFixed(2)}% ` +
              `on ${indices.length} test images in ${formatDuration(seconds)} (${
                (indices.length / seconds).toFixed(1)
              } img/s)`,
          );
          evaluated[variant] = { ...metrics, weights_sha256: sha256(bytes), seconds };
        }
        model.dispose();

        const ema = evaluated.ema_model as {
          accuracy: number;
          perClassAccuracy: number[];
          confusion: number[][];
          weights_sha256: string;
        };
        const raw = evaluated.model as { accuracy: number; weights_sha256: string };
        await writeFileSynced(
          `${dir}/metrics.json`,
          JSON.stringify(
            {
              cell,
              accuracy: ema.accuracy,
              raw_accuracy: raw.accuracy,
              per_class_accuracy: Object.fromEntries(classNames.map((name, c) => [name, ema.perClassAccuracy[c]])),
              confusion_matrix: ema.confusion,
              class_names: classNames,
              test_images: indices.length,
              evaluated_weights_sha256: ema.weights_sha256,
              raw_weights_sha256: raw.weights_sha256,
              backend: backendName,
            },
            null,
            2,
          ) + "\n",
        );
      },
      { force: forced(context, "evaluate") },
    );
    results.set(cell, { ...result, cell });
  }
  return results;
}
