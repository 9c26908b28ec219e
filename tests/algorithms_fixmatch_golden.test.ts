/**
 * Golden FixMatch step with threshold 0 (every pseudo-label accepted): losses,
 * mask, pseudo-labels, logits, gradients, the full state_dict after the SGD
 * step and the EMA, against TorchSSL's `FixMatch.train()`.
 */

import { checkFixmatchVariant, useCpuBackend } from "./_algorithms_golden.ts";
import { goldenDir } from "./_golden.ts";

const noGolden = goldenDir() === null;
if (noGolden) console.warn("golden folder not found: golden FixMatch step test is skipped");

await useCpuBackend();

Deno.test({
  name: "fixmatch golden step, threshold 0",
  ignore: noGolden,
  async fn() {
    const { seconds, deltas } = await checkFixmatchVariant("p0");
    console.log(
      `fixmatch step (20 images, WRN-28-2, cpu backend): ${seconds.toFixed(1)} s; ` +
        `update ‖ΔΔ‖/‖Δ‖ ${deltas.globalRelative.toExponential(2)}, ` +
        `worst tensor ${deltas.worstTensor} ${deltas.worstRelative.toExponential(2)}`,
    );
  },
});
