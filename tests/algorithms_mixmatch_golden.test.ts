/**
 * Golden MixMatch step at iteration 4000 of 20000 (λu = 50) with TorchSSL's
 * mixup draws fixed: label guessing, mixup, interleaved forward passes,
 * losses, gradients, the state_dict after the step (BN running statistics
 * from chunk 0 only) and the EMA, against TorchSSL's `MixMatch.train()`.
 */

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { guessLabels, mixmatchStep } from "../learning/algorithms/mixmatch.ts";
import { applyUpdate, disposeStepResult } from "../learning/algorithms/train_step.ts";
import { normalizeImages } from "../learning/nn/normalize.ts";
import { SGD } from "../learning/optim/sgd.ts";
import { ExponentialMovingAverage } from "../learning/optim/ema.ts";
import { cosineLearningRate, mixmatchLambdaU } from "../learning/optim/schedules.ts";
import {
  assertClose,
  assertDeltas,
  assertEma,
  assertGradients,
  assertLosses,
  goldenModel,
  torchLayout,
  useCpuBackend,
} from "./_algorithms_golden.ts";
import { goldenDir, readArray, readManifest, readPack } from "./_golden.ts";

const noGolden = goldenDir() === null;
if (noGolden) console.warn("golden folder not found: golden MixMatch step test is skipped");

await useCpuBackend();

const CASE = "mixmatch_step";

Deno.test({
  name: "mixmatch golden step",
  ignore: noGolden,
  async fn() {
    const manifest = readManifest(CASE);
    const settings = manifest.settings;
    const results = manifest.results;
    const zeroGradient = new Set<string>(readManifest("fixmatch_step").zero_gradient_tensors.names);
    const { model, initial } = goldenModel();
    const sgd = new SGD({ weightDecayNames: model.weightDecayNames });
    const ema = new ExponentialMovingAverage(model.parameters, 0.999);

    const lr = cosineLearningRate(settings.iteration, settings.num_train_iter);
    assert.ok(Math.abs(lr / settings.lr_for_this_step - 1) <= 1e-12, `lr ${lr}`);
    const lambdaU = mixmatchLambdaU(
      settings.iteration,
      settings.num_train_iter,
      settings.lambda_u_max,
      settings.ramp_up,
    );
    assert.equal(lambdaU, settings.lambda_u);

    const batch = {
      labeled: readArray(CASE, "x_lb_uint8") as Uint8Array,
      labels: Int32Array.from(readArray(CASE, "y_lb")),
      unlabeledViews: [
        readArray(CASE, "x_ulb_w1_uint8") as Uint8Array,
        readArray(CASE, "x_ulb_w2_uint8") as Uint8Array,
      ],
    };

    // Label guessing on its own, to compare the intermediate values.
    const views = batch.unlabeledViews.map((view) => normalizeImages(view, 4));
    const guess = guessLabels(model, views, settings.T);
    assertClose(guess.viewLogits[0].dataSync(), readArray(CASE, "logits_guess_w1"), 1e-5, "logits of view 1");
    assertClose(guess.viewLogits[1].dataSync(), readArray(CASE, "logits_guess_w2"), 1e-5, "logits of view 2");
    assertClose(guess.averageProbs.dataSync(), readArray(CASE, "avg_prob"), 1e-6, "average probabilities");
    assertClose(guess.guessedLabels.dataSync(), readArray(CASE, "guessed_labels"), 1e-6, "guessed labels");
    tf.dispose([...views, ...guess.viewLogits, guess.averageProbs, guess.guessedLabels]);

    const started = performance.now();
    const result = await mixmatchStep(
      model,
      batch,
      { lambdaU, temperature: settings.T, alpha: settings.alpha },
      { lambda: settings.lam, permutation: Int32Array.from(settings.perm) },
    );
    const seconds = (performance.now() - started) / 1000;
    try {
      assertClose(
        result.guessedLabels.dataSync(),
        readArray(CASE, "guessed_labels"),
        1e-6,
        "guessed labels in the step",
      );
      const mixedNchw = tf.tidy(() => tf.transpose(result.mixedInputs, [0, 3, 1, 2]).dataSync());
      assertClose(mixedNchw, readArray(CASE, "mixed_inputs"), 1e-6, "mixed inputs");
      assertClose(result.mixedTargets.dataSync(), readArray(CASE, "mixed_targets"), 1e-6, "mixed targets");
      assertClose(result.logits.dataSync(), readArray(CASE, "logits_mixed"), 1e-5, "de-interleaved logits");
      assertLosses(result.losses, results);
      assert.equal(result.microBatches, 3, "one forward pass per interleaved chunk");
      assert.equal(result.runningStatsUpdates.length, 1, "only chunk 0 updates the running statistics");
      assertGradients(result.grads, readPack(CASE, "grad_subset"), zeroGradient);
    } catch (error) {
      disposeStepResult(result);
      throw error;
    }
    applyUpdate(model, sgd, ema, result, lr);

    const after = model.stateDict();
    const referenceAfter = readPack(CASE, "weights_after_step");
    for (const [name, reference] of referenceAfter) {
      const tolerance = reference.kind === "buffer" ? 1e-6 : 5e-5;
      assertClose(after.get(name)!.data, reference.data, tolerance, `${name} after the step`);
    }
    const deltas = assertDeltas(initial, after, referenceAfter, zeroGradient);
    const shadow = (name: string) => {
      const tensor = ema.shadow(name);
      const values = torchLayout(name, tensor);
      tensor.dispose();
      return values;
    };
    // The subset pack tags its entries with "what", so keys read "<what>:<name>".
    const referenceEma = new Map(
      [...readPack(CASE, "ema_subset_after_step")].map(([key, t]) => [key.split(":")[1], t]),
    );
    assert.equal(referenceEma.size, 13);
    assertEma(shadow, initial, after, referenceEma);
    console.log(
      `mixmatch step (12 images in 3 chunks + 8 guessed, WRN-28-2, cpu backend): ${seconds.toFixed(1)} s; ` +
        `update ‖ΔΔ‖/‖Δ‖ ${deltas.globalRelative.toExponential(2)}, ` +
        `worst tensor ${deltas.worstTensor} ${deltas.worstRelative.toExponential(2)}`,
    );
    sgd.dispose();
    ema.dispose();
    model.dispose();
  },
});
