import { readFile } from 'node:fs/promises';
import { decodeImage } from './decode.js';
import { isNotFound } from './list.js';
import { oneLine } from './errors.js';
import { preprocessInto, type PreprocessParams } from './preprocess.js';

/**
 * Why one image could not be loaded. Kept free of list-file context so it can cross a worker
 * boundary as plain data; the loader turns it into ImageMissingError / ImageDecodeError.
 */
export class ImageLoadFailure extends Error {
  override name = 'ImageLoadFailure';
  constructor(readonly kind: 'missing' | 'decode', readonly reason: string) {
    super(reason);
  }
}

export async function readImageBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    if (isNotFound(error)) throw new ImageLoadFailure('missing', 'file not found');
    throw error;
  }
}

/** Decodes and preprocesses one image into `out` at `offset` ([3, S, S] float32). */
export function decodeAndPreprocessInto(bytes: Uint8Array, params: PreprocessParams, out: Float32Array, offset: number): void {
  let image;
  try {
    image = decodeImage(bytes);
  } catch (error) {
    throw new ImageLoadFailure('decode', oneLine(error instanceof Error ? error.message : String(error)));
  }
  preprocessInto(image, params, out, offset);
}
