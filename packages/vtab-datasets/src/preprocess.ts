import type { RgbImage } from './decode.js';

export type Rgb = readonly [number, number, number];

/**
 * `imagenet`: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) — the VTAB/VQT recipe.
 * `inception`: mean 0.5, std 0.5 per channel, i.e. values in [-1, 1] (Google's ViT checkpoints).
 * `none`: just /255, values in [0, 1]. Or give your own mean and std (on the /255 scale).
 */
export type Normalization = 'imagenet' | 'inception' | 'none' | { readonly mean: Rgb; readonly std: Rgb };

export interface PreprocessOptions {
  /** Output side length; images are resized (stretched, aspect not kept) to imageSize x imageSize. Default 224. */
  imageSize?: number;
  /** Default 'imagenet'. */
  normalization?: Normalization;
}

export interface PreprocessParams {
  readonly imageSize: number;
  readonly mean: Rgb;
  readonly std: Rgb;
}

export const IMAGENET_MEAN: Rgb = [0.485, 0.456, 0.406];
export const IMAGENET_STD: Rgb = [0.229, 0.224, 0.225];

export const DEFAULT_IMAGE_SIZE = 224;

export function resolvePreprocess(options: PreprocessOptions = {}): PreprocessParams {
  const imageSize = options.imageSize ?? DEFAULT_IMAGE_SIZE;
  if (!Number.isInteger(imageSize) || imageSize < 1) {
    throw new RangeError(`imageSize must be a positive integer, got ${imageSize}`);
  }
  const normalization = options.normalization ?? 'imagenet';
  if (normalization === 'imagenet') return { imageSize, mean: IMAGENET_MEAN, std: IMAGENET_STD };
  if (normalization === 'inception') return { imageSize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  if (normalization === 'none') return { imageSize, mean: [0, 0, 0], std: [1, 1, 1] };
  if (typeof normalization === 'object' && normalization.mean?.length === 3 && normalization.std?.length === 3) {
    if (normalization.std.some((s) => !(s > 0))) throw new RangeError('normalization std must be positive');
    return { imageSize, mean: normalization.mean, std: normalization.std };
  }
  throw new RangeError(`unknown normalization ${JSON.stringify(normalization)}`);
}

/** Source sample positions and weights for one output axis. */
interface AxisTaps {
  readonly lower: Int32Array;
  readonly upper: Int32Array;
  readonly upperWeight: Float64Array;
}

/**
 * Half-pixel-centre bilinear taps (align_corners=False, as PyTorch's F.interpolate and
 * tf.image.resize(antialias=False)): output pixel i samples source coordinate
 * (i + 0.5) * in/out - 0.5, clamped to [0, in - 1]. No antialiasing filter when shrinking.
 */
export function bilinearTaps(inSize: number, outSize: number): AxisTaps {
  const lower = new Int32Array(outSize);
  const upper = new Int32Array(outSize);
  const upperWeight = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const source = Math.min(Math.max((i + 0.5) * scale - 0.5, 0), inSize - 1);
    const low = Math.floor(source);
    lower[i] = low;
    upper[i] = Math.min(low + 1, inSize - 1);
    upperWeight[i] = source - low;
  }
  return { lower, upper, upperWeight };
}

/**
 * Resizes an 8-bit RGB image to size x size (bilinear, half-pixel centres, no antialias), scales to
 * [0, 1], normalises per channel, and writes CHW float32 into `out` starting at `offset`.
 * The resize works on the raw 0-255 values and is not rounded back to 8 bits. Interpolating rows
 * first and then columns gives the same bilinear value as the four-tap formula.
 */
export function preprocessInto(image: RgbImage, params: PreprocessParams, out: Float32Array, offset = 0): void {
  const { imageSize: size, mean, std } = params;
  const { width, height, data } = image;
  const xs = bilinearTaps(width, size);
  const ys = bilinearTaps(height, size);
  const plane = size * size;
  // value = (v / 255 - mean) / std, folded into one multiply-add per output value
  const gainR = 1 / (255 * std[0]), gainG = 1 / (255 * std[1]), gainB = 1 / (255 * std[2]);
  const biasR = -mean[0] / std[0], biasG = -mean[1] / std[1], biasB = -mean[2] / std[2];
  // separable: blend the two source rows once per output row, then blend along x
  const blended = new Float64Array(width * 3);
  const rowStride = width * 3;
  const left = new Int32Array(size);
  const right = new Int32Array(size);
  for (let x = 0; x < size; x++) {
    left[x] = xs.lower[x] * 3;
    right[x] = xs.upper[x] * 3;
  }
  const wxs = xs.upperWeight;
  for (let y = 0; y < size; y++) {
    const top = ys.lower[y] * rowStride;
    const bottom = ys.upper[y] * rowStride;
    const wy = ys.upperWeight[y];
    for (let i = 0; i < rowStride; i++) {
      const a = data[top + i];
      blended[i] = a + (data[bottom + i] - a) * wy;
    }
    const r = offset + y * size;
    const g = r + plane;
    const b = g + plane;
    for (let x = 0; x < size; x++) {
      const l = left[x];
      const h = right[x];
      const wx = wxs[x];
      const l0 = blended[l], l1 = blended[l + 1], l2 = blended[l + 2];
      out[r + x] = (l0 + (blended[h] - l0) * wx) * gainR + biasR;
      out[g + x] = (l1 + (blended[h + 1] - l1) * wx) * gainG + biasG;
      out[b + x] = (l2 + (blended[h + 2] - l2) * wx) * gainB + biasB;
    }
  }
}

/** Convenience: preprocess one image into a fresh [3, size, size] array. */
export function preprocessImage(image: RgbImage, params: PreprocessParams): Float32Array {
  const out = new Float32Array(3 * params.imageSize * params.imageSize);
  preprocessInto(image, params, out, 0);
  return out;
}
