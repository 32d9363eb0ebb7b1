// Where one frozen ViT forward spends its time, by kernel: tf.profile's per-kernel time summed by
// kernel name (and by input shapes with --shapes). Custom ops (tfjs names them "unnamed scope") are
// left out of the sum and the table: the kernels they run are listed on their own.
// Usage: node dist/forward-profile.js [--preset vit_base_patch16_224] [--batch 8] [--shapes]
import * as tf from '@tensorflow/tfjs';
import { initBackend, presetConfig, randomVit } from '@vqt/core';
import os from 'node:os';
import { flag, report } from './report.js';

const preset = flag('preset', 'vit_base_patch16_224');
const batch = Number(flag('batch', '8'));
const byShape = process.argv.includes('--shapes');
const backend = await initBackend();
const config = presetConfig(preset);
const vit = randomVit(config);
const images = tf.randomNormal([batch, 3, config.imageSize, config.imageSize]) as tf.Tensor4D;
const forward = () => tf.tidy(() => vit.forward(images).cls).dispose();
forward(); // warm-up
const started = performance.now();
forward();
const wall = (performance.now() - started) / 1000;
const profile = await tf.profile(forward);
const totals = new Map<string, { ms: number; calls: number }>();
let sum = 0;
for (const kernel of profile.kernels) {
  const time = await kernel.kernelTimeMs;
  const ms = typeof time === "number" ? time : 0;
  if (kernel.name === 'unnamed scope') continue;
  const shapes = JSON.stringify(kernel.inputShapes);
  const key = byShape ? `${kernel.name} ${shapes.length > 60 ? `${kernel.inputShapes.length} x ${JSON.stringify(kernel.inputShapes[0])}` : shapes}` : kernel.name;
  const entry = totals.get(key) ?? { ms: 0, calls: 0 };
  entry.ms += ms;
  entry.calls++;
  totals.set(key, entry);
  sum += ms;
}
const rows = [...totals]
  .sort((a, b) => b[1].ms - a[1].ms)
  .slice(0, 25)
  .map(([kernel, { ms, calls }]) => ({ kernel, calls, 'ms': ms.toFixed(0), share: `${((100 * ms) / sum).toFixed(1)}%` }));
report(`forward-profile-${preset}-b${batch}`, backend, rows, {
  wallSeconds: wall,
  profiledKernelSeconds: sum / 1000,
  loadAverage: os.loadavg().map((l) => l.toFixed(1)).join(' '),
  note: 'one forward after a warm-up; tf.profile kernel times (synchronous on wasm), summed by kernel',
});
process.exit(0);
