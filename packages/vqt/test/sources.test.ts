import * as tf from '@tensorflow/tfjs';
import { initBackend, mixSeed } from '@vqt/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImageArraySource, splitImageSource, type HostImageSplit } from '../src/index.js';
import { hostImages, hostLabels } from './helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('image sources', () => {
  it('ImageArraySource: batches of tensors covering every image once, order from (seed, epoch)', async () => {
    const source = new ImageArraySource(hostImages(7, 8), hostLabels(7, 100), 8);
    const epochLabels = async (epoch: number) => {
      const seen: number[] = [];
      for await (const b of source.batches(3, { shuffle: true, seed: 1, epoch })) {
        expect(b.images.shape).toEqual([b.labels.length, 3, 8, 8]);
        seen.push(...b.labels);
        b.images.dispose();
      }
      return seen;
    };
    const first = await epochLabels(0);
    expect([...first].sort()).toEqual(Array.from(hostLabels(7, 100)).sort());
    expect(await epochLabels(0)).toEqual(first);
    expect(await epochLabels(1)).not.toEqual(first);
    expect(() => new ImageArraySource(new Float32Array(5), new Int32Array(1), 8)).toThrow(/not 1 images/);
  });

  it('splitImageSource: passes a per-epoch seed to the split and uses its imageSize', async () => {
    const calls: unknown[] = [];
    const split: HostImageSplit = {
      size: 2,
      imageSize: 4,
      async *batches(batchSize, options) {
        calls.push({ batchSize, ...options });
        yield { images: new Float32Array(2 * 3 * 16), labels: Int32Array.from([0, 1]) };
      },
    };
    for await (const b of splitImageSource(split).batches(2, { shuffle: true, seed: 5, epoch: 3 })) {
      expect(b.images.shape).toEqual([2, 3, 4, 4]);
      tf.dispose(b.images);
    }
    expect(calls).toEqual([{ batchSize: 2, shuffle: true, seed: mixSeed(5, 3) }]);
    expect(() => splitImageSource({ ...split, imageSize: undefined })).toThrow(/imageSize/);
  });
});
