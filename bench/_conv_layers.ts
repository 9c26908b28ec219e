/**
 * Convolution layers of a WideResNet and their floating-point operation
 * counts, for the benchmark's fraction-of-peak line.
 *
 * The layer list comes from `describeWideResNet`, so it follows the model:
 * every 3x3 convolution pads 1 pixel, every 1x1 shortcut pads none, and the
 * first layer of `block2` and `block3` has stride 2.
 *
 * @example
 * ```ts
 * import { trainingConvFlops, wideResNetConvLayers } from "./_conv_layers.ts";
 *
 * const layers = wideResNetConvLayers({ batchSize: 64 });
 * console.log(layers.length, trainingConvFlops(layers) / 1e9); // 28 layers, GFLOP per training pass
 * ```
 * @module
 */

import { describeWideResNet } from "../learning/nn/_architecture.ts";

/** Forward, backward with respect to the input, backward with respect to the kernel. */
export const TRAINING_PASSES_PER_CONV = 3;

/** One convolution of the network at a given batch size, NHWC input. */
export interface ConvLayer {
  /** TorchSSL module name, for example "block2.layer.0.conv1". */
  name: string;
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outChannels: number;
  /** Square kernel size (3 or 1). */
  kernelSize: number;
  stride: number;
  /** Zero padding on each side: (kernelSize - 1) / 2. */
  padding: number;
  outHeight: number;
  outWidth: number;
}

/** Layers that share one shape, so timing one of them times them all. */
export interface ConvShapeGroup {
  /** The first layer of the group, in forward order. */
  layer: ConvLayer;
  /** Names of every layer with this shape, in forward order. */
  names: string[];
}

/** Options of {@link wideResNetConvLayers}; the defaults are WRN-28-2 on 32x32 CIFAR-10 images. */
export interface ConvLayerOptions {
  batchSize: number;
  depth?: number;
  widenFactor?: number;
  imageSize?: number;
}

/**
 * Lists every convolution of TorchSSL's WideResNet in forward order with its
 * input and output shapes at `batchSize` images.
 *
 * @example
 * ```ts
 * const [stem] = wideResNetConvLayers({ batchSize: 64 });
 * console.log(stem.name, stem.inChannels, stem.outChannels); // "conv1" 3 16
 * ```
 */
export function wideResNetConvLayers(options: ConvLayerOptions): ConvLayer[] {
  const { batchSize, depth = 28, widenFactor = 2, imageSize = 32 } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`wideResNetConvLayers: batchSize must be a positive integer, got ${batchSize}`);
  }
  if (!Number.isInteger(imageSize) || imageSize < 1) {
    throw new RangeError(`wideResNetConvLayers: imageSize must be a positive integer, got ${imageSize}`);
  }
  const architecture = describeWideResNet(depth, widenFactor, 10);
  const layers: ConvLayer[] = [makeLayer("conv1", batchSize, imageSize, 3, architecture.channels[0], 3, 1)];
  let size = imageSize;
  for (const blocks of architecture.groups) {
    for (const block of blocks) {
      const { prefix, inChannels, outChannels, stride } = block;
      const conv1 = makeLayer(`${prefix}.conv1`, batchSize, size, inChannels, outChannels, 3, stride);
      const conv2 = makeLayer(`${prefix}.conv2`, batchSize, conv1.outHeight, outChannels, outChannels, 3, 1);
      layers.push(conv1, conv2);
      if (inChannels !== outChannels) {
        // The 1x1 shortcut reads the block's input with the block's stride.
        layers.push(makeLayer(`${prefix}.convShortcut`, batchSize, size, inChannels, outChannels, 1, stride));
      }
      size = conv1.outHeight;
    }
  }
  return layers;
}

function makeLayer(
  name: string,
  batchSize: number,
  size: number,
  inChannels: number,
  outChannels: number,
  kernelSize: number,
  stride: number,
): ConvLayer {
  const padding = (kernelSize - 1) / 2;
  const outSize = Math.floor((size + 2 * padding - kernelSize) / stride) + 1;
  return {
    name,
    batchSize,
    inHeight: size,
    inWidth: size,
    inChannels,
    outChannels,
    kernelSize,
    stride,
    padding,
    outHeight: outSize,
    outWidth: outSize,
  };
}

/**
 * Counts the floating-point operations of one pass of a convolution:
 * 2 · N · OH · OW · KH · KW · CI · CO (one multiply and one add per
 * multiply-accumulate). The bias add is not counted.
 *
 * @example
 * ```ts
 * const [stem] = wideResNetConvLayers({ batchSize: 1 });
 * convFlops(stem); // 2 * 32 * 32 * 3 * 3 * 3 * 16 = 884736
 * ```
 */
export function convFlops(layer: ConvLayer): number {
  return 2 * layer.batchSize * layer.outHeight * layer.outWidth * layer.kernelSize * layer.kernelSize *
    layer.inChannels * layer.outChannels;
}

/**
 * Sums the floating-point operations of forward plus both backward passes
 * ({@link TRAINING_PASSES_PER_CONV} passes, each counted as the forward)
 * over `layers`.
 *
 * @example
 * ```ts
 * trainingConvFlops(wideResNetConvLayers({ batchSize: 64 })); // 82311118848, about 82 GFLOP
 * ```
 */
export function trainingConvFlops(layers: readonly ConvLayer[]): number {
  let total = 0;
  for (const layer of layers) total += TRAINING_PASSES_PER_CONV * convFlops(layer);
  return total;
}

/**
 * Groups layers of identical shape, keeping forward order of first
 * appearance.
 *
 * @example
 * ```ts
 * const groups = groupConvShapes(wideResNetConvLayers({ batchSize: 64 }));
 * console.log(groups.length); // 10 distinct shapes among the 28 layers of WRN-28-2
 * ```
 */
export function groupConvShapes(layers: readonly ConvLayer[]): ConvShapeGroup[] {
  const groups = new Map<string, ConvShapeGroup>();
  for (const layer of layers) {
    const key = [
      layer.batchSize,
      layer.inHeight,
      layer.inWidth,
      layer.inChannels,
      layer.outChannels,
      layer.kernelSize,
      layer.stride,
    ].join("x");
    const group = groups.get(key);
    if (group) group.names.push(layer.name);
    else groups.set(key, { layer, names: [layer.name] });
  }
  return [...groups.values()];
}

/**
 * Formats a layer's shape as `N x H x W x CI -> CO, KxK/stride`.
 *
 * @example
 * ```ts
 * describeConvShape(wideResNetConvLayers({ batchSize: 64 })[0]); // "64x32x32x3 -> 16, 3x3/1"
 * ```
 */
export function describeConvShape(layer: ConvLayer): string {
  return `${layer.batchSize}x${layer.inHeight}x${layer.inWidth}x${layer.inChannels} -> ${layer.outChannels}, ` +
    `${layer.kernelSize}x${layer.kernelSize}/${layer.stride}`;
}
