/**
 * Golden FixMatch steps with thresholds 0.95 (TorchSSL's default, nothing
 * accepted at initialisation) and 0.196 (half the batch accepted): losses,
 * mask, pseudo-labels, logits, gradients, 13 tensors after the step, their
 * EMA, and per-tensor update statistics of every parameter.
 */

import { checkFixmatchVariant, useCpuBackend } from "./_algorithms_golden.ts";
import { goldenDir } from "./_golden.ts";

const noGolden = goldenDir() === null;
if (noGolden) console.warn("golden folder not found: golden FixMatch threshold tests are skipped");

await useCpuBackend();

Deno.test({
  name: "fixmatch golden step, threshold 0.95",
  ignore: noGolden,
  async fn() {
    const { deltas } = await checkFixmatchVariant("p0_95");
    console.log(
      `p0_95: update ‖ΔΔ‖/‖Δ‖ (13 tensors) ${deltas.globalRelative.toExponential(2)}, worst ${deltas.worstTensor} ${
        deltas.worstRelative.toExponential(2)
      }`,
    );
  },
});

Deno.test({
  name: "fixmatch golden step, threshold 0.196",
  ignore: noGolden,
  async fn() {
    const { deltas } = await checkFixmatchVariant("p0_196");
    console.log(
      `p0_196: update ‖ΔΔ‖/‖Δ‖ (13 tensors) ${deltas.globalRelative.toExponential(2)}, worst ${deltas.worstTensor} ${
        deltas.worstRelative.toExponential(2)
      }`,
    );
  },
});
