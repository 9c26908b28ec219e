/**
 * Exponential moving average (EMA) of the model parameters, as TorchSSL's `EMA`.
 *
 * The shadow is registered as a copy of the parameters when the EMA is
 * created; after each optimizer step `shadow = (1 − d) · w + d · shadow`.
 * Only parameters are averaged: BN running statistics are not, and a model
 * evaluated with the shadow weights keeps its live BN buffers.
 *
 * @example
 * ```ts
 * const ema = new ExponentialMovingAverage(model.parameters, 0.999);
 * sgd.step(model.parameters, grads, lr);
 * ema.update(model.parameters);
 * const restore = ema.applyTo(model.parameters);
 * try {
 *   // evaluate the model with the EMA weights
 * } finally {
 *   restore();
 * }
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** A shadow tensor exported for a checkpoint. */
export interface ShadowTensor {
  shape: number[];
  data: Float32Array;
}

/** EMA shadow of a set of named parameters. */
export class ExponentialMovingAverage {
  /** Decay used by {@linkcode ExponentialMovingAverage.update} when none is given. */
  readonly decay: number;
  #shadow = new Map<string, tf.Tensor>();

  /**
   * Registers the shadow as a copy of `parameters`.
   *
   * @example
   * ```ts
   * const ema = new ExponentialMovingAverage(model.parameters, 0.999);
   * ```
   */
  constructor(parameters: ReadonlyMap<string, tf.Variable>, decay = 0.999) {
    checkDecay(decay);
    this.decay = decay;
    for (const [name, parameter] of parameters) {
      this.#shadow.set(name, parameter.clone());
    }
  }

  /** Names of the averaged parameters, in registration order. */
  get names(): string[] {
    return [...this.#shadow.keys()];
  }

  /**
   * Moves the shadow towards the current parameters:
   * `shadow = (1 − decay) · w + decay · shadow`.
   *
   * @example
   * ```ts
   * ema.update(model.parameters, emaDecay(step, 0.999, false));
   * ```
   */
  update(parameters: ReadonlyMap<string, tf.Variable>, decay: number = this.decay): void {
    checkDecay(decay);
    this.#checkNames(parameters, "update");
    for (const [name, parameter] of parameters) {
      const previous = this.#shadow.get(name)!;
      // Same operation order and float32 scalars as TorchSSL's EMA.update.
      const next = tf.tidy(() => tf.add(tf.mul(tf.scalar(1 - decay), parameter), tf.mul(tf.scalar(decay), previous)));
      previous.dispose();
      this.#shadow.set(name, next);
    }
  }

  /**
   * Copies the shadow into `parameters` and returns a function that restores the
   * previous values. BN running statistics are not touched.
   *
   * @example
   * ```ts
   * const restore = ema.applyTo(model.parameters);
   * const logits = model.apply(images, false).logits;
   * restore();
   * ```
   */
  applyTo(parameters: ReadonlyMap<string, tf.Variable>): () => void {
    this.#checkNames(parameters, "applyTo");
    const backup = new Map<string, tf.Tensor>();
    for (const [name, parameter] of parameters) {
      backup.set(name, parameter.clone());
      parameter.assign(this.#shadow.get(name)!);
    }
    let restored = false;
    return () => {
      if (restored) return;
      restored = true;
      for (const [name, parameter] of parameters) {
        const saved = backup.get(name)!;
        parameter.assign(saved);
        saved.dispose();
      }
    };
  }

  /**
   * Exports the shadow for a checkpoint.
   * NOTE: reads with `dataSync`, which the webgpu backend cannot do under Deno (no OffscreenCanvas).
   *
   * @example
   * ```ts
   * const saved = ema.state();
   * ```
   */
  state(): Map<string, ShadowTensor> {
    const state = new Map<string, ShadowTensor>();
    for (const [name, shadow] of this.#shadow) {
      state.set(name, { shape: shadow.shape.slice(), data: Float32Array.from(shadow.dataSync()) });
    }
    return state;
  }

  /**
   * Replaces the shadow with `state` (as returned by {@linkcode ExponentialMovingAverage.state}).
   * It must name the same parameters with the same shapes.
   *
   * @example
   * ```ts
   * ema.loadState(saved);
   * ```
   */
  loadState(state: ReadonlyMap<string, ShadowTensor>): void {
    for (const [name, current] of this.#shadow) {
      const saved = state.get(name);
      if (saved === undefined) {
        throw new Error(`ExponentialMovingAverage.loadState: shadow "${name}" is missing from the state`);
      }
      if (!tf.util.arraysEqual(saved.shape, current.shape) || saved.data.length !== current.size) {
        throw new Error(
          `ExponentialMovingAverage.loadState: shadow "${name}" has shape [${saved.shape}] and ` +
            `${saved.data.length} values, expected [${current.shape}]`,
        );
      }
    }
    if (state.size !== this.#shadow.size) {
      const extra = [...state.keys()].filter((name) => !this.#shadow.has(name));
      throw new Error(`ExponentialMovingAverage.loadState: unknown shadow names ${extra.join(", ")}`);
    }
    for (const [name, current] of this.#shadow) {
      const saved = state.get(name)!;
      current.dispose();
      this.#shadow.set(name, tf.tensor(Float32Array.from(saved.data), saved.shape, "float32"));
    }
  }

  /**
   * Returns a copy of one shadow tensor; the caller disposes it.
   *
   * @example
   * ```ts
   * const fcWeight = ema.shadow("fc.weight");
   * ```
   */
  shadow(name: string): tf.Tensor {
    const shadow = this.#shadow.get(name);
    if (shadow === undefined) throw new Error(`ExponentialMovingAverage.shadow: unknown parameter "${name}"`);
    return shadow.clone();
  }

  /**
   * Frees the shadow tensors.
   *
   * @example
   * ```ts
   * ema.dispose();
   * ```
   */
  dispose(): void {
    for (const shadow of this.#shadow.values()) shadow.dispose();
    this.#shadow.clear();
  }

  #checkNames(parameters: ReadonlyMap<string, tf.Variable>, method: string): void {
    const sameNames = parameters.size === this.#shadow.size &&
      [...parameters.keys()].every((name) => this.#shadow.has(name));
    if (!sameNames) {
      throw new Error(
        `ExponentialMovingAverage.${method}: parameters do not match the registered ones; ` +
          "pass the same model.parameters map the EMA was created from",
      );
    }
  }
}

function checkDecay(decay: number): void {
  if (!(decay >= 0 && decay <= 1)) {
    throw new RangeError(`ExponentialMovingAverage: decay must be in [0, 1], got ${decay}`);
  }
}
