/**
 * Layer list of TorchSSL's WideResNet: module names, tensor shapes and the
 * PyTorch `state_dict` order, independent of any tensor library.
 *
 * @module
 */

/** One TorchSSL `BasicBlock`, named as in TorchSSL (`block2.layer.0`). */
export interface BasicBlockSpec {
  prefix: string;
  inChannels: number;
  outChannels: number;
  stride: number;
  /** TorchSSL's `activate_before_residual`, true for every layer of `block1`. */
  activateBeforeResidual: boolean;
}

/** Kind of a state_dict entry, which decides its layout and initialisation. */
export type TensorRole =
  | "conv_weight"
  | "conv_bias"
  | "bn_weight"
  | "bn_bias"
  | "bn_running_mean"
  | "bn_running_var"
  | "fc_weight"
  | "fc_bias";

/** One state_dict entry with its PyTorch shape (conv OIHW, linear [out, in]). */
export interface TensorSpec {
  name: string;
  kind: "parameter" | "buffer";
  role: TensorRole;
  torchShape: number[];
}

/** Blocks and state_dict entries of one WideResNet configuration. */
export interface Architecture {
  /** Output channels of `conv1`, `block1`, `block2`, `block3`. */
  channels: [number, number, number, number];
  /** The BasicBlocks of `block1`, `block2` and `block3`. */
  groups: [BasicBlockSpec[], BasicBlockSpec[], BasicBlockSpec[]];
  tensors: TensorSpec[];
}

function convEntries(prefix: string, inChannels: number, outChannels: number, kernel: number): TensorSpec[] {
  return [
    {
      name: `${prefix}.weight`,
      kind: "parameter",
      role: "conv_weight",
      torchShape: [outChannels, inChannels, kernel, kernel],
    },
    { name: `${prefix}.bias`, kind: "parameter", role: "conv_bias", torchShape: [outChannels] },
  ];
}

function batchNormEntries(prefix: string, channels: number): TensorSpec[] {
  return [
    { name: `${prefix}.weight`, kind: "parameter", role: "bn_weight", torchShape: [channels] },
    { name: `${prefix}.bias`, kind: "parameter", role: "bn_bias", torchShape: [channels] },
    { name: `${prefix}.running_mean`, kind: "buffer", role: "bn_running_mean", torchShape: [channels] },
    { name: `${prefix}.running_var`, kind: "buffer", role: "bn_running_var", torchShape: [channels] },
  ];
}

/**
 * Lists the blocks and state_dict entries of TorchSSL's
 * `WideResNet(first_stride=1, depth, widen_factor, num_classes)`, in the
 * order PyTorch registers them (`BasicBlock.__init__` registers bn1, conv1,
 * bn2, conv2, convShortcut).
 */
export function describeWideResNet(depth: number, widenFactor: number, numClasses: number): Architecture {
  if (!Number.isInteger(depth) || depth < 10 || (depth - 4) % 6 !== 0) {
    throw new RangeError(`WideResNet: depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got ${depth}`);
  }
  if (!Number.isInteger(widenFactor) || widenFactor < 1) {
    throw new RangeError(`WideResNet: widenFactor must be a positive integer, got ${widenFactor}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new RangeError(`WideResNet: numClasses must be a positive integer, got ${numClasses}`);
  }
  const layersPerBlock = (depth - 4) / 6;
  const channels: [number, number, number, number] = [16, 16 * widenFactor, 32 * widenFactor, 64 * widenFactor];
  const groups: [BasicBlockSpec[], BasicBlockSpec[], BasicBlockSpec[]] = [[], [], []];
  const tensors: TensorSpec[] = [...convEntries("conv1", 3, channels[0], 3)];

  const strides = [1, 2, 2];
  for (let group = 0; group < 3; group++) {
    for (let layer = 0; layer < layersPerBlock; layer++) {
      const block: BasicBlockSpec = {
        prefix: `block${group + 1}.layer.${layer}`,
        inChannels: layer === 0 ? channels[group] : channels[group + 1],
        outChannels: channels[group + 1],
        stride: layer === 0 ? strides[group] : 1,
        activateBeforeResidual: group === 0,
      };
      if (block.inChannels === block.outChannels && block.stride !== 1) {
        // TorchSSL would add an input and an output of different sizes here.
        throw new RangeError(`WideResNet: ${block.prefix} has stride ${block.stride} without a shortcut convolution`);
      }
      groups[group].push(block);
      tensors.push(
        ...batchNormEntries(`${block.prefix}.bn1`, block.inChannels),
        ...convEntries(`${block.prefix}.conv1`, block.inChannels, block.outChannels, 3),
        ...batchNormEntries(`${block.prefix}.bn2`, block.outChannels),
        ...convEntries(`${block.prefix}.conv2`, block.outChannels, block.outChannels, 3),
      );
      if (block.inChannels !== block.outChannels) {
        tensors.push(...convEntries(`${block.prefix}.convShortcut`, block.inChannels, block.outChannels, 1));
      }
    }
  }

  tensors.push(
    ...batchNormEntries("bn1", channels[3]),
    { name: "fc.weight", kind: "parameter", role: "fc_weight", torchShape: [numClasses, channels[3]] },
    { name: "fc.bias", kind: "parameter", role: "fc_bias", torchShape: [numClasses] },
  );
  return { channels, groups, tensors };
}
