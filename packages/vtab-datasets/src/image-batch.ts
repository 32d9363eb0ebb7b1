import { ImageDecodeError, ImageMissingError, VtabDataError } from './errors.js';
import { decodeAndPreprocessInto, ImageLoadFailure, readImageBytes } from './image-file.js';
import { resolvePreprocess, type PreprocessOptions, type PreprocessParams } from './preprocess.js';

/**
 * Anything that knows its input size: a LoadedVit from @vqt/core (`{ model: { config } }`) or its
 * VisionTransformer (`{ config }`). Typed structurally so this package needs no model types.
 */
export type BackboneLike = { readonly config: { readonly imageSize: number } } | { readonly model: { readonly config: { readonly imageSize: number } } };

export interface BackboneSizeOptions extends PreprocessOptions {
  /** Takes `imageSize` from the backbone (a LoadedVit or a VisionTransformer); both given must agree. */
  backbone?: BackboneLike;
}

/** `imageSize` from the options or the backbone (default 224 when neither is given). */
export function resolveImageSize(options: BackboneSizeOptions): number | undefined {
  const { backbone, imageSize } = options;
  if (backbone === undefined) return imageSize;
  const fromBackbone = 'model' in backbone ? backbone.model.config.imageSize : backbone.config.imageSize;
  if (imageSize !== undefined && imageSize !== fromBackbone) {
    throw new RangeError(`imageSize ${imageSize} was given but the backbone takes ${fromBackbone} x ${fromBackbone} images`);
  }
  return fromBackbone;
}

/** Options of loadImageBatch: the image size (or the backbone to take it from) and the normalisation. */
export type ImageBatchOptions = BackboneSizeOptions;

export interface ImageBatch {
  /** [N, 3, S, S] float32, resized and normalised, NCHW: `tf.tensor4d(batch.images, batch.shape)`. */
  readonly images: Float32Array;
  readonly shape: [number, 3, number, number];
  /** Where each image came from: its path, or `input <i>` for a buffer. */
  readonly sources: readonly string[];
}

/**
 * Turns image files (paths) or their bytes (PNG or JPEG) into one ready input batch, preprocessed
 * exactly as the dataset loader does (bilinear resize to S x S, then the normalisation). Give the
 * backbone to take S from it. A missing or undecodable image throws a one-line error naming it.
 */
export async function loadImageBatch(inputs: readonly (string | Uint8Array)[], options: ImageBatchOptions = {}): Promise<ImageBatch> {
  if (inputs.length === 0) throw new RangeError('loadImageBatch: no images given');
  const params: PreprocessParams = resolvePreprocess({ ...options, imageSize: resolveImageSize(options) });
  const perImage = 3 * params.imageSize * params.imageSize;
  const images = new Float32Array(inputs.length * perImage);
  const sources = inputs.map((input, i) => (typeof input === 'string' ? input : `input ${i}`));
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    try {
      const bytes = typeof input === 'string' ? await readImageBytes(input) : input;
      decodeAndPreprocessInto(bytes, params, images, i * perImage);
    } catch (error) {
      if (!(error instanceof ImageLoadFailure)) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new VtabDataError(`${sources[i]}: cannot read: ${reason}`, { cause: error });
      }
      if (error.kind === 'missing') throw new ImageMissingError(undefined, undefined, sources[i]);
      throw new ImageDecodeError(undefined, undefined, sources[i], error.reason);
    }
  }
  return { images, shape: [inputs.length, 3, params.imageSize, params.imageSize], sources };
}
