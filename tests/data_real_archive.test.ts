import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readImageFolder } from "../learning/data/image_folder.ts";
import { CIFAR10_CLASS_NAMES } from "../learning/data/cifar10.ts";
import { goldenDir, readArray } from "./_golden.ts";

// The real archive lies outside the repository, in <repo root>/../shared/data.
const archive = fileURLToPath(new URL("../../shared/data/cifar10-jpeg.tar.gz", import.meta.url));
const enabled = Deno.env.get("SEMISUP_REAL_DATA") === "1";

Deno.test({
  name: "real CIFAR-10 JPEG archive loads",
  ignore: !enabled,
  async fn() {
    const started = performance.now();
    const dataset = await readImageFolder(archive);
    const seconds = (performance.now() - started) / 1000;
    console.log(`read ${archive} in ${seconds.toFixed(1)} s`);

    assert.deepEqual(dataset.classNames, [...CIFAR10_CLASS_NAMES]);
    assert.equal(dataset.train.count, 50_000);
    assert.equal(dataset.test.count, 10_000);
    for (const [split, expected] of [["train", 5_000], ["test", 1_000]] as const) {
      const counts = new Array(10).fill(0);
      for (const label of dataset[split].labels) counts[label]++;
      assert.deepEqual(counts, new Array(10).fill(expected), `${split} images per class`);
    }
    // Real photos use the whole range; an all-zero or constant buffer would mean a decoding bug.
    const sample = dataset.train.images.subarray(0, 3072 * 100);
    assert.ok(sample.reduce((a, b) => Math.min(a, b), 255) < 20, "darkest pixel");
    assert.ok(sample.reduce((a, b) => Math.max(a, b), 0) > 235, "brightest pixel");

    if (goldenDir() === null) {
      console.log("golden folder not found; skipping the comparison with the official pixels");
      return;
    }
    // The 8 golden images (official uint8 pixels) are these test images of the JPEG archive,
    // found by a nearest-neighbour search over all 10,000. JPEG quality 75 leaves a mean
    // absolute difference of 0.6 to 2.9 levels; swapped channels or a transposed image give 3.6 to 45.
    const matches = [6457, 4882, 1770, 7844, 6156, 1998, 947, 8975];
    const official = readArray("wrn28_2_forward", "input_uint8") as Uint8Array;
    const officialLabels = readArray("wrn28_2_forward", "input_labels") as Uint8Array;
    let totalDifference = 0;
    matches.forEach((index, g) => {
      assert.equal(dataset.test.labels[index], officialLabels[g], `label of golden image ${g}`);
      let difference = 0;
      for (let i = 0; i < 3072; i++) {
        difference += Math.abs(dataset.test.images[index * 3072 + i] - official[g * 3072 + i]);
      }
      assert.ok(difference / 3072 < 4, `golden image ${g}: mean absolute difference ${difference / 3072}`);
      totalDifference += difference / 3072;
    });
    assert.ok(totalDifference / matches.length < 2.5, `mean absolute difference ${totalDifference / matches.length}`);
  },
});
