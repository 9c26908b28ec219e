/**
 * Batch checks and micro-batch planning shared by the training steps.
 *
 * @module
 */

/** Image size of a batch of uint8 NHWC RGB images (default 32 x 32). */
export interface ImageSize {
  height?: number;
  width?: number;
}

/** Rows [start, end) of the labeled batch and of the unlabeled batch in one micro-batch. */
export interface MicroBatch {
  labeled: [number, number];
  unlabeled: [number, number];
}

/** Returns the number of images in `images`; throws unless its length is a whole number of images. */
export function imageCount(caller: string, field: string, images: Uint8Array, size: ImageSize): number {
  const height = size.height ?? 32;
  const width = size.width ?? 32;
  const bytes = height * width * 3;
  if (!(images instanceof Uint8Array) || images.length % bytes !== 0) {
    throw new Error(
      `${caller}: batch.${field} must be a Uint8Array of whole ${height}x${width} RGB images ` +
        `(a multiple of ${bytes} bytes), got ${images?.length} bytes`,
    );
  }
  return images.length / bytes;
}

/**
 * Splits a batch of `labeledCount` labeled images and `unlabeledCount` unlabeled
 * images with `views` views each into the fewest micro-batches of at most
 * `maxForwardImages` images. Each micro-batch takes a proportional slice of the
 * labeled and of the unlabeled rows and contains at least one unlabeled image.
 */
export function planMicroBatches(
  labeledCount: number,
  unlabeledCount: number,
  views: number,
  maxForwardImages: number = Infinity,
): MicroBatch[] {
  if (!(maxForwardImages >= 1)) {
    throw new RangeError(`maxForwardImages must be >= 1, got ${maxForwardImages}`);
  }
  const total = labeledCount + views * unlabeledCount;
  for (let count = Math.max(1, Math.ceil(total / maxForwardImages)); count <= unlabeledCount; count++) {
    const plan: MicroBatch[] = [];
    let fits = true;
    for (let i = 0; i < count; i++) {
      const labeled: [number, number] = [bound(i, labeledCount, count), bound(i + 1, labeledCount, count)];
      const unlabeled: [number, number] = [bound(i, unlabeledCount, count), bound(i + 1, unlabeledCount, count)];
      const size = labeled[1] - labeled[0] + views * (unlabeled[1] - unlabeled[0]);
      if (size > maxForwardImages) fits = false;
      plan.push({ labeled, unlabeled });
    }
    if (fits) return plan;
  }
  throw new RangeError(
    `maxForwardImages ${maxForwardImages} is too small to split ${labeledCount} labeled and ` +
      `${unlabeledCount} unlabeled images (${views} views each) with one unlabeled image per micro-batch; raise it`,
  );
}

function bound(i: number, count: number, parts: number): number {
  return Math.floor((i * count) / parts);
}
