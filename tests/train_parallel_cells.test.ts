/**
 * How many cells the train stage trains at once on each kind of backend.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { BackendInfo } from "../learning/backend/backends.ts";
import { parallelCells } from "../stages/train.ts";

function backend(name: BackendInfo["name"]): BackendInfo {
  return { name, cacheId: name, tfjsBackend: name, version: "test", maxForwardImages: Infinity, description: name };
}

Deno.test("parallel cells per backend", () => {
  const cores = navigator.hardwareConcurrency ?? 1;
  assert.equal(parallelCells("auto", backend("wasm"), 6), Math.max(1, Math.min(cores, 6)));
  assert.equal(parallelCells("auto", backend("wasm"), 1), 1);
  assert.equal(parallelCells(3, backend("wasm"), 2), 2);
  assert.equal(parallelCells("auto", backend("tensorflow"), 6), 1);
});

Deno.test("native trains one cell at a time", () => {
  assert.equal(parallelCells("auto", backend("native"), 6), 1);
  assert.equal(parallelCells(2, backend("native"), 6), 1);
});
