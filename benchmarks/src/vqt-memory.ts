// (a) Peak memory of one VQT training step at a given ViT geometry, random weights:
//     cached features, uncached with the backbone off the tape, and the whole backbone on the tape
//     (what the PyTorch reference does). Each variant runs in its own process: the on-tape one may
//     exhaust the 4 GiB wasm heap, and the wasm heap only grows, so RSS must not be shared.
// Usage: node dist/vqt-memory.js [--preset vit_base_patch16_224] [--batch 32] [--queries 1] [--child-timeout-s 1800]
import * as tf from '@tensorflow/tfjs';
import { initBackend, presetConfig, profileStep, randomVit } from '@vqt/core';
import { FeatureCache, VqtModel, type VqtBatch } from '@vqt/vqt';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { flag, randomImages, report } from './report.js';

const VARIANTS = ['cached', 'off-tape', 'on-tape'] as const;
type Variant = (typeof VARIANTS)[number];

const preset = flag('preset', 'vit_base_patch16_224');
const batch = Number(flag('batch', '32'));
const queries = Number(flag('queries', '1'));
const variant = flag('variant', '') as Variant | '';
const childTimeoutS = Number(flag('child-timeout-s', '1800'));

async function measure(which: Variant): Promise<Record<string, number | string>> {
  await initBackend();
  const config = presetConfig(preset);
  const vit = randomVit(config);
  const images = randomImages([batch, 3, config.imageSize, config.imageSize], 1);
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const model = new VqtModel(vit, { numClasses: 10, queries, tapeBackbone: which === 'on-tape' });
  let cache: FeatureCache | undefined;
  if (which === 'cached') {
    // Built 4 images at a time so the build's forward pass does not set the process's peak RSS.
    const pixels = 3 * config.imageSize * config.imageSize;
    const chunks = [];
    for (let s = 0; s < batch; s += 4) chunks.push({ images: images.subarray(s * pixels, Math.min(batch, s + 4) * pixels), labels: labels.subarray(s, Math.min(batch, s + 4)) });
    cache = await FeatureCache.build(vit, chunks, { budgetBytes: 8 * 2 ** 30 });
  }
  const batchOf = async (): Promise<VqtBatch> =>
    cache ? await cache.batch(Int32Array.from({ length: batch }, (_, i) => i)) : { images: tf.tensor4d(images, [batch, 3, config.imageSize, config.imageSize]), labels };
  const step = async () => {
    const b = await batchOf();
    const started = performance.now();
    const profile = await profileStep(async () => {
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(b.labels, 'int32'), 10), model.logits(b, { training: true, seed: 1 })) as tf.Scalar, model.trainableVariables());
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    });
    tf.dispose(b as unknown as tf.TensorContainer);
    return { ...profile, seconds: (performance.now() - started) / 1000 };
  };
  await step(); // warm-up: weight packing, kernel setup
  const { peakBytes, startBytes, newBufferBytes: stepBuffers, seconds } = await step();
  const MiB = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);
  return {
    variant: which,
    'step buffers MiB': MiB(stepBuffers),
    'peak tensor MiB (tf.profile)': MiB(peakBytes),
    'tensors before step MiB': MiB(startBytes),
    'max RSS MiB': +(process.resourceUsage().maxRSS / 1024).toFixed(0),
    'step s': +seconds.toFixed(2),
  };
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
    // An exhausted wasm heap aborts the runtime, and the process can then spin instead of exiting.
    timeout: childTimeoutS * 1000,
  });
  const line = child.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (line) rows.push(JSON.parse(line.slice(7)));
  else {
    const last = (child.stderr || child.stdout).trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${child.status}`;
    const timedOut = child.error && (child.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    const aborted = /Aborted\(|memory access out of bounds|Out of memory/i.test(child.stderr ?? '');
    const why = aborted ? `wasm runtime aborted: the 4 GiB wasm heap is exhausted (${last})` : timedOut ? `no result within ${childTimeoutS} s (${last})` : last;
    rows.push({ variant: which, 'step buffers MiB': 'failed', 'peak tensor MiB (tf.profile)': '-', 'tensors before step MiB': '-', 'max RSS MiB': '-', 'step s': '-', error: why.slice(0, 160) });
  }
  console.error(`${which}: ${JSON.stringify(rows.at(-1))}`);
}
const onTape = rows.find((r) => r.variant === 'on-tape')?.['step buffers MiB'];
const offTape = rows.find((r) => r.variant === 'off-tape')?.['step buffers MiB'];
report(`vqt-memory-${preset}-b${batch}-t${queries}`, backend, rows, {
  preset,
  batch,
  queries,
  offTapeOverOnTape: typeof onTape === 'number' && typeof offTape === 'number' ? +(offTape / onTape).toFixed(3) : null,
  goal: 'off-tape peak <= 1/4 of on-tape',
  measures: 'step buffers: peak bytes of backend buffers created by one training step and alive at once (each buffer once); tf.profile: peak of summed tensor sizes, which counts reshapes of a buffer again, including what existed before the step; max RSS: the whole process, which also ran the warm-up step and, for cached, the cache build',
});
process.exit(0);
