import { describe, expect, it } from 'vitest';
import { decodeImage, sniffImageFormat } from '../src/index.js';
import { GRAY_RAMP_JPEG, jpegBytes, palettePngBytes, pngBytes } from './helpers.js';

describe('decodeImage', () => {
  it('decodes RGB PNG exactly', () => {
    const pixels = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30];
    const image = decodeImage(pngBytes(2, 2, 3, pixels));
    expect([image.width, image.height]).toEqual([2, 2]);
    expect(Array.from(image.data)).toEqual(pixels);
  });

  it('replicates grayscale PNG (8- and 16-bit) to three channels', () => {
    const gray = decodeImage(pngBytes(3, 1, 1, [0, 128, 255]));
    expect(Array.from(gray.data)).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255]);
    const deep = decodeImage(pngBytes(2, 1, 1, [0, 65535], 16));
    expect(Array.from(deep.data)).toEqual([0, 0, 0, 255, 255, 255]);
  });

  it('drops alpha from RGBA PNG and expands palette PNG', () => {
    const rgba = decodeImage(pngBytes(2, 1, 4, [10, 20, 30, 0, 40, 50, 60, 255]));
    expect(Array.from(rgba.data)).toEqual([10, 20, 30, 40, 50, 60]);
    const palette = decodeImage(palettePngBytes(3, 1, [[255, 0, 0], [0, 0, 255], [7, 8, 9]], [2, 0, 1]));
    expect(Array.from(palette.data)).toEqual([7, 8, 9, 255, 0, 0, 0, 0, 255]);
  });

  it('decodes RGB JPEG within JPEG error', () => {
    const rgb = Array.from({ length: 8 * 8 }, () => [200, 100, 50]).flat();
    const image = decodeImage(jpegBytes(8, 8, rgb));
    expect([image.width, image.height, image.data.length]).toEqual([8, 8, 192]);
    image.data.forEach((v, i) => expect(Math.abs(v - rgb[i])).toBeLessThanOrEqual(3));
  });

  it('decodes a one-component (grayscale) JPEG to RGB', () => {
    const image = decodeImage(GRAY_RAMP_JPEG);
    expect([image.width, image.height]).toEqual([16, 8]);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 16; x++) {
        const i = (y * 16 + x) * 3;
        expect(image.data[i]).toBe(image.data[i + 1]);
        expect(image.data[i]).toBe(image.data[i + 2]);
        expect(Math.abs(image.data[i] - 16 * x)).toBeLessThanOrEqual(2);
      }
    }
  });

  it('sniffs the format from bytes, not the file name, and rejects anything else', () => {
    expect(sniffImageFormat(pngBytes(1, 1, 3, [1, 2, 3]))).toBe('png');
    expect(sniffImageFormat(GRAY_RAMP_JPEG)).toBe('jpeg');
    expect(() => decodeImage(Buffer.from('GIF89a...'))).toThrow(/not a JPEG or PNG/);
    const truncated = pngBytes(4, 4, 3, new Array(48).fill(9)).subarray(0, 40);
    expect(() => decodeImage(truncated)).toThrow();
    expect(() => decodeImage(GRAY_RAMP_JPEG.subarray(0, 60))).toThrow();
  });
});
