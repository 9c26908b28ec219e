/**
 * Stochastic gradient descent with Nesterov momentum and L2 weight decay, as
 * `torch.optim.SGD(nesterov=True, dampening=0)` built by TorchSSL's `get_optimizer`.
 *
 * For each parameter with a gradient:
 * ```
 * d   = g + weightDecay · w          (only for names in weightDecayNames)
 * buf = d                            (first step)  or  momentum · buf + d
 * w  ← w − lr · (d + momentum · buf) (Nesterov)    or  w − lr · buf
 * ```
 * Parameters without a gradient are skipped entirely (no decay, no momentum
 * update), as PyTorch skips parameters whose `.grad` is `None`.
 *
 * @example
 * ```ts
 * const sgd = new SGD({ weightDecayNames: model.weightDecayNames });
 * sgd.step(model.parameters, grads, cosineLearningRate(step, totalSteps));
 * ```
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** Settings of {@linkcode SGD}; the defaults are TorchSSL's CIFAR-10 settings. */
export interface SGDOptions {
  /** Momentum factor (default 0.9). */
  momentum?: number;
  /** Nesterov momentum (default true). */
  nesterov?: boolean;
  /** L2 weight decay added to the gradient before momentum (default 5e-4). */
  weightDecay?: number;
  /** Names of the parameters that get weight decay; the others get none. */
  weightDecayNames: ReadonlySet<string>;
}

/** A momentum buffer exported for a checkpoint. */
export interface MomentumBuffer {
  shape: number[];
  data: Float32Array;
}

/** SGD with (Nesterov) momentum, dampening 0 and coupled L2 weight decay. */
export class SGD {
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly weightDecayNames: ReadonlySet<string>;
  #buffers = new Map<string, tf.Tensor>();

  /**
   * Creates an optimizer with fresh (empty) momentum buffers.
   *
   * @example
   * ```ts
   * const sgd = new SGD({ weightDecayNames: new Set(["fc.weight"]) });
   * ```
   */
  constructor(options: SGDOptions) {
    this.momentum = options.momentum ?? 0.9;
    this.nesterov = options.nesterov ?? true;
    this.weightDecay = options.weightDecay ?? 5e-4;
    this.weightDecayNames = options.weightDecayNames;
    if (!(this.momentum >= 0 && this.momentum < 1)) {
      throw new RangeError(`SGD: momentum must be in [0, 1), got ${this.momentum}`);
    }
    if (this.nesterov && this.momentum === 0) {
      throw new RangeError("SGD: Nesterov momentum needs momentum > 0; set nesterov: false or momentum: 0.9");
    }
    if (!(this.weightDecay >= 0)) {
      throw new RangeError(`SGD: weightDecay must be >= 0, got ${this.weightDecay}`);
    }
  }

  /**
   * Updates `parameters` in place with `grads` (keyed by parameter name) and learning rate `lr`.
   * Names missing from `grads` are skipped. Gradients are not disposed.
   *
   * @example
   * ```ts
   * sgd.step(model.parameters, result.grads, 0.03);
   * ```
   */
  step(parameters: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    if (!(lr >= 0) || !Number.isFinite(lr)) {
      throw new RangeError(`SGD.step: lr must be a finite number >= 0, got ${lr}`);
    }
    for (const name of grads.keys()) {
      if (!parameters.has(name)) {
        throw new Error(`SGD.step: gradient for unknown parameter "${name}"; pass the model's parameters map`);
      }
    }
    for (const [name, parameter] of parameters) {
      const grad = grads.get(name);
      if (grad === undefined) continue;
      if (!tf.util.arraysEqual(grad.shape, parameter.shape)) {
        throw new Error(
          `SGD.step: gradient of "${name}" has shape [${grad.shape}], parameter has [${parameter.shape}]`,
        );
      }
      const decay = this.weightDecayNames.has(name) ? this.weightDecay : 0;
      const previous = this.#buffers.get(name);
      const [updated, buffer] = tf.tidy(() => this.#update(parameter, grad, previous, decay, lr));
      parameter.assign(updated);
      updated.dispose();
      if (buffer !== undefined) {
        previous?.dispose();
        this.#buffers.set(name, buffer);
      }
    }
  }

  #update(
    parameter: tf.Tensor,
    grad: tf.Tensor,
    previous: tf.Tensor | undefined,
    decay: number,
    lr: number,
  ): [tf.Tensor, tf.Tensor | undefined] {
    // Same operation order as torch.optim.SGD, so float32 rounding agrees with PyTorch.
    const d = decay === 0 ? grad : tf.add(grad, tf.mul(parameter, tf.scalar(decay)));
    if (this.momentum === 0) {
      return [tf.sub(parameter, tf.mul(d, tf.scalar(lr))), undefined];
    }
    const buffer = previous === undefined ? d.clone() : tf.add(tf.mul(previous, tf.scalar(this.momentum)), d);
    const direction = this.nesterov ? tf.add(d, tf.mul(buffer, tf.scalar(this.momentum))) : buffer;
    return [tf.sub(parameter, tf.mul(direction, tf.scalar(lr))), buffer];
  }

  /**
   * Exports the momentum buffers for a checkpoint. Parameters that never had a
   * gradient have no buffer.
   * NOTE: reads with `dataSync`, which the webgpu backend cannot do under Deno (no OffscreenCanvas).
   *
   * @example
   * ```ts
   * const saved = sgd.state();
   * ```
   */
  state(): Map<string, MomentumBuffer> {
    const state = new Map<string, MomentumBuffer>();
    for (const [name, buffer] of this.#buffers) {
      state.set(name, { shape: buffer.shape.slice(), data: Float32Array.from(buffer.dataSync()) });
    }
    return state;
  }

  /**
   * Replaces all momentum buffers with `state` (as returned by {@linkcode SGD.state}).
   *
   * @example
   * ```ts
   * sgd.loadState(saved);
   * ```
   */
  loadState(state: ReadonlyMap<string, MomentumBuffer>): void {
    for (const [name, buffer] of state) {
      const size = buffer.shape.reduce((a, b) => a * b, 1);
      if (buffer.data.length !== size) {
        throw new Error(
          `SGD.loadState: buffer "${name}" has ${buffer.data.length} values, shape [${buffer.shape}] needs ${size}`,
        );
      }
    }
    this.dispose();
    for (const [name, buffer] of state) {
      this.#buffers.set(name, tf.tensor(Float32Array.from(buffer.data), buffer.shape, "float32"));
    }
  }

  /**
   * Frees the momentum buffers; the next step starts from fresh buffers.
   *
   * @example
   * ```ts
   * sgd.dispose();
   * ```
   */
  dispose(): void {
    for (const buffer of this.#buffers.values()) buffer.dispose();
    this.#buffers.clear();
  }
}
