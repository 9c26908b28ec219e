/**
 * Seeded random numbers for every random choice in semisup.
 *
 * Each stream is derived from a seed and a list of labels (for example
 * `Random.derive(seed, "train", iteration)`), so a training run can resume
 * at any iteration without saving generator state: iteration k always
 * draws the same batches and augmentations.
 *
 * @example
 * ```ts
 * const rng = Random.derive(0, "split", 4000);
 * const order = rng.permutation(10); // the same order on every machine
 * ```
 * @module
 */

import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { createHash } from "node:crypto";

type Generator = ReturnType<typeof xoroshiro128plus>;

/** A seeded generator of uniform, normal, gamma and beta draws. */
export class Random {
  #generator: Generator;
  #spareNormal: number | null = null;

  /** Creates a generator from a 32-bit integer seed. */
  constructor(seed: number) {
    this.#generator = xoroshiro128plus(seed | 0);
  }

  /**
   * Creates a generator whose seed is a SHA-256 hash of `seed` and `labels`,
   * so streams with different labels are independent.
   *
   * @example
   * ```ts
   * const augment = Random.derive(3, "fixmatch", "augment", 120);
   * ```
   */
  static derive(seed: number, ...labels: (string | number)[]): Random {
    const digest = createHash("sha256").update(JSON.stringify([seed, ...labels])).digest();
    return new Random(digest.readInt32LE(0));
  }

  /** Returns a float in [0, 1) with 53 random bits. */
  uniform(): number {
    return uniformFloat64(this.#generator);
  }

  /** Returns a float in [low, high). */
  range(low: number, high: number): number {
    return low + (high - low) * this.uniform();
  }

  /** Returns an integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) {
      throw new RangeError(`Random.int: n must be a positive integer, got ${n}`);
    }
    return uniformInt(this.#generator, 0, n - 1);
  }

  /** Returns true with probability p. */
  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** Returns a standard normal draw (Marsaglia's polar method). */
  normal(): number {
    if (this.#spareNormal !== null) {
      const spare = this.#spareNormal;
      this.#spareNormal = null;
      return spare;
    }
    let u = 0, v = 0, s = 0;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const factor = Math.sqrt(-2 * Math.log(s) / s);
    this.#spareNormal = v * factor;
    return u * factor;
  }

  /** Returns a Gamma(shape, 1) draw (Marsaglia and Tsang, 2000). */
  gamma(shape: number): number {
    if (!(shape > 0)) throw new RangeError(`Random.gamma: shape must be > 0, got ${shape}`);
    if (shape < 1) {
      // Boost: Gamma(a) = Gamma(a + 1) * U^(1/a).
      return this.gamma(shape + 1) * Math.pow(this.uniform(), 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x = 0, v = 0;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.uniform();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Returns a Beta(a, b) draw as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    return x / (x + y);
  }

  /** Returns a uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    this.shuffle(order);
    return order;
  }

  /** Shuffles an array in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}
