/**
 * Facts about the official CIFAR-10 release that several readers share.
 *
 * @example
 * ```ts
 * console.log(CIFAR10_CLASS_NAMES[3]); // "cat"
 * ```
 * @module
 */

/** Class names in the official label order (label 0 is "airplane"). */
export const CIFAR10_CLASS_NAMES: readonly string[] = Object.freeze([
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
]);

/** Download address of the official binary release. */
export const CIFAR10_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

/** MD5 of `cifar-10-binary.tar.gz` as published on the CIFAR-10 page. */
export const CIFAR10_BINARY_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";

/** Image height, width and channel count of every CIFAR-10 image. */
export const CIFAR10_IMAGE_SHAPE: Readonly<{ height: number; width: number; channels: number }> = Object
  .freeze({ height: 32, width: 32, channels: 3 });

/** Number of records in each official binary batch file. */
export const CIFAR10_RECORDS_PER_BATCH = 10_000;
