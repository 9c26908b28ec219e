/**
 * The schema of the study configuration. Every object is strict: an unknown
 * key is an error, as is a wrong type or an out-of-range value.
 *
 * @example
 * ```ts
 * const config = StudyConfig.parse(mergedYaml);
 * ```
 * @module
 */

import { z } from "zod";

const positiveInt = z.number().int().positive();
const probability = z.number().min(0).max(1);
/** An algorithm's own iteration count; absent or null: train.iterations. */
const algorithmIterations = positiveInt.nullable().optional();

/** Names of the algorithms the study can run. */
export const ALGORITHMS = ["fixmatch", "mixmatch"] as const;
/** An algorithm name. */
export type AlgorithmName = (typeof ALGORITHMS)[number];

/** Names of the compute backends. */
export const BACKENDS = ["auto", "native", "wasm", "cpu", "tensorflow", "tensorflow-gpu", "webgpu"] as const;

/** The dataset source and its limits. */
export const DatasetConfig = z.strictObject({
  source: z.enum(["cifar10-binary", "image-folder", "synthetic"]),
  url: z.string().url().refine((url) => url.startsWith("https://"), {
    message: "the download URL must use https://",
  }),
  md5: z.string().regex(/^[0-9a-f]{32}$/, "an MD5 digest is 32 lowercase hex digits"),
  path: z.string().min(1).nullable(),
  wrong_size: z.enum(["reject", "resize"]),
  max_extracted_bytes: positiveInt,
  max_members: positiveInt,
  synthetic: z.strictObject({
    train_per_class: positiveInt,
    test_per_class: positiveInt,
  }),
});

/** The matrix of cells the study runs. */
export const StudyMatrix = z.strictObject({
  algorithms: z.array(z.enum(ALGORITHMS)).min(1),
  labels: z.array(positiveInt).min(1),
  seeds: z.array(z.number().int().min(0)).min(1),
});

/** WideResNet settings (PyTorch BN conventions). */
export const ModelConfig = z.strictObject({
  depth: z.number().int().min(10).refine((d) => (d - 4) % 6 === 0, {
    message: "depth must be 6n + 4 (10, 16, 22, 28, ...)",
  }),
  widen_factor: positiveInt,
  bn_momentum: z.number().gt(0).max(1),
  bn_eps: z.number().gt(0),
  leaky_slope: z.number().min(0).max(1),
});

/** Optimisation and bookkeeping of the train stage. */
export const TrainConfig = z.strictObject({
  iterations: positiveInt,
  batch_size: positiveInt,
  lr: z.number().gt(0),
  lr_cycles: z.number().min(0),
  momentum: z.number().min(0).lt(1),
  nesterov: z.boolean(),
  weight_decay: z.number().min(0),
  ema_decay: z.number().min(0).lt(1),
  ema_warmup: z.boolean(),
  checkpoint_every: positiveInt,
  log_every: positiveInt,
  eval_every: z.number().int().min(0),
  eval_images: positiveInt,
  max_forward_images: z.union([z.literal("backend"), positiveInt]),
});

/** FixMatch hyperparameters. */
export const FixMatchConfig = z.strictObject({
  iterations: algorithmIterations,
  threshold: probability,
  uratio: positiveInt,
  lambda_u: z.number().min(0),
  randaugment: z.strictObject({
    num_ops: z.number().int().min(0).max(14),
    apply_probability: probability,
  }),
});

/** MixMatch hyperparameters. */
export const MixMatchConfig = z.strictObject({
  iterations: algorithmIterations,
  uratio: positiveInt,
  num_views: positiveInt,
  temperature: z.number().gt(0),
  alpha: z.number().gt(0),
  mixup: z.enum(["batch", "sample"]),
  lambda_u: z.number().min(0),
  ramp_up: z.number().gt(0).max(1),
});

/** The whole configuration after merging files and flags. */
export const StudyConfig = z.strictObject({
  profile: z.string(),
  artifacts: z.string().min(1),
  dataset: DatasetConfig,
  study: StudyMatrix,
  backend: z.enum(BACKENDS),
  augment_workers: z.number().int().min(0).max(64),
  parallel_cells: z.union([z.literal("auto"), positiveInt]),
  model: ModelConfig,
  train: TrainConfig,
  fixmatch: FixMatchConfig,
  mixmatch: MixMatchConfig,
  evaluate: z.strictObject({
    batch_size: positiveInt,
    test_images: z.union([z.literal("all"), positiveInt]),
  }),
  tabulate: z.strictObject({
    metric: z.enum(["final", "raw_final", "best", "median_last_20"]),
    references: z.string().min(1),
  }),
});

/** The validated configuration. */
export type StudyConfig = z.infer<typeof StudyConfig>;
/** The validated train section. */
export type TrainConfig = z.infer<typeof TrainConfig>;
