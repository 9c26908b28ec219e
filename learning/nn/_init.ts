/**
 * TorchSSL's WideResNet initialisation, drawn from a seeded `Random`.
 *
 * @module
 */

import type { Random } from "../random.ts";
import type { TensorSpec } from "./_architecture.ts";

/**
 * Draws the initial value of one state_dict entry in its PyTorch layout.
 *
 * - conv weight: `kaiming_normal_(mode="fan_out", nonlinearity="leaky_relu")`
 *   with a = 0, so std = sqrt(2 / fan_out), fan_out = out * kh * kw;
 * - conv bias: PyTorch's default `Conv2d` bias,
 *   uniform(-1 / sqrt(fan_in), 1 / sqrt(fan_in)), fan_in = in * kh * kw;
 * - BN: weight 1, bias 0, running mean 0, running variance 1;
 * - linear: `xavier_normal_` weight, std = sqrt(2 / (fan_in + fan_out)), bias 0.
 *
 * `convFanIn` is the fan-in of the convolution a bias belongs to.
 */
export function initialValue(spec: TensorSpec, random: Random, convFanIn: number): Float32Array {
  const size = spec.torchShape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  switch (spec.role) {
    case "conv_weight": {
      const [outChannels, , kh, kw] = spec.torchShape;
      const std = Math.sqrt(2 / (outChannels * kh * kw));
      for (let i = 0; i < size; i++) values[i] = std * random.normal();
      break;
    }
    case "conv_bias": {
      const bound = 1 / Math.sqrt(convFanIn);
      for (let i = 0; i < size; i++) values[i] = random.range(-bound, bound);
      break;
    }
    case "fc_weight": {
      const [outFeatures, inFeatures] = spec.torchShape;
      const std = Math.sqrt(2 / (inFeatures + outFeatures));
      for (let i = 0; i < size; i++) values[i] = std * random.normal();
      break;
    }
    case "bn_weight":
    case "bn_running_var":
      values.fill(1);
      break;
    case "bn_bias":
    case "bn_running_mean":
    case "fc_bias":
      break;
  }
  return values;
}
