import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';

/** An 8-bit RGB image, row-major, interleaved (HWC). */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export type ImageFormat = 'png' | 'jpeg';

/** Sniffs the format from the magic bytes, so a mislabelled extension does not matter. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return undefined;
}

/**
 * Decodes a JPEG or PNG to 8-bit RGB. Grayscale is replicated to three channels, palette and 16-bit
 * PNGs are expanded/rescaled by pngjs, CMYK JPEGs are converted by jpeg-js, and alpha is dropped
 * (not composited), as PIL's convert('RGB') and tf.io.decode_png(channels=3) do.
 * Throws a plain Error with the decoder's reason; callers attach file and line.
 */
export function decodeImage(bytes: Uint8Array): RgbImage {
  const format = sniffImageFormat(bytes);
  if (format === 'jpeg') {
    const image = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: false });
    if (image.width <= 0 || image.height <= 0) throw new Error('JPEG has no pixels');
    return { width: image.width, height: image.height, data: image.data };
  }
  if (format === 'png') {
    const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const png = PNG.sync.read(buffer);
    return { width: png.width, height: png.height, data: rgbaToRgb(png.data, png.width * png.height) };
  }
  throw new Error('not a JPEG or PNG file (unrecognised leading bytes)');
}

function rgbaToRgb(rgba: Uint8Array, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0, i = 0, o = 0; p < pixels; p++, i += 4, o += 3) {
    rgb[o] = rgba[i];
    rgb[o + 1] = rgba[i + 1];
    rgb[o + 2] = rgba[i + 2];
  }
  return rgb;
}
