import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { deflateSync } from 'node:zlib';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';

export async function makeTempDir(prefix = 'vtab-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function writeFileAt(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, data);
}

/** PNG from interleaved pixels; channels 1 (gray), 3 (RGB) or 4 (RGBA); 16-bit takes one value per channel 0-65535. */
export function pngBytes(width: number, height: number, channels: 1 | 3 | 4, pixels: ArrayLike<number>, bitDepth: 8 | 16 = 8): Buffer {
  const colorType = channels === 1 ? 0 : channels === 3 ? 2 : 6;
  let data: Buffer;
  if (bitDepth === 8) data = Buffer.from(Uint8Array.from(pixels));
  else {
    // pngjs takes 16-bit input as native-endian uint16 values
    const words = Uint16Array.from(pixels);
    data = Buffer.from(words.buffer);
  }
  return PNG.sync.write({ width, height, data } as PNG, { colorType, inputColorType: colorType, inputHasAlpha: channels === 4, bitDepth });
}

/** Palette (colour type 3) PNG written by hand, since pngjs cannot write one. */
export function palettePngBytes(width: number, height: number, palette: readonly (readonly [number, number, number])[], indices: ArrayLike<number>): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 3; // palette
  const raw = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0; // filter: none
    for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = indices[y * width + x];
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('PLTE', Buffer.from(palette.flat())),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, body: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  const typeAndBody = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndBody));
  return Buffer.concat([length, typeAndBody, crc]);
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** Baseline RGB JPEG via jpeg-js (lossy: compare with a tolerance). */
export function jpegBytes(width: number, height: number, rgb: ArrayLike<number>, quality = 100): Buffer {
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba[p * 4] = rgb[p * 3];
    rgba[p * 4 + 1] = rgb[p * 3 + 1];
    rgba[p * 4 + 2] = rgb[p * 3 + 2];
    rgba[p * 4 + 3] = 255;
  }
  return encodeJpeg({ width, height, data: rgba }, quality).data;
}

/**
 * A one-component (grayscale) 16x8 baseline JPEG made with libjpeg-turbo's
 * `cjpeg -grayscale -quality 100` from a horizontal ramp: pixel (x, y) = 16 x. jpeg-js cannot
 * write single-component JPEGs, so the bytes are inlined.
 */
export const GRAY_RAMP_JPEG = Buffer.from(
  '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/wAALCAAIABABAREA/8QAFQABAQAAAAAAAAAAAAAAAAAACgv/xAAYEAACAwAAAAAAAAAAAAAAAAAACUWEwv/aAAgBAQAAPwA3624CtkoALbgK2T//2Q==',
  'base64',
);

/** sha256 of every file under `dir`, keyed by relative path. */
export async function hashTree(dir: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else hashes.set(relative(dir, path), createHash('sha256').update(await readFile(path)).digest('hex'));
    }
  };
  await walk(dir);
  return hashes;
}

/** Collects everything an async iterable yields. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}
