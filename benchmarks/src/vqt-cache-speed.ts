// (b) Wall time of VQT epochs over N images with and without the feature cache, and of one plain
//     backbone forward epoch over the same images. Random weights; no augmentation.
// Usage: node dist/vqt-cache-speed.js [--preset vit_tiny_patch16_224] [--images 256] [--epochs 10] [--uncached-epochs 10] [--batch 32]
import * as tf from '@tensorflow/tfjs';
import { initBackend, presetConfig, randomVit, trainModel } from '@vqt/core';
import { FeatureCache, ImageArraySource, VqtModel } from '@vqt/vqt';
import { flag, randomImages, report } from './report.js';

const preset = flag('preset', 'vit_tiny_patch16_224');
const count = Number(flag('images', '256'));
const epochs = Number(flag('epochs', '10'));
const uncachedEpochs = Number(flag('uncached-epochs', String(epochs)));
const batch = Number(flag('batch', '32'));
const backend = await initBackend();
const config = presetConfig(preset);
const vit = randomVit(config);
const size = config.imageSize;
const images = randomImages([count, 3, size, size], 1);
const labels = Int32Array.from({ length: count }, (_, i) => i % 10);
const source = new ImageArraySource(images, labels, size);
const train = { batchSize: batch, lr: 0.01, weightDecay: 0, optimizer: 'adam' as const, warmupEpochs: 0, seed: 0, progress: 'none' as const };
const seconds = async (fn: () => Promise<unknown>) => {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
};

await seconds(async () => tf.tidy(() => vit.forward(tf.tensor4d(images.subarray(0, 3 * size * size * 2), [2, 3, size, size])).cls).dispose()); // warm-up
const forwardEpoch = await seconds(async () => {
  for await (const b of source.batches(batch, { shuffle: false, seed: 0, epoch: 0 })) {
    const cls = tf.tidy(() => vit.forward(b.images).cls);
    await cls.data();
    tf.dispose([cls, b.images]);
  }
});
const cachedModel = new VqtModel(vit, { numClasses: 10 });
let cache: FeatureCache | undefined;
const cacheBuild = await seconds(async () => {
  const chunks = [];
  for (let s = 0; s < count; s += batch) chunks.push({ images: images.subarray(s * 3 * size * size, Math.min(count, s + batch) * 3 * size * size), labels: labels.subarray(s, Math.min(count, s + batch)) });
  cache = await FeatureCache.build(vit, chunks, { budgetBytes: 8 * 2 ** 30 });
});
const cached = await seconds(() => trainModel(cachedModel, cache!, { ...train, epochs }));
const uncachedModel = new VqtModel(vit, { numClasses: 10 });
const uncached = await seconds(() => trainModel(uncachedModel, source, { ...train, epochs: uncachedEpochs }));
const perCached = cached / epochs;
const perUncached = uncached / uncachedEpochs;
report(`vqt-cache-speed-${preset}-n${count}`, backend, [
  { measurement: 'backbone forward, 1 epoch', seconds: forwardEpoch.toFixed(1), 'per epoch s': forwardEpoch.toFixed(2), 'vs forward epoch': '1' },
  { measurement: 'building the cache (once)', seconds: cacheBuild.toFixed(1), 'per epoch s': '-', 'vs forward epoch': (cacheBuild / forwardEpoch).toFixed(2) },
  { measurement: `VQT with cache, ${epochs} epochs`, seconds: cached.toFixed(1), 'per epoch s': perCached.toFixed(2), 'vs forward epoch': (perCached / forwardEpoch).toFixed(3) },
  { measurement: `VQT without cache, ${uncachedEpochs} epochs`, seconds: uncached.toFixed(1), 'per epoch s': perUncached.toFixed(2), 'vs forward epoch': (perUncached / forwardEpoch).toFixed(3) },
], { preset, images: count, batch, goal: 'a cached epoch <= 1/20 of a backbone forward epoch' });
await cache!.close();
process.exit(0);
