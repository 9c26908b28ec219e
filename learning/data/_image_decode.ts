import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { Buffer } from "node:buffer";

/** A decoded image: RGB uint8 pixels in HWC order. */
export interface RgbImage {
  height: number;
  width: number;
  /** `height * width * 3` bytes. */
  data: Uint8Array;
}

const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Decodes JPEG or PNG bytes, chosen by the file signature, to RGB.
 *
 * Grayscale becomes R = G = B, and an alpha channel is dropped without
 * compositing, as PIL's `convert("RGB")` does. PNGs with 16-bit samples are
 * scaled to 8 bits by pngjs. Throws an error naming `path` when the bytes
 * are neither format or do not decode.
 */
export function decodeImage(bytes: Uint8Array, path: string): RgbImage {
  if (startsWith(bytes, JPEG_SIGNATURE)) return decodeJpeg(bytes, path);
  if (startsWith(bytes, PNG_SIGNATURE)) return decodePng(bytes, path);
  throw new Error(
    `${path} is not a JPEG or PNG image (unknown file signature). Replace it with a JPEG or PNG file or remove it.`,
  );
}

function startsWith(bytes: Uint8Array, signature: number[]): boolean {
  return bytes.length >= signature.length && signature.every((byte, i) => bytes[i] === byte);
}

function decodeJpeg(bytes: Uint8Array, path: string): RgbImage {
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    // jpeg-js 0.4.4 converts grayscale and CMYK JPEGs to RGB itself when formatAsRGBA is false.
    decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
  } catch (error) {
    throw undecodable(path, "JPEG", error);
  }
  return { height: decoded.height, width: decoded.width, data: decoded.data };
}

function decodePng(bytes: Uint8Array, path: string): RgbImage {
  let png: { width: number; height: number; data: Uint8Array };
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw undecodable(path, "PNG", error);
  }
  // pngjs always returns 8-bit RGBA, whatever the stored color type.
  const pixels = png.width * png.height;
  const data = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    data[p * 3] = png.data[p * 4];
    data[p * 3 + 1] = png.data[p * 4 + 1];
    data[p * 3 + 2] = png.data[p * 4 + 2];
  }
  return { height: png.height, width: png.width, data };
}

function undecodable(path: string, format: string, error: unknown): Error {
  return new Error(
    `${path} cannot be decoded as ${format} (${(error as Error).message}). The file is corrupt; ` +
      `replace or remove it.`,
    { cause: error },
  );
}

/**
 * Resizes an RGB image with bilinear interpolation on half-pixel centers (as
 * OpenCV's INTER_LINEAR and TensorFlow's `half_pixel_centers`), rounding to
 * the nearest integer.
 *
 * NOTE: there is no antialiasing filter, so shrinking by more than 2x skips
 * source pixels and differs from PIL's BILINEAR, which widens its filter.
 */
export function resizeBilinear(image: RgbImage, height: number, width: number): RgbImage {
  const data = new Uint8Array(height * width * 3);
  const scaleY = image.height / height;
  const scaleX = image.width / width;
  for (let y = 0; y < height; y++) {
    const sourceY = Math.min(Math.max((y + 0.5) * scaleY - 0.5, 0), image.height - 1);
    const y0 = Math.floor(sourceY);
    const y1 = Math.min(y0 + 1, image.height - 1);
    const wy = sourceY - y0;
    for (let x = 0; x < width; x++) {
      const sourceX = Math.min(Math.max((x + 0.5) * scaleX - 0.5, 0), image.width - 1);
      const x0 = Math.floor(sourceX);
      const x1 = Math.min(x0 + 1, image.width - 1);
      const wx = sourceX - x0;
      for (let c = 0; c < 3; c++) {
        const top = image.data[(y0 * image.width + x0) * 3 + c] * (1 - wx) +
          image.data[(y0 * image.width + x1) * 3 + c] * wx;
        const bottom = image.data[(y1 * image.width + x0) * 3 + c] * (1 - wx) +
          image.data[(y1 * image.width + x1) * 3 + c] * wx;
        data[(y * width + x) * 3 + c] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return { height, width, data };
}
