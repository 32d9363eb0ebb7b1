import { describe, expect, it } from 'vitest';
import { bilinearTaps, IMAGENET_MEAN, IMAGENET_STD, preprocessImage, resolvePreprocess, type RgbImage } from '../src/index.js';

/** An RGB image whose three channels all hold `values` (row-major). */
function grayAsRgb(width: number, height: number, values: number[]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  values.forEach((v, i) => data.fill(v, i * 3, i * 3 + 3));
  return { width, height, data };
}

/** Channel 0 of a [3, S, S] result as rows, on the 0-255 scale (normalisation 'none'). */
function channel0(out: Float32Array, size: number): number[][] {
  return Array.from({ length: size }, (_, y) => Array.from(out.subarray(y * size, (y + 1) * size), (v) => v * 255));
}

const none = (imageSize: number) => resolvePreprocess({ imageSize, normalization: 'none' });

function expectRowsClose(actual: number[][], expected: number[][]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, y) => row.forEach((v, x) => expect(v).toBeCloseTo(expected[y][x], 3)));
}

describe('bilinear resize (half-pixel centres, no antialias)', () => {
  it('upsamples 2x2 -> 4x4 as computed by hand', () => {
    // source x for output i is (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped to [0, 1]
    const out = preprocessImage(grayAsRgb(2, 2, [0, 100, 200, 40]), none(4));
    expectRowsClose(channel0(out, 4), [
      [0, 25, 75, 100],
      [50, 58.75, 76.25, 85],
      [150, 126.25, 78.75, 55],
      [200, 160, 80, 40],
    ]);
  });

  it('downsamples 4x4 -> 2x2 to the mean of each 2x2 block (samples at 0.5 and 2.5)', () => {
    const values = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150];
    expectRowsClose(channel0(preprocessImage(grayAsRgb(4, 4, values), none(2)), 2), [
      [25, 45],
      [105, 125],
    ]);
  });

  it('maps output centres to (i + 0.5) * in/out - 0.5, not align_corners', () => {
    // a ramp 10 x is reproduced exactly by bilinear interpolation, so the values reveal the sample positions
    const ramp = Array.from({ length: 64 }, (_, i) => 10 * (i % 8));
    const row = channel0(preprocessImage(grayAsRgb(8, 8, ramp), none(3)), 3)[0];
    expect(row[0]).toBeCloseTo(10 * (0.5 * (8 / 3) - 0.5), 3); // 8.333
    expect(row[1]).toBeCloseTo(35, 3);
    expect(row[2]).toBeCloseTo(10 * (2.5 * (8 / 3) - 0.5), 3); // 61.667
  });

  it('does not antialias when shrinking: an impulse between two samples is halved, not spread', () => {
    const impulse = [0, 0, 0, 0, 0, 0, 255, 0];
    const out = preprocessImage(grayAsRgb(8, 1, impulse), none(2));
    // output x=1 samples source 5.5 -> (p5 + p6) / 2; an area filter would give 255 / 4
    expect(channel0(out, 2)[0]).toEqual([0, 127.5].map((v) => expect.closeTo(v, 3)));
  });

  it('stretches non-square images (aspect not kept) and is the identity at the same size', () => {
    const wide = grayAsRgb(4, 2, [0, 20, 40, 60, 100, 120, 140, 160]);
    expectRowsClose(channel0(preprocessImage(wide, none(2)), 2), [
      [10, 50],
      [110, 150],
    ]);
    const same = [3, 1, 4, 1, 5, 9, 2, 6, 5];
    expectRowsClose(channel0(preprocessImage(grayAsRgb(3, 3, same), none(3)), 3), [
      [3, 1, 4],
      [1, 5, 9],
      [2, 6, 5],
    ]);
  });

  it('computes taps that stay inside the source', () => {
    const taps = bilinearTaps(5, 224);
    expect(Math.min(...taps.lower)).toBe(0);
    expect(Math.max(...taps.upper)).toBe(4);
    expect(taps.upperWeight.every((w) => w >= 0 && w < 1)).toBe(true);
  });
});

describe('normalisation and layout', () => {
  const rgb: RgbImage = { width: 2, height: 2, data: Uint8Array.from([10, 128, 250, 10, 128, 250, 10, 128, 250, 10, 128, 250]) };

  it('writes CHW planes', () => {
    const out = preprocessImage(rgb, none(3));
    expect(out.length).toBe(27);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 9; i++) expect(out[c * 9 + i] * 255).toBeCloseTo([10, 128, 250][c], 3);
    }
  });

  it('uses ImageNet mean/std by default', () => {
    const params = resolvePreprocess({ imageSize: 2 });
    expect(params.mean).toEqual(IMAGENET_MEAN);
    expect(params.std).toEqual(IMAGENET_STD);
    const out = preprocessImage(rgb, params);
    [10, 128, 250].forEach((v, c) => expect(out[c * 4]).toBeCloseTo((v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], 5));
    expect(resolvePreprocess().imageSize).toBe(224);
  });

  it('supports 0.5/0.5 (inception) and custom mean/std', () => {
    const inception = preprocessImage(rgb, resolvePreprocess({ imageSize: 2, normalization: 'inception' }));
    [10, 128, 250].forEach((v, c) => expect(inception[c * 4]).toBeCloseTo((v / 255 - 0.5) / 0.5, 5));
    const custom = preprocessImage(rgb, resolvePreprocess({ imageSize: 2, normalization: { mean: [0.1, 0.2, 0.3], std: [2, 3, 4] } }));
    [10, 128, 250].forEach((v, c) => expect(custom[c * 4]).toBeCloseTo((v / 255 - [0.1, 0.2, 0.3][c]) / [2, 3, 4][c], 5));
  });

  it('rejects bad sizes and normalisations', () => {
    expect(() => resolvePreprocess({ imageSize: 0 })).toThrow(/imageSize/);
    expect(() => resolvePreprocess({ imageSize: 2.5 })).toThrow(/imageSize/);
    expect(() => resolvePreprocess({ normalization: 'bogus' as never })).toThrow(/normalization/);
    expect(() => resolvePreprocess({ normalization: { mean: [0, 0, 0], std: [1, 0, 1] } })).toThrow(/std/);
  });
});

describe('agreement with TensorFlow.js', () => {
  it('matches tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=true) when tfjs is installed', async (ctx) => {
    let tf: typeof import('@tensorflow/tfjs');
    try {
      tf = await import('@tensorflow/tfjs');
    } catch {
      ctx.skip(); // tfjs is a dependency of @vqt/core, not of this package
      return;
    }
    await tf.setBackend('cpu');
    for (const [w, h, s] of [[37, 23, 24], [50, 30, 16], [7, 9, 5]]) {
      const data = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 7919 + (i >> 3) * 31) % 256);
      const ours = preprocessImage({ width: w, height: h, data }, resolvePreprocess({ imageSize: s, normalization: 'none' }));
      const reference = tf.tidy(() =>
        tf.image.resizeBilinear(tf.tensor3d(data, [h, w, 3], 'float32'), [s, s], false, true).div(255).transpose([2, 0, 1]).dataSync(),
      );
      let worst = 0;
      for (let i = 0; i < reference.length; i++) worst = Math.max(worst, Math.abs(reference[i] - ours[i]));
      expect(worst).toBeLessThan(1e-6);
    }
  });
});
