// (a) Peak memory of one VQT training step at a given ViT geometry, random weights:
//     cached features, uncached with the backbone off the tape, and the whole backbone on the tape
//     (what the PyTorch reference does). Each variant runs in its own process: the on-tape one may
//     exhaust the 4 GiB wasm heap, and the wasm heap only grows, so RSS must not be shared.
// Usage: node dist/vqt-memory.js [--preset vit_base_patch16_224] [--batch 32] [--queries 1]
import * as tf from '@tensorflow/tfjs';
import { initBackend, presetConfig, randomVit } from '@vqt/core';
import { FeatureCache, VqtModel, type VqtBatch } from '@vqt/vqt';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { flag, report } from './report.js';

const VARIANTS = ['cached', 'off-tape', 'on-tape'] as const;
type Variant = (typeof VARIANTS)[number];

const preset = flag('preset', 'vit_base_patch16_224');
const batch = Number(flag('batch', '32'));
const queries = Number(flag('queries', '1'));
const variant = flag('variant', '') as Variant | '';

async function measure(which: Variant): Promise<Record<string, number | string>> {
  await initBackend();
  const config = presetConfig(preset);
  const vit = randomVit(config);
  const images = tf.tidy(() => tf.randomNormal([batch, 3, config.imageSize, config.imageSize], 0, 1, 'float32', 1).dataSync() as Float32Array);
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const model = new VqtModel(vit, { numClasses: 10, queries, tapeBackbone: which === 'on-tape' });
  let cache: FeatureCache | undefined;
  if (which === 'cached') cache = await FeatureCache.build(vit, [{ images, labels }], { budgetBytes: 8 * 2 ** 30 });
  const batchOf = async (): Promise<VqtBatch> =>
    cache ? await cache.batch(Int32Array.from({ length: batch }, (_, i) => i)) : { images: tf.tensor4d(images, [batch, 3, config.imageSize, config.imageSize]), labels };
  const step = async () => {
    const b = await batchOf();
    const started = performance.now();
    const profile = await tf.profile(async () => {
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(b.labels, 'int32'), 10), model.logits(b, { training: true, seed: 1 })) as tf.Scalar, model.trainableVariables());
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
      return [];
    });
    tf.dispose(b as unknown as tf.TensorContainer);
    return { peakBytes: profile.peakBytes, seconds: (performance.now() - started) / 1000 };
  };
  await step(); // warm-up: weight packing, kernel setup
  const { peakBytes, seconds } = await step();
  return { variant: which, 'peak tensor MiB (tf.profile)': +(peakBytes / 2 ** 20).toFixed(1), 'max RSS MiB': +(process.resourceUsage().maxRSS / 1024).toFixed(0), 'step s': +seconds.toFixed(2) };
}

if (variant) {
  const row = await measure(variant);
  process.stdout.write(`RESULT ${JSON.stringify(row)}\n`);
  process.exit(0);
}

const backend = await initBackend();
const rows: Record<string, number | string>[] = [];
for (const which of VARIANTS) {
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--variant', which, '--preset', preset, '--batch', String(batch), '--queries', String(queries)], {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  const line = child.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (line) rows.push(JSON.parse(line.slice(7)));
  else {
    const why = (child.stderr || child.stdout).trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${child.status}`;
    rows.push({ variant: which, 'peak tensor MiB (tf.profile)': 'failed', 'max RSS MiB': '-', 'step s': '-', error: why.slice(0, 160) });
  }
  console.error(`${which}: ${JSON.stringify(rows.at(-1))}`);
}
const onTape = rows.find((r) => r.variant === 'on-tape')?.['peak tensor MiB (tf.profile)'];
const offTape = rows.find((r) => r.variant === 'off-tape')?.['peak tensor MiB (tf.profile)'];
report(`vqt-memory-${preset}-b${batch}-t${queries}`, backend, rows, {
  preset,
  batch,
  queries,
  offTapeOverOnTape: typeof onTape === 'number' && typeof offTape === 'number' ? +(offTape / onTape).toFixed(3) : null,
  goal: 'off-tape peak <= 1/4 of on-tape',
});
process.exit(0);
