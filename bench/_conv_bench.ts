/**
 * Times the forward and both backward passes of every convolution shape of
 * WRN-28-2 on the active TensorFlow.js backend and reports the achieved
 * GFLOP/s.
 *
 * Each shape runs through the model's own `conv2d` (learning/nn/_layers.ts)
 * under `tf.grads`, so the timed kernels are the ones training runs on that
 * backend. They are the forward convolution with bias, Conv2DBackpropInput
 * for the input gradient, the kernel gradient as `kernelGradient` computes
 * it, and a channel sum for the bias gradient. Reading the three gradients
 * back is inside the timed span.
 *
 * @example
 * ```ts
 * import { benchConv } from "./_conv_bench.ts";
 *
 * const result = await benchConv({ batchSize: 64, repeats: 3, seed: 0 });
 * console.log(`${result.gflopsPerSecond.toFixed(1)} GFLOP/s`);
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { conv2d } from "../learning/nn/_layers.ts";
import { Random } from "../learning/random.ts";
import {
  convFlops,
  describeConvShape,
  groupConvShapes,
  TRAINING_PASSES_PER_CONV,
  trainingConvFlops,
  wideResNetConvLayers,
} from "./_conv_layers.ts";
import { median } from "./_training_bench.ts";

/** Settings of {@link benchConv}. */
export interface ConvBenchOptions {
  /** Images per convolution (64 is the labeled batch of training). */
  batchSize: number;
  /** Timed runs per shape after one warm-up run; the median counts. */
  repeats: number;
  /** Seed of the random inputs, kernels and output gradients. */
  seed: number;
  log?: (message: string) => void;
}

/** Timing of one convolution shape. */
export interface ConvShapeTiming {
  /** See `describeConvShape`. */
  shape: string;
  /** Layers of WRN-28-2 with this shape. */
  layers: string[];
  /** Median seconds of one forward plus backward pass. */
  seconds: number;
  /** Forward plus backward FLOP of one layer of this shape. */
  flops: number;
}

/** Measurements of {@link benchConv}, summed over all 28 layers of WRN-28-2. */
export interface ConvMeasurement {
  batchSize: number;
  layerCount: number;
  shapes: ConvShapeTiming[];
  /** Forward plus backward FLOP of every layer. */
  totalFlops: number;
  /** Sum over layers of the median seconds of their shape. */
  totalSeconds: number;
  gflopsPerSecond: number;
}

/**
 * Times forward plus backward of each distinct convolution shape of
 * WRN-28-2 at `batchSize` images and sums over the network's layers.
 *
 * @example
 * ```ts
 * const result = await benchConv({ batchSize: 8, repeats: 1, seed: 0 });
 * console.log(result.layerCount); // 28
 * ```
 */
export async function benchConv(options: ConvBenchOptions): Promise<ConvMeasurement> {
  const { batchSize, repeats, seed } = options;
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new RangeError(`benchConv: repeats must be a positive integer, got ${repeats}`);
  }
  const log = options.log ?? (() => {});
  const layers = wideResNetConvLayers({ batchSize });
  const random = Random.derive(seed, "bench", "conv");
  const shapes: ConvShapeTiming[] = [];
  let totalSeconds = 0;

  for (const { layer, names } of groupConvShapes(layers)) {
    const { kernelSize, inChannels, outChannels, stride } = layer;
    const x = randomTensor(random, [batchSize, layer.inHeight, layer.inWidth, inChannels]) as tf.Tensor4D;
    const kernel = randomTensor(random, [kernelSize, kernelSize, inChannels, outChannels]) as tf.Tensor4D;
    const bias = randomTensor(random, [outChannels]) as tf.Tensor1D;
    const dy = randomTensor(random, [batchSize, layer.outHeight, layer.outWidth, outChannels]);
    const gradients = tf.grads((input, filter, offset) =>
      conv2d(input as tf.Tensor4D, filter as tf.Tensor4D, offset as tf.Tensor1D, stride)
    );

    const runSeconds: number[] = [];
    try {
      for (let run = 0; run <= repeats; run++) {
        const started = performance.now();
        const grads = gradients([x, kernel, bias], dy);
        await Promise.all(grads.map((grad) => grad.data()));
        const seconds = (performance.now() - started) / 1000;
        tf.dispose(grads);
        // Run 0 is the warm-up.
        if (run > 0) runSeconds.push(seconds);
      }
    } finally {
      tf.dispose([x, kernel, bias, dy]);
    }

    const seconds = median(runSeconds);
    const flops = TRAINING_PASSES_PER_CONV * convFlops(layer);
    totalSeconds += seconds * names.length;
    shapes.push({ shape: describeConvShape(layer), layers: names, seconds, flops });
    log(
      `conv ${describeConvShape(layer)} (${names.length} layer(s)): ${(seconds * 1000).toFixed(1)} ms, ` +
        `${(flops / seconds / 1e9).toFixed(1)} GFLOP/s`,
    );
  }

  const totalFlops = trainingConvFlops(layers);
  return {
    batchSize,
    layerCount: layers.length,
    shapes,
    totalFlops,
    totalSeconds,
    gflopsPerSecond: totalFlops / totalSeconds / 1e9,
  };
}

function randomTensor(random: Random, shape: number[]): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = random.normal();
  return tf.tensor(values, shape);
}
