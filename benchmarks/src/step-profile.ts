// Where one training step of a method spends its time, by kernel: the second of two one-step
// epochs through the registry and trainer (the first sets operators up), each kernel of the
// backend timed around its kernel function (wasm and cpu run kernels synchronously, so that is
// the kernel's time). The rest of the step's wall time is JavaScript and host work between
// kernels (custom ops' host splits, tensor bookkeeping, the optimizer's loop over weights).
// tf.profile is not used: its kernel log overflows the call stack on a step this long.
// With --buffers it also lists what is alive at the step's memory peak: the buffers the step made,
// grouped by shape and by the first frames of our packages' code that made them.
// Usage: node dist/step-profile.js [--method full] [--preset vit_base_patch16_224] [--batch 8] [--shapes]
//        [--options '{"lastBlocks":2}'] [--checkpointing auto|on|off] [--buffers]
import '@vqt/adaptformer';
import '@vqt/lora';
import '@vqt/vpt';
import '@vqt/vqt';
import * as tf from '@tensorflow/tfjs';
import { fitMethod, initBackend, presetConfig, randomVit } from '@vqt/core';
import os from 'node:os';
import { asBackbone, flag, randomSplit, report } from './report.js';

const method = flag('method', 'full');
const preset = flag('preset', 'vit_base_patch16_224');
const batch = Number(flag('batch', '8'));
const options = JSON.parse(flag('options', '{}')) as Record<string, unknown>;
const checkpointing = flag('checkpointing', 'auto') as 'auto' | 'on' | 'off';
const byShape = process.argv.includes('--shapes');
const traceBuffers = process.argv.includes('--buffers');

const backend = await initBackend();
const config = presetConfig(preset);
const vit = randomVit(config);
const backbone = asBackbone(vit, preset);
const data = randomSplit(batch, config.imageSize);

interface KernelConfig {
  kernelName: string;
  kernelFunc: (args: { inputs: Record<string, tf.TensorInfo>; attrs?: unknown; backend: unknown }) => unknown;
}
const totals = new Map<string, { ms: number; calls: number }>();
let timing = false;
for (const kernel of tf.getKernelsForBackend(tf.getBackend()) as unknown as KernelConfig[]) {
  const run = kernel.kernelFunc;
  kernel.kernelFunc = (args) => {
    if (!timing) return run(args);
    const started = performance.now();
    const out = run(args);
    const ms = performance.now() - started;
    const shapes = Object.values(args.inputs).map((t) => t?.shape);
    const key = byShape ? `${kernel.kernelName} ${JSON.stringify(shapes.length > 3 ? shapes.slice(0, 3) : shapes)}` : kernel.kernelName;
    const entry = totals.get(key) ?? { ms: 0, calls: 0 };
    entry.ms += ms;
    entry.calls++;
    totals.set(key, entry);
    return out;
  };
}

// Buffers made while timing, each counted once (by dataId) from creation until the backend frees it;
// a snapshot of them is kept at the peak.
interface Made {
  bytes: number;
  shape: string;
  origin: string;
}
const live = new Map<object, Made>();
let liveBytes = 0;
let peak = { bytes: 0, buffers: [] as Made[] };
if (traceBuffers) {
  interface EngineInternals {
    state: { tensorInfo: WeakMap<object, unknown> };
    trackTensor(t: tf.Tensor, backend: unknown): void;
    removeDataId(dataId: object, backend: unknown): void;
  }
  const engine = tf.engine() as unknown as EngineInternals;
  const track = engine.trackTensor;
  const remove = engine.removeDataId;
  Error.stackTraceLimit = 60;
  engine.trackTensor = function (this: EngineInternals, t, backendOf) {
    if (timing && !this.state.tensorInfo.has(t.dataId)) {
      const frames = (new Error().stack ?? '').split('\n').filter((line) => /packages\/(?!.*custom-op)/.test(line) && !line.includes('node_modules'));
      const origin = frames.slice(0, 3).map((line) => line.trim().replace(/^at /, '').replace(/(file:\/\/)?\/[^ (]*\/packages\//, 'packages/')).join(' < ');
      const made = { bytes: t.size * 4, shape: t.shape.join('x'), origin };
      live.set(t.dataId, made);
      liveBytes += made.bytes;
      if (liveBytes > peak.bytes) peak = { bytes: liveBytes, buffers: [...live.values()] };
    }
    track.call(this, t, backendOf);
  };
  engine.removeDataId = function (this: EngineInternals, dataId, backendOf) {
    remove.call(this, dataId, backendOf);
    const made = live.get(dataId);
    if (made && !this.state.tensorInfo.has(dataId)) {
      liveBytes -= made.bytes;
      live.delete(dataId);
    }
  };
}

const epochSeconds: number[] = [];
const fitted = await fitMethod(method, backbone, data, {
  config: options,
  epochs: 2,
  batchSize: batch,
  lr: 1e-4,
  weightDecay: 1e-4,
  warmupEpochs: 0,
  runtime: { checkpointing, cacheBudgetBytes: 8 * 2 ** 30 },
  onEpochEnd: (log) => {
    epochSeconds.push(log.seconds);
    timing = epochSeconds.length === 1; // time the second epoch's kernels only
  },
});
const hooks = fitted.trainableHooks?.() ?? [];
const plan = method === 'full' ? undefined : vit.trainingPlan(hooks, batch);
fitted.dispose();

const kernelMs = [...totals.values()].reduce((sum, t) => sum + t.ms, 0);
const stepMs = epochSeconds[1] * 1000;
const rows = [...totals]
  .sort((a, b) => b[1].ms - a[1].ms)
  .slice(0, 30)
  .map(([kernel, { ms, calls }]) => ({ kernel, calls, ms: ms.toFixed(0), 'share of step': `${((100 * ms) / stepMs).toFixed(1)}%` }));
rows.push({ kernel: '(between kernels: JS, host copies)', calls: 0, ms: (stepMs - kernelMs).toFixed(0), 'share of step': `${((100 * (stepMs - kernelMs)) / stepMs).toFixed(1)}%` });
let buffersAtPeak: { MiB: number; buffers: number; shape: string; 'made by': string }[] = [];
if (traceBuffers) {
  const groups = new Map<string, { bytes: number; count: number; shape: string; origin: string }>();
  for (const made of peak.buffers) {
    const key = `${made.shape} ${made.origin}`;
    const group = groups.get(key) ?? { bytes: 0, count: 0, shape: made.shape, origin: made.origin };
    group.bytes += made.bytes;
    group.count++;
    groups.set(key, group);
  }
  buffersAtPeak = [...groups.values()]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 25)
    .map((g) => ({ MiB: +(g.bytes / 2 ** 20).toFixed(1), buffers: g.count, shape: g.shape, 'made by': g.origin || '(tfjs)' }));
  console.log(`\nalive at the memory peak of the second epoch (its batch included): ${(peak.bytes / 2 ** 20).toFixed(1)} MiB`);
  for (const row of buffersAtPeak) console.log(`${String(row.MiB).padStart(8)} MiB  ${String(row.buffers).padStart(4)} x ${row.shape}  ${row['made by']}`);
  console.log('');
}
report(`step-profile-${method}-${preset}-b${batch}${byShape ? '-shapes' : ''}`, backend, rows, {
  method,
  options,
  checkpointing,
  plan: plan ?? '(full fine-tuning plans inside its fit)',
  epochSeconds,
  kernelSeconds: kernelMs / 1000,
  loadAverage: os.loadavg().map((l) => l.toFixed(1)).join(' '),
  ...(traceBuffers ? { peakBufferMiB: +(peak.bytes / 2 ** 20).toFixed(1), buffersAtPeak } : {}),
  note: 'the second of two one-step epochs; kernel times summed by kernel name (by input shapes with --shapes)',
});
process.exit(0);
