/**
 * The child side of the benchmark: sets up one backend, runs one training
 * or convolution measurement and prints its result line (see
 * `_child_process.ts` for the protocol).
 *
 * @example
 * ```ts
 * import { runChildMode } from "./_child.ts";
 *
 * await runChildMode(JSON.stringify({ kind: "conv", backend: "wasm", batchSize: 8, repeats: 1, seed: 0 }));
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { type BackendInfo, initBackend, parseBackendName } from "../learning/backend/backends.ts";
import { benchTraining, readPeakRssBytes } from "./_training_bench.ts";
import { benchConv } from "./_conv_bench.ts";
import { type BackendReport, type ChildRequest, type ChildResult, RESULT_PREFIX } from "./_child_process.ts";

/**
 * Runs the measurement that `requestJson` (a `ChildRequest`) describes and
 * prints its result line on stdout. A backend that fails to load (an
 * unknown name, a missing library) is reported as unavailable with the
 * first line of the error. Progress goes to stderr.
 *
 * @example
 * ```ts
 * await runChildMode('{"kind":"conv","backend":"wasm","batchSize":8,"repeats":1,"seed":0}');
 * ```
 */
export async function runChildMode(requestJson: string): Promise<void> {
  const request = JSON.parse(requestJson) as ChildRequest;
  const label = request.kind === "training" ? `${request.backend} ${request.algorithm}` : `${request.backend} conv`;
  const log = (message: string) => console.error(`[${label}] ${message}`);

  let info: BackendInfo;
  try {
    info = await initBackend(parseBackendName(request.backend), { log });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    printResult({ kind: "unavailable", reason: message.split("\n")[0] });
    return;
  }
  log(`backend ${info.description}`);

  if (request.kind === "training") {
    const maxForwardImages = request.maxForwardImages === "backend" ? info.maxForwardImages : request.maxForwardImages;
    const measurement = await benchTraining({ ...request, maxForwardImages, log });
    printResult({
      kind: "training",
      backend: backendReport(info, maxForwardImages),
      measurement,
      peakRssBytes: await readPeakRssBytes(),
    });
    return;
  }
  const measurement = await benchConv({
    batchSize: request.batchSize,
    repeats: request.repeats,
    seed: request.seed,
    log,
  });
  printResult({
    kind: "conv",
    backend: backendReport(info, null),
    measurement,
    peakRssBytes: await readPeakRssBytes(),
  });
}

function backendReport(info: BackendInfo, maxForwardImages: number | null): BackendReport {
  return {
    name: info.name,
    version: info.version,
    description: info.description,
    maxForwardImages: maxForwardImages !== null && Number.isFinite(maxForwardImages) ? maxForwardImages : null,
    tfjsVersion: tf.version.tfjs,
  };
}

function printResult(result: ChildResult): void {
  console.log(RESULT_PREFIX + JSON.stringify(result));
}
