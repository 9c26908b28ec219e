import assert from "node:assert/strict";
import { makeLabeledSplit } from "../learning/data/split.ts";

/** Labels where class c appears `counts[c]` times, interleaved so classes are not contiguous. */
function makeLabels(counts: number[]): Uint8Array {
  const grouped: number[] = [];
  counts.forEach((count, label) => {
    for (let i = 0; i < count; i++) grouped.push(label);
  });
  // Index i * 7919 mod n visits every index once, because 7919 is a prime that divides no test size.
  const labels = new Uint8Array(grouped.length);
  grouped.forEach((label, i) => {
    labels[(i * 7919) % grouped.length] = label;
  });
  return labels;
}

const labels = makeLabels(new Array(10).fill(50));

Deno.test("split takes equal labels per class", () => {
  for (const numLabels of [10, 40, 250]) {
    const { labeledIndices } = makeLabeledSplit(labels, 10, numLabels, 0);
    assert.equal(labeledIndices.length, numLabels);
    const perClass = new Array(10).fill(0);
    for (const index of labeledIndices) perClass[labels[index]]++;
    assert.deepEqual(perClass, new Array(10).fill(numLabels / 10));
    assert.equal(new Set(labeledIndices).size, numLabels, "no index twice");
  }
});

Deno.test("split indices are sorted", () => {
  const { labeledIndices, unlabeledIndices } = makeLabeledSplit(labels, 10, 40, 3);
  for (let i = 1; i < labeledIndices.length; i++) assert.ok(labeledIndices[i - 1] < labeledIndices[i]);
  assert.ok(labeledIndices instanceof Int32Array);
  assert.ok(unlabeledIndices instanceof Int32Array);
});

Deno.test("split is deterministic per seed", () => {
  const first = makeLabeledSplit(labels, 10, 40, 1);
  const second = makeLabeledSplit(labels, 10, 40, 1);
  assert.deepEqual(first.labeledIndices, second.labeledIndices);
  const otherSeed = makeLabeledSplit(labels, 10, 40, 2);
  assert.notDeepEqual(first.labeledIndices, otherSeed.labeledIndices);
  // The label count is part of the stream, so 40 labels are not the first 4 per class of a 250-label draw.
  const larger = makeLabeledSplit(labels, 10, 250, 1);
  assert.ok(!first.labeledIndices.every((index) => larger.labeledIndices.includes(index)));
});

Deno.test("split unlabeled set is the training set", () => {
  const { labeledIndices, unlabeledIndices } = makeLabeledSplit(labels, 10, 40, 0);
  assert.equal(unlabeledIndices.length, labels.length);
  assert.deepEqual([...unlabeledIndices], [...labels.keys()]);
  const unlabeled = new Set(unlabeledIndices);
  for (const index of labeledIndices) assert.ok(unlabeled.has(index));
});

Deno.test("split can take a whole class", () => {
  const uneven = makeLabels([3, 5]);
  const { labeledIndices } = makeLabeledSplit(uneven, 2, 6, 0);
  const class0 = [...uneven.keys()].filter((i) => uneven[i] === 0);
  assert.deepEqual([...labeledIndices].filter((i) => uneven[i] === 0), class0);
});

Deno.test("split rejects bad label counts", () => {
  assert.throws(
    () => makeLabeledSplit(labels, 10, 45, 0),
    /numLabels must be a positive multiple of the class count 10 .*got 45/,
  );
  assert.throws(() => makeLabeledSplit(labels, 10, 0, 0), /positive multiple .*got 0/);
  assert.throws(() => makeLabeledSplit(labels, 10, -10, 0), /got -10/);
  assert.throws(
    () => makeLabeledSplit(labels, 10, 510, 0),
    /numLabels 510 needs 51 labeled examples per class, but class 0 has only 50 training examples; use at most 500 labels/,
  );
  const uneven = makeLabels([3, 5]);
  assert.throws(() => makeLabeledSplit(uneven, 2, 8, 0), /class 0 has only 3 .*use at most 6 labels/);
});

Deno.test("split rejects labels outside classes", () => {
  assert.throws(() => makeLabeledSplit(new Uint8Array([0, 1, 2]), 2, 2, 0), /labels\[2\] is 2, outside \[0, 2\)/);
  assert.throws(() => makeLabeledSplit(labels, 0, 10, 0), /numClasses must be a positive integer, got 0/);
});
