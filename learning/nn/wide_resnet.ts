/**
 * WideResNet-28-2 exactly as TorchSSL builds it for CIFAR-10, written
 * functionally in TensorFlow.js (parameters are `tf.Variable`s, no
 * `tf.layers`).
 *
 * TorchSSL details that this model reproduces:
 * - every Conv2d has a bias, and every 3x3 convolution pads 1 pixel on each
 *   side, also the stride-2 ones;
 * - `BatchNorm2d(momentum=0.001, eps=0.001)` with PyTorch semantics: train mode
 *   normalises with the biased batch variance, and the running variance is
 *   updated with the unbiased one;
 * - `LeakyReLU(0.1)` everywhere, including after the last BN;
 * - `block1.layer.0` applies bn1 and the activation before both the residual
 *   branch and the shortcut (`activate_before_residual`);
 * - `block2.layer.0` and `block3.layer.0` compute `lrelu(bn1(x))` and discard
 *   it. Their bn1 never affects the output, so its weight and bias get no
 *   gradient, but its running statistics still update in train mode.
 *
 * Convolutions and train-mode BN carry custom gradients (see `_layers.ts`):
 * the kernel gradient is computed with a forward Conv2D, so no backend needs
 * a Conv2DBackpropFilter kernel. The input gradient uses Conv2DBackpropInput.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { WideResNet } from "./wide_resnet.ts";
 * import { normalizeImages } from "./normalize.ts";
 *
 * const model = new WideResNet({ seed: 1 });
 * const x = normalizeImages(new Uint8Array(2 * 32 * 32 * 3), 2);
 * const { logits } = model.apply(x, false); // [2, 10]
 * tf.dispose([x, logits]);
 * model.dispose();
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Random } from "../random.ts";
import { type Architecture, type BasicBlockSpec, describeWideResNet, type TensorSpec } from "./_architecture.ts";
import { initialValue } from "./_init.ts";
import { tfjsShape, tfjsToTorch, torchToTfjs } from "./_layout.ts";
import { batchMoments, batchNorm, conv2d, leakyRelu, trainBatchNorm } from "./_layers.ts";

/** Construction options. The defaults are TorchSSL's WRN-28-2 for CIFAR-10. */
export interface WideResNetOptions {
  /** Network depth, 6n + 4. Default 28. */
  depth?: number;
  /** Width multiplier of the three block groups. Default 2. */
  widenFactor?: number;
  /** Number of output logits. Default 10. */
  numClasses?: number;
  /** BN momentum in PyTorch's convention (`running = (1 - m) * running + m * batch`). Default 0.001, as TorchSSL hard-codes it. */
  bnMomentum?: number;
  /** BN epsilon added to the variance. Default 0.001. */
  bnEps?: number;
  /** Negative slope of every LeakyReLU. Default 0.1. */
  leakySlope?: number;
  /** Seed of the initial weights, drawn with `Random.derive(seed, "wide_resnet", "init")`. Default 0. */
  seed?: number;
}

/** Batch statistics of one BN layer from a train-mode forward. */
export interface BatchNormStats {
  /** TorchSSL module name, for example "block1.layer.0.bn1". */
  name: string;
  /** Per-channel batch mean. */
  mean: tf.Tensor1D;
  /** Per-channel biased batch variance (divided by `count`). */
  variance: tf.Tensor1D;
  /** Number of values per channel, N * H * W. */
  count: number;
}

/** Output of `WideResNet.apply`. */
export interface ForwardResult {
  /** Logits [N, numClasses]. */
  logits: tf.Tensor2D;
  /**
   * BN batch statistics in forward order, empty in eval mode. The tensors are
   * marked with `tf.keep`, so they outlive any enclosing `tf.tidy` or
   * `tf.variableGrads`, and the caller must dispose them (`disposeBatchStats`).
   */
  batchStats: BatchNormStats[];
}

/** Intermediate activations (NHWC) returned by `WideResNet.applyWithActivations`. */
export interface Activations {
  conv1: tf.Tensor4D;
  block1: tf.Tensor4D;
  block2: tf.Tensor4D;
  block3: tf.Tensor4D;
  /** Globally average-pooled features [N, channels], the input of `fc`. */
  pooled: tf.Tensor2D;
}

/** A state_dict entry in PyTorch layout (conv OIHW, linear [out, in]). */
export interface StateTensor {
  shape: number[];
  data: Float32Array;
}

let modelCount = 0;

/**
 * TorchSSL's WideResNet (`first_stride=1`, `drop_rate=0`) on NHWC float32
 * input.
 *
 * Parameters and buffers are `tf.Variable`s keyed by their TorchSSL
 * `state_dict` names. Each variable's own `name` carries a per-model prefix,
 * so several models can coexist. `tf.variableGrads` returns gradients keyed
 * by that variable name, and `parameterGradients` maps them back.
 *
 * @example
 * ```ts
 * const model = new WideResNet({ seed: 0 });
 * model.parameterCount(); // 1469642
 * model.parameters.get("block1.layer.0.conv1.weight")!.shape; // [3, 3, 16, 32] (HWIO)
 * model.dispose();
 * ```
 */
export class WideResNet {
  /** Options with defaults filled in. */
  readonly options: Required<WideResNetOptions>;
  /** Trainable tensors in `named_parameters()` order (conv HWIO, fc [in, out]). */
  readonly parameters: Map<string, tf.Variable>;
  /** BN running statistics ("<bn>.running_mean", "<bn>.running_var"), not trainable. */
  readonly buffers: Map<string, tf.Variable>;
  /** Parameters that get weight decay in TorchSSL: names containing neither "bn" nor "bias". */
  readonly weightDecayNames: Set<string>;

  readonly #architecture: Architecture;
  readonly #specs: Map<string, TensorSpec>;

  constructor(options: WideResNetOptions = {}) {
    this.options = {
      depth: options.depth ?? 28,
      widenFactor: options.widenFactor ?? 2,
      numClasses: options.numClasses ?? 10,
      bnMomentum: options.bnMomentum ?? 0.001,
      bnEps: options.bnEps ?? 0.001,
      leakySlope: options.leakySlope ?? 0.1,
      seed: options.seed ?? 0,
    };
    const { bnMomentum, bnEps } = this.options;
    if (!(bnMomentum >= 0 && bnMomentum <= 1)) {
      throw new RangeError(`WideResNet: bnMomentum must be in [0, 1] (PyTorch convention), got ${bnMomentum}`);
    }
    if (!(bnEps > 0)) throw new RangeError(`WideResNet: bnEps must be > 0, got ${bnEps}`);

    this.#architecture = describeWideResNet(this.options.depth, this.options.widenFactor, this.options.numClasses);
    this.#specs = new Map(this.#architecture.tensors.map((spec) => [spec.name, spec]));
    this.parameters = new Map();
    this.buffers = new Map();

    const prefix = `wide_resnet_${modelCount++}/`;
    const random = Random.derive(this.options.seed, "wide_resnet", "init");
    let convFanIn = 0;
    for (const spec of this.#architecture.tensors) {
      if (spec.role === "conv_weight") {
        const [, inChannels, kh, kw] = spec.torchShape;
        convFanIn = inChannels * kh * kw;
      }
      const values = torchToTfjs(spec.role, spec.torchShape, initialValue(spec, random, convFanIn));
      const trainable = spec.kind === "parameter";
      const initial = tf.tensor(values, tfjsShape(spec.role, spec.torchShape));
      const variable = tf.variable(initial, trainable, prefix + spec.name);
      initial.dispose();
      (trainable ? this.parameters : this.buffers).set(spec.name, variable);
    }
    this.weightDecayNames = new Set(
      [...this.parameters.keys()].filter((name) => !name.includes("bn") && !name.includes("bias")),
    );
  }

  /** Returns the number of trainable values (1,469,642 for WRN-28-2). */
  parameterCount(): number {
    let count = 0;
    for (const variable of this.parameters.values()) count += variable.size;
    return count;
  }

  /**
   * Runs the network on normalised NHWC float32 images.
   *
   * In train mode BN normalises with the batch statistics and returns them in
   * `batchStats`. It does not modify the running statistics, because `apply`
   * also runs inside gradient tapes: call `updateRunningStats` afterwards and
   * then dispose the statistics with `disposeBatchStats`.
   *
   * @example
   * ```ts
   * const { value, grads } = tf.variableGrads(() => {
   *   const { logits, batchStats } = model.apply(x, true);
   *   stats = batchStats;
   *   return tf.losses.softmaxCrossEntropy(labels, logits);
   * }, [...model.parameters.values()]);
   * model.updateRunningStats(stats);
   * disposeBatchStats(stats);
   * ```
   */
  apply(x: tf.Tensor4D, training: boolean): ForwardResult {
    const batchStats: BatchNormStats[] = [];
    const logits = tf.tidy(() => this.#forward(x, training, batchStats, null));
    return { logits, batchStats };
  }

  /**
   * Runs `apply` and also returns the intermediate activations (outputs of
   * `conv1`, `block1`, `block2`, `block3` and the pooled features). The
   * activations are marked with `tf.keep` and the caller disposes them.
   */
  applyWithActivations(x: tf.Tensor4D, training: boolean): ForwardResult & { activations: Activations } {
    const batchStats: BatchNormStats[] = [];
    const activations: Partial<Activations> = {};
    const logits = tf.tidy(() => this.#forward(x, training, batchStats, activations));
    return { logits, batchStats, activations: activations as Activations };
  }

  /**
   * Updates the BN running statistics from a train-mode forward with
   * PyTorch's rule: `running_mean = (1 - m) * running_mean + m * mean` and
   * `running_var = (1 - m) * running_var + m * variance * n / (n - 1)`.
   * It does not dispose `stats`.
   */
  updateRunningStats(stats: BatchNormStats[]): void {
    const momentum = this.options.bnMomentum;
    for (const stat of stats) {
      const runningMean = this.buffers.get(`${stat.name}.running_mean`);
      const runningVar = this.buffers.get(`${stat.name}.running_var`);
      if (runningMean === undefined || runningVar === undefined) {
        throw new Error(
          `updateRunningStats: no BN layer named "${stat.name}" in this model; pass statistics from this model's apply()`,
        );
      }
      if (
        !tf.util.arraysEqual(stat.mean.shape, runningMean.shape) ||
        !tf.util.arraysEqual(stat.variance.shape, runningVar.shape)
      ) {
        throw new Error(
          `updateRunningStats: statistics of "${stat.name}" have shape [${stat.mean.shape}] / [${stat.variance.shape}], ` +
            `expected [${runningMean.shape}]`,
        );
      }
      if (!(stat.count > 1)) {
        throw new RangeError(
          `updateRunningStats: "${stat.name}" needs more than 1 value per channel to estimate a variance, got count ${stat.count}`,
        );
      }
      tf.tidy(() => {
        runningMean.assign(tf.add(tf.mul(runningMean, 1 - momentum), tf.mul(stat.mean, momentum)));
        const unbiased = tf.mul(stat.variance, stat.count / (stat.count - 1));
        runningVar.assign(tf.add(tf.mul(runningVar, 1 - momentum), tf.mul(unbiased, momentum)));
      });
    }
  }

  /**
   * Maps gradients from `tf.variableGrads` (keyed by variable name) to
   * TorchSSL parameter names, in `named_parameters()` order. Parameters that
   * got no gradient are left out, as PyTorch leaves their `.grad` as None and
   * SGD skips them. In WRN-28-2 these are the weight and bias of
   * `block2.layer.0.bn1` and `block3.layer.0.bn1`.
   */
  parameterGradients(grads: tf.NamedTensorMap): Map<string, tf.Tensor> {
    const result = new Map<string, tf.Tensor>();
    for (const [name, variable] of this.parameters) {
      const gradient = grads[variable.name];
      if (gradient != null) result.set(name, gradient);
    }
    return result;
  }

  /**
   * Loads a PyTorch `state_dict` (parameters and float buffers, PyTorch
   * layouts) and converts it to TensorFlow.js layouts. Entries ending in
   * `.num_batches_tracked` are ignored, because the BN momentum is fixed.
   * Nothing is assigned unless every entry is present with the right shape.
   */
  loadStateDict(tensors: Map<string, StateTensor>): void {
    for (const spec of this.#architecture.tensors) {
      const tensor = tensors.get(spec.name);
      if (tensor === undefined) {
        throw new Error(
          `loadStateDict: missing tensor "${spec.name}" (shape [${spec.torchShape}]); pass the full state_dict`,
        );
      }
      if (!tf.util.arraysEqual(tensor.shape, spec.torchShape)) {
        throw new Error(
          `loadStateDict: tensor "${spec.name}" has shape [${tensor.shape}], expected [${spec.torchShape}] (PyTorch layout)`,
        );
      }
      const size = spec.torchShape.reduce((a, b) => a * b, 1);
      if (tensor.data.length !== size) {
        throw new Error(
          `loadStateDict: tensor "${spec.name}" has ${tensor.data.length} values, expected ${size} for shape [${spec.torchShape}]`,
        );
      }
    }
    for (const name of tensors.keys()) {
      if (!this.#specs.has(name) && !name.endsWith(".num_batches_tracked")) {
        throw new Error(
          `loadStateDict: unexpected tensor "${name}"; this model (depth ${this.options.depth}, widen factor ${this.options.widenFactor}) has no such entry`,
        );
      }
    }
    for (const spec of this.#architecture.tensors) {
      const tensor = tensors.get(spec.name)!;
      const variable = this.#variable(spec.name);
      tf.tidy(() => variable.assign(tf.tensor(torchToTfjs(spec.role, spec.torchShape, tensor.data), variable.shape)));
    }
  }

  /**
   * Returns a copy of all parameters and buffers in PyTorch layouts, keyed by
   * TorchSSL names in `state_dict` order (per module: weight, bias,
   * running_mean, running_var). `num_batches_tracked` is not included.
   */
  stateDict(): Map<string, StateTensor> {
    const result = new Map<string, StateTensor>();
    for (const spec of this.#architecture.tensors) {
      const data = this.#variable(spec.name).dataSync() as Float32Array;
      result.set(spec.name, { shape: [...spec.torchShape], data: tfjsToTorch(spec.role, spec.torchShape, data) });
    }
    return result;
  }

  /** Disposes every parameter and buffer. The model is unusable afterwards. */
  dispose(): void {
    for (const variable of this.parameters.values()) variable.dispose();
    for (const variable of this.buffers.values()) variable.dispose();
  }

  #variable(name: string): tf.Variable {
    const variable = this.parameters.get(name) ?? this.buffers.get(name);
    if (variable === undefined) throw new Error(`WideResNet: no tensor named "${name}"`);
    return variable;
  }

  #forward(
    x: tf.Tensor4D,
    training: boolean,
    batchStats: BatchNormStats[],
    activations: Partial<Activations> | null,
  ): tf.Tensor2D {
    this.#checkInput(x);
    const { leakySlope } = this.options;

    let out = this.#conv("conv1", x, 1);
    this.#keepActivation(activations, "conv1", out);

    const groupNames = ["block1", "block2", "block3"] as const;
    this.#architecture.groups.forEach((blocks, group) => {
      for (const block of blocks) out = this.#basicBlock(block, out, training, batchStats);
      this.#keepActivation(activations, groupNames[group], out);
    });

    out = leakyRelu(this.#batchNorm("bn1", out, training, batchStats), leakySlope);
    const pooled = tf.mean(out, [1, 2]) as tf.Tensor2D;
    this.#keepActivation(activations, "pooled", pooled);
    const logits = tf.add(
      tf.matMul(pooled, this.#parameter("fc.weight") as tf.Tensor2D),
      this.#parameter("fc.bias"),
    ) as tf.Tensor2D;

    for (const stat of batchStats) {
      tf.keep(stat.mean);
      tf.keep(stat.variance);
    }
    return logits;
  }

  /** Mirrors TorchSSL's `BasicBlock.forward`. */
  #basicBlock(block: BasicBlockSpec, x: tf.Tensor4D, training: boolean, batchStats: BatchNormStats[]): tf.Tensor4D {
    const { leakySlope } = this.options;
    const equalInOut = block.inChannels === block.outChannels;
    const bn1 = `${block.prefix}.bn1`;

    let residualInput: tf.Tensor4D;
    let branchInput: tf.Tensor4D;
    if (!equalInOut && block.activateBeforeResidual) {
      // block1.layer.0: both paths see lrelu(bn1(x)).
      residualInput = leakyRelu(this.#batchNorm(bn1, x, training, batchStats), leakySlope);
      branchInput = residualInput;
    } else if (equalInOut) {
      residualInput = x;
      branchInput = leakyRelu(this.#batchNorm(bn1, x, training, batchStats), leakySlope);
    } else {
      // block2.layer.0 and block3.layer.0: TorchSSL computes lrelu(bn1(x)) and
      // discards it, so only the batch statistics of bn1 matter.
      if (training) batchStats.push({ name: bn1, ...batchMoments(x), count: this.#count(x) });
      residualInput = x;
      branchInput = x;
    }

    let branch = this.#conv(`${block.prefix}.conv1`, branchInput, block.stride);
    branch = leakyRelu(this.#batchNorm(`${block.prefix}.bn2`, branch, training, batchStats), leakySlope);
    branch = this.#conv(`${block.prefix}.conv2`, branch, 1);
    const shortcut = equalInOut
      ? residualInput
      : this.#conv(`${block.prefix}.convShortcut`, residualInput, block.stride);
    return tf.add(shortcut, branch);
  }

  #conv(name: string, x: tf.Tensor4D, stride: number): tf.Tensor4D {
    return conv2d(
      x,
      this.#parameter(`${name}.weight`) as tf.Tensor4D,
      this.#parameter(`${name}.bias`) as tf.Tensor1D,
      stride,
    );
  }

  #batchNorm(name: string, x: tf.Tensor4D, training: boolean, batchStats: BatchNormStats[]): tf.Tensor4D {
    const gamma = this.#parameter(`${name}.weight`) as tf.Tensor1D;
    const beta = this.#parameter(`${name}.bias`) as tf.Tensor1D;
    const eps = this.options.bnEps;
    if (training) {
      const { y, mean, variance } = trainBatchNorm(x, gamma, beta, eps);
      batchStats.push({ name, mean, variance, count: this.#count(x) });
      return y;
    }
    const runningMean = this.buffers.get(`${name}.running_mean`) as tf.Tensor1D;
    const runningVar = this.buffers.get(`${name}.running_var`) as tf.Tensor1D;
    return batchNorm(x, runningMean, runningVar, gamma, beta, eps);
  }

  #parameter(name: string): tf.Variable {
    const variable = this.parameters.get(name);
    if (variable === undefined) throw new Error(`WideResNet: no parameter named "${name}"`);
    return variable;
  }

  #count(x: tf.Tensor4D): number {
    return x.shape[0] * x.shape[1] * x.shape[2];
  }

  #keepActivation(activations: Partial<Activations> | null, key: keyof Activations, value: tf.Tensor): void {
    if (activations === null) return;
    (activations as Record<string, tf.Tensor>)[key] = tf.keep(value);
  }

  #checkInput(x: tf.Tensor4D): void {
    if (x.rank !== 4 || x.shape[3] !== 3) {
      throw new Error(
        `WideResNet.apply: expected NHWC input [N, H, W, 3], got shape [${x.shape}]; transpose NCHW input with tf.transpose(x, [0, 2, 3, 1])`,
      );
    }
    if (x.dtype !== "float32") {
      throw new Error(
        `WideResNet.apply: expected float32 input, got ${x.dtype}; normalise uint8 images with normalizeImages()`,
      );
    }
    if (x.shape[0] < 1) throw new Error("WideResNet.apply: the batch is empty");
  }
}

/**
 * Disposes the tensors of BN batch statistics returned by `apply`.
 *
 * @example
 * ```ts
 * const { logits, batchStats } = model.apply(x, true);
 * model.updateRunningStats(batchStats);
 * disposeBatchStats(batchStats);
 * ```
 */
export function disposeBatchStats(stats: BatchNormStats[]): void {
  for (const stat of stats) {
    stat.mean.dispose();
    stat.variance.dispose();
  }
}
