// ViT forward throughput on the active backend, random weights (the weights do not change the cost).
// Usage: node dist/throughput.js [--preset vit_base_patch16_224] [--batch 8] [--iters 3]
import * as tf from '@tensorflow/tfjs';
import { initBackend, presetConfig, randomVit } from '@vqt/core';
import { flag, report } from './report.js';

const preset = flag('preset', 'vit_base_patch16_224');
const batch = Number(flag('batch', '8'));
const iters = Number(flag('iters', '3'));
const backend = await initBackend();
const config = presetConfig(preset);
const vit = randomVit(config);
const images = tf.randomNormal([batch, 3, config.imageSize, config.imageSize]) as tf.Tensor4D;
const tokens = vit.numTokens;
const hidden = config.mlpRatio * config.dim;
// Multiply-adds x 2: qkv, proj, fc1, fc2, attention scores and mixing, patch embedding.
const flops =
  2 * batch * (config.depth * (tokens * config.dim * (4 * config.dim + 2 * hidden) + 2 * tokens * tokens * config.dim) + (tokens - 1) * 3 * config.patchSize ** 2 * config.dim);

const run = async () => {
  const started = performance.now();
  const cls = tf.tidy(() => vit.forward(images).cls);
  await cls.data();
  cls.dispose();
  return (performance.now() - started) / 1000;
};
await run(); // warm-up: operator setup, weight packing
const times: number[] = [];
for (let i = 0; i < iters; i++) times.push(await run());
const median = times.slice().sort((a, b) => a - b)[Math.floor(times.length / 2)];
report(`throughput-${preset}-b${batch}`, backend, [
  {
    model: preset,
    batch,
    'median s/batch': median.toFixed(2),
    'images/s': (batch / median).toFixed(2),
    'GFLOP/s': (flops / median / 1e9).toFixed(1),
    runs: times.map((t) => t.toFixed(2)).join(' '),
  },
], { flopsPerBatch: flops, reference: 'PyTorch 1.13 CPU, 2 threads, same machine kind: ~2.9 s per batch of 8 (ENGINE.md)' });
process.exit(0);
