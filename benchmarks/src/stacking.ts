// Issue 12 item 7: each adapting method alone and with VQT stacked on it (two-stage, T = 1), on the
// embedded backbone and the offline mini suite, same epochs, several seeds.
//
// Usage: node dist/stacking.js [--tasks dsprites_loc,clevr_count,textures] [--seeds 0,1]
//          [--methods vpt,adaptformer,lora] [--epochs 2] [--lr 0.01] [--vqt-lr 0.01] [--wd 0.0001]
//          [--batch 32] [--eval-split test] [--threads 2]
//
// Per task and seed: VQT alone on the frozen backbone; then for each adapting method, stage 1 fits it
// with its own head (the "alone" accuracy), stage 2 fits T = 1 queries and a new head through the
// frozen adapted backbone from the feature cache (the "+VQT" accuracy). Both stages get `--epochs`.
// Both accuracies of a base come from one forward of the evaluation split through the adapted
// backbone (a feature cache: its CLS feeds the base's head, its LN1 rows the stack's queries); the
// first batch is checked against each fitted method's own logits.
import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_RUNTIME,
  evaluateModel,
  getMethod,
  initBackend,
  loadVit,
  resolveMethodConfig,
  stackSpec,
  type FitContext,
  type FittedMethod,
  type HostTensor,
  type ImageSplit,
  type LoadedVit,
} from '@vqt/core';
import '@vqt/adaptformer';
import '@vqt/lora';
import '@vqt/vpt';
import { applyVqtTensors, FeatureCache, VqtModel, vqtMethod, type VqtCachedBatch } from '@vqt/vqt';
import { embeddedBackbone, ensureMiniSuite, getMiniTask, openSplit, type VtabSplitName } from '@vqt/vtab-datasets';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flag, report, RESULTS_DIR } from './report.js';

const list = (name: string, fallback: string) => flag(name, fallback).split(',').map((s) => s.trim()).filter(Boolean);
const tasks = list('tasks', 'dsprites_loc,clevr_count,textures');
const seeds = list('seeds', '0,1').map(Number);
const methods = list('methods', 'vpt,adaptformer,lora');
const epochs = Number(flag('epochs', '2'));
const lr = Number(flag('lr', '0.01'));
const vqtLr = Number(flag('vqt-lr', String(lr)));
const weightDecay = Number(flag('wd', '0.0001'));
const batchSize = Number(flag('batch', '32'));
const evalSplit = flag('eval-split', 'test') as VtabSplitName;
const threads = Number(flag('threads', '2'));
for (const task of tasks) getMiniTask(task); // a one-line error for an unknown task, before any work

// Each base's options for a 64-wide, 6-block backbone (the defaults are sized for ViT-B's 768).
const BASE_OPTIONS: Record<string, Record<string, unknown>> = {
  vpt: { prompts: 5 },
  'vpt-shallow': { prompts: 5 },
  adaptformer: { bottleneck: 8 },
  lora: { rank: 4, alpha: 4 },
};
const VQT_OPTIONS = { queries: 1 };

const backend = await initBackend({ backend: 'wasm', threads });
const backbone: LoadedVit = loadVit(embeddedBackbone().file);
const vit = backbone.model;
const suiteDir = await ensureMiniSuite({ tasks });
const cpuStarted = process.cpuUsage();
const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

async function imageSplit(task: string, split: VtabSplitName): Promise<ImageSplit> {
  const opened = await openSplit(join(suiteDir, task), split, { imageSize: vit.config.imageSize, normalization: 'imagenet' });
  return { id: `${opened.taskDir}:${split}`, size: opened.size, numClasses: opened.numClasses, imageSize: opened.imageSize, batches: (n, o) => opened.batches(n, o) };
}

function context(seed: number, hpLr: number): FitContext {
  return {
    backbone,
    hp: { lr: hpLr, weightDecay },
    train: { epochs, batchSize, optimizer: 'adam', warmupEpochs: 0, seed, progress: 'none' },
    runtime: DEFAULT_RUNTIME,
    log: () => {},
  };
}

function host(t: tf.Tensor): HostTensor {
  return { shape: [...t.shape], data: t.dataSync() as Float32Array };
}

/** The stack's VQT part as a VqtModel on the base's frozen hooks, so it can read a feature cache. */
function stackTop(fitted: FittedMethod, hooks = fitted.adaptingHooks?.() ?? []): VqtModel {
  const tensors = fitted.exportTensors();
  const own = new Map(Object.entries(tensors).filter(([key]) => key.startsWith('vqt.') || key.startsWith('head.')).map(([key, t]) => [key, host(t)]));
  tf.dispose(Object.values(tensors));
  const model = new VqtModel(vit, { numClasses: fitted.numClasses, ...VQT_OPTIONS, baseHooks: hooks });
  applyVqtTensors(model, own, `${fitted.method} (in memory)`);
  return model;
}

/** Logits of a fitted adapting method from its adapted final CLS: its own head. */
function baseHead(fitted: FittedMethod): (cls: tf.Tensor2D) => tf.Tensor2D {
  const tensors = fitted.exportTensors();
  const weight = tf.transpose(tensors['head.weight']) as tf.Tensor2D; // [D, classes]
  const bias = tf.clone(tensors['head.bias']) as tf.Tensor1D;
  tf.dispose(Object.values(tensors));
  kept.push(weight, bias);
  return (cls) => tf.tidy(() => tf.add(tf.matMul(cls, weight), bias) as tf.Tensor2D);
}
const kept: tf.Tensor[] = [];

/** Fails loudly if the cache path disagrees with a fitted method's own logits on the first images. */
async function checkAgainst(fitted: FittedMethod, split: ImageSplit, fromCache: (batch: VqtCachedBatch) => tf.Tensor2D, cache: FeatureCache): Promise<void> {
  for await (const images of split.batches(8, { shuffle: false })) {
    for await (const cached of cache.batches(8, { shuffle: false, seed: 0, epoch: 0 })) {
      const diff = tf.tidy(() => {
        const own = fitted.logits(tf.tensor4d(images.images, [images.labels.length, 3, split.imageSize, split.imageSize]));
        return tf.max(tf.abs(tf.sub(own, fromCache(cached)))).dataSync()[0];
      });
      tf.dispose([cached.ln1, cached.cls]);
      if (!(diff < 1e-3)) throw new Error(`${fitted.method}: logits from the evaluation cache differ from its own by ${diff}`);
      return;
    }
  }
}

async function top1(cache: FeatureCache, logits: (batch: VqtCachedBatch) => tf.Tensor2D): Promise<number> {
  const result = await evaluateModel({ trainableVariables: () => [], logits: (batch: VqtCachedBatch) => logits(batch) }, cache, 64);
  return result.top1;
}

interface Row {
  task: string;
  group: string;
  seed: number;
  method: string;
  alone: number;
  stacked: number;
  cpuSeconds: number;
}
const rows: Row[] = [];
const vqtAlone: { task: string; seed: number; top1: number }[] = [];

for (const task of tasks) {
  const train = await imageSplit(task, 'train800');
  const evaluation = await imageSplit(task, evalSplit);
  const evalChunks = () => evaluation.batches(batchSize, { shuffle: false });
  const plainEval = await FeatureCache.build(vit, evalChunks(), { expectedImages: evaluation.size });
  for (const seed of seeds) {
    const started = process.cpuUsage();
    const vqt = await vqtMethod.fit(resolveMethodConfig(vqtMethod, VQT_OPTIONS), context(seed, vqtLr), train);
    const vqtModel = stackTop(vqt, []);
    const accuracy = await top1(plainEval, (b) => vqtModel.logits(b, { training: false, seed: 0 }));
    vqtAlone.push({ task, seed, top1: accuracy });
    console.error(`${task} seed ${seed}: vqt ${(100 * accuracy).toFixed(1)}% (${cpuSeconds(started).toFixed(0)} s CPU)`);
    vqtModel.dispose();
    vqt.dispose();
    for (const method of methods) {
      const begun = process.cpuUsage();
      const spec = getMethod(method);
      const config = resolveMethodConfig(spec, BASE_OPTIONS[method] ?? {});
      const base = await spec.fit(config, context(seed, lr), train);
      const stack = await stackSpec(`${method}+vqt`).fit(
        { [method]: config as Record<string, unknown>, vqt: resolveMethodConfig(vqtMethod, VQT_OPTIONS) as unknown as Record<string, unknown> },
        { ...context(seed, vqtLr), base },
        train,
      );
      const hooks = base.adaptingHooks!();
      const adaptedEval = await FeatureCache.build(vit, evalChunks(), { hooks, expectedImages: evaluation.size });
      const head = baseHead(base);
      const top = stackTop(stack, hooks);
      const stackLogits = (b: VqtCachedBatch) => top.logits(b, { training: false, seed: 0 });
      await checkAgainst(base, evaluation, (b) => head(b.cls), adaptedEval);
      await checkAgainst(stack, evaluation, stackLogits, adaptedEval);
      const alone = await top1(adaptedEval, (b) => head(b.cls));
      const stacked = await top1(adaptedEval, stackLogits);
      await adaptedEval.close();
      top.dispose();
      tf.dispose(kept.splice(0));
      stack.dispose();
      base.dispose();
      const cpu = cpuSeconds(begun);
      rows.push({ task, group: getMiniTask(task).group, seed, method, alone, stacked, cpuSeconds: cpu });
      console.error(`${task} seed ${seed}: ${method} ${(100 * alone).toFixed(1)}% -> ${method}+vqt ${(100 * stacked).toFixed(1)}% (${cpu.toFixed(0)} s CPU)`);
      // The runs so far, in case a long run is stopped before the table.
      mkdirSync(RESULTS_DIR, { recursive: true });
      writeFileSync(join(RESULTS_DIR, `stacking-mini-e${epochs}-s${seeds.length}.partial.json`), `${JSON.stringify({ runs: rows, vqtAlone }, null, 2)}\n`);
    }
  }
  await plainEval.close();
  await vqtMethod.close?.();
}

// One row per task and method: mean over seeds, each seed in brackets.
const pct = (x: number) => (100 * x).toFixed(1);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const table = [];
for (const task of tasks) {
  const vqtRuns = vqtAlone.filter((r) => r.task === task).map((r) => r.top1);
  for (const method of methods) {
    const runs = rows.filter((r) => r.task === task && r.method === method);
    const gains = runs.map((r) => r.stacked - r.alone);
    table.push({
      task,
      group: getMiniTask(task).group,
      method,
      alone: `${pct(mean(runs.map((r) => r.alone)))} (${runs.map((r) => pct(r.alone)).join(', ')})`,
      '+vqt': `${pct(mean(runs.map((r) => r.stacked)))} (${runs.map((r) => pct(r.stacked)).join(', ')})`,
      gain: `${mean(gains) >= 0 ? '+' : ''}${pct(mean(gains))}`,
      'vqt alone': pct(mean(vqtRuns)),
    });
  }
}
const totalCpu = cpuSeconds(cpuStarted);
rmSync(join(RESULTS_DIR, `stacking-mini-e${epochs}-s${seeds.length}.partial.json`), { force: true });
report(`stacking-mini-e${epochs}-s${seeds.length}`, backend, table, {
  command: `node benchmarks/dist/stacking.js ${process.argv.slice(2).join(' ')}`.trim(),
  settings: { tasks, seeds, methods, epochs, lr, vqtLr, weightDecay, batchSize, evalSplit, threads, optimizer: 'adam', warmupEpochs: 0, baseOptions: BASE_OPTIONS, vqtOptions: VQT_OPTIONS, backbone: embeddedBackbone().file.split('/').pop() },
  runs: rows,
  vqtAlone,
  cpuSeconds: Math.round(totalCpu),
});
console.log('');
console.log(`| task | group | method | alone, top-1 % | + VQT, top-1 % | gain | VQT alone |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const r of table) console.log(`| ${r.task} | ${r.group} | ${r.method} | ${r.alone} | ${r['+vqt']} | ${r.gain} | ${r['vqt alone']} |`);
console.log(`\n${epochs} epochs per stage, seeds ${seeds.join(', ')}, ${evalSplit} split; ${(totalCpu / 60).toFixed(1)} min of CPU`);
vit.dispose();
process.exit(0);
