// Issue 10's table in one run: VQT here (cache build, cached epoch, frozen forward) against the
// official-style PyTorch VQT step (backbone in the autograd graph) on the same machine, and the
// VTAB-1k task time both would take. Random ViT-B/16 weights; random pixels (no image decode).
// Usage: node dist/vqt-vs-pytorch.js [--images 32] [--batch 32] [--epochs 2] [--forward-batch 8] [--torch-steps 3]
import * as tf from '@tensorflow/tfjs';
import { arrayImageSplit, fitMethod, initBackend, presetConfig, randomVit, setSideQueryKernel, trainModel, type SideQueryKernel } from '@vqt/core';
import { FeatureCache, VqtModel } from '@vqt/vqt';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asBackbone, flag, randomImages, report, RESULTS_DIR } from './report.js';

const preset = 'vit_base_patch16_224';
const count = Number(flag('images', '32'));
const batch = Number(flag('batch', '32'));
const epochs = Number(flag('epochs', '2'));
const forwardBatch = Number(flag('forward-batch', '8'));
const torchSteps = Number(flag('torch-steps', '3'));
const NAME = `vqt-vs-pytorch-${preset}`;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PYTHON = '/usr/bin/python3';
const SCRIPT = join(ROOT, 'tools', 'reference', 'pytorch_vqt_step.py');
// VTAB-1k: 1000 training images (train800val200), 100 epochs (METHOD.md's reference recipe).
const TASK_IMAGES = 1000;
const TASK_EPOCHS = 100;

interface TorchFigures {
  vqtStepSecondsPerImage: number;
  forwardSecondsPerBatch: number;
  /** Absent in results written before the full fine-tuning row existed. */
  fullStepSecondsPerImage?: number;
  batch: number;
  source: string;
  [key: string]: unknown;
}

const loadAverage = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
const loadAtStart = loadAverage();

function torchFigures(): TorchFigures {
  const importable = (() => {
    try {
      execFileSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  if (importable) {
    const out = execFileSync(PYTHON, [SCRIPT, '--batch', String(forwardBatch), '--steps', String(torchSteps), '--threads', '2'], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const figures = JSON.parse(out.trim().split('\n').pop()!) as TorchFigures;
    return { ...figures, source: `measured in this run (${PYTHON} ${SCRIPT.slice(ROOT.length + 1)})`, libblas: libblas() };
  }
  const previous = join(RESULTS_DIR, `${NAME}.json`);
  if (existsSync(previous)) {
    const last = JSON.parse(readFileSync(previous, 'utf8')) as { date: string; pytorch: TorchFigures };
    return { ...last.pytorch, source: `NOT rerun: torch is not importable by ${PYTHON}; figures of the committed result of ${last.date}` };
  }
  // ENGINE.md, measured 2026-12-04 on this machine kind.
  return { vqtStepSecondsPerImage: 0.645, forwardSecondsPerBatch: 2.75, batch: 8, source: `NOT rerun: torch is not importable by ${PYTHON}; ENGINE.md's figures of 2026-12-04` };
}

/** Which BLAS Debian's torch loads (its reference BLAS is ~20x slower than OpenBLAS). */
function libblas(): string {
  try {
    return realpathSync('/etc/alternatives/libblas.so.3-x86_64-linux-gnu');
  } catch {
    return 'unknown';
  }
}

const seconds = async (fn: () => Promise<unknown> | unknown) => {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
};

// PyTorch first, on a quiet process (the wasm threads are not started yet).
console.log(`load average ${loadAtStart}; PyTorch anchor...`);
const torch = torchFigures();

const backend = await initBackend();
const config = presetConfig(preset);
const vit = randomVit(config);
const size = config.imageSize;
const floats = 3 * size * size;
const images = randomImages([count, 3, size, size], 1);
const labels = Int32Array.from({ length: count }, (_, i) => i % 10);

// Frozen forward at the PyTorch batch: the throughput figure (eval, embed, Head2Toe).
const forwardImages = tf.tensor4d(images.subarray(0, forwardBatch * floats), [forwardBatch, 3, size, size]);
const forwardOnce = () => seconds(async () => {
  const cls = tf.tidy(() => vit.forward(forwardImages).cls);
  await cls.data();
  cls.dispose();
});
await forwardOnce(); // warm-up: operator setup
const forwards = [await forwardOnce(), await forwardOnce()];
const forward = Math.min(...forwards);
forwardImages.dispose();
console.log(`forward batch ${forwardBatch}: ${forwards.map((s) => s.toFixed(2)).join(' ')} s`);

// Cache build: the frozen forward over every image, LN1 per block kept (no image decode here).
let cache: FeatureCache | undefined;
const chunk = 8;
const build = await seconds(async () => {
  const chunks = [];
  for (let s = 0; s < count; s += chunk) chunks.push({ images: images.subarray(s * floats, Math.min(count, s + chunk) * floats), labels: labels.subarray(s, Math.min(count, s + chunk)) });
  cache = await FeatureCache.build(vit, chunks, { budgetBytes: 8 * 2 ** 30 });
});
console.log(`cache build: ${(build / count).toFixed(2)} s/image`);

// Cached epochs (T 1, dropout 0.1, Adam), fast side-query kernel then the first one, then fast again.
const train = { batchSize: batch, lr: 0.01, weightDecay: 1e-4, optimizer: 'adam' as const, warmupEpochs: 0, seed: 0, progress: 'none' as const };
const epochTimes = async (kernel: SideQueryKernel) => {
  setSideQueryKernel(kernel);
  const model = new VqtModel(vit, { numClasses: 10 });
  const { history } = await trainModel(model, cache!, { ...train, epochs });
  model.dispose();
  setSideQueryKernel(undefined);
  return history.map((h) => h.seconds / count);
};
const fastRuns = await epochTimes('perHead');
const maskedRuns = await epochTimes('masked');
const fastAgain = await epochTimes('perHead');
const cachedEpoch = Math.min(...fastRuns, ...fastAgain);
const maskedEpoch = Math.min(...maskedRuns);
console.log(`cached epoch s/image: per-head ${[...fastRuns, ...fastAgain].map((s) => (s * 1000).toFixed(0)).join(' ')} ms; masked ${maskedRuns.map((s) => (s * 1000).toFixed(0)).join(' ')} ms`);
await cache!.close();

// Full fine-tuning step at the PyTorch batch (every weight trains, through the registry and the
// trainer, checkpointing 'auto'): the second of two one-step epochs, the first sets operators up.
const fullStep = await (async () => {
  const backbone = asBackbone(vit, preset);
  const data = arrayImageSplit(images.slice(0, forwardBatch * floats), labels.slice(0, forwardBatch), size, { numClasses: 10 });
  const epochs: number[] = [];
  const fitted = await fitMethod('full', backbone, data, {
    epochs: 2,
    batchSize: forwardBatch,
    lr: 1e-4,
    weightDecay: 1e-4,
    warmupEpochs: 0,
    onEpochEnd: (log) => void epochs.push(log.seconds),
  });
  fitted.dispose();
  return { seconds: epochs[epochs.length - 1], runs: epochs };
})();
console.log(`full fine-tuning step, batch ${forwardBatch}: ${fullStep.runs.map((s) => s.toFixed(1)).join(' ')} s`);

const ours = TASK_IMAGES * (build / count) + TASK_EPOCHS * TASK_IMAGES * cachedEpoch;
const theirs = TASK_EPOCHS * TASK_IMAGES * torch.vqtStepSecondsPerImage;
const hours = (s: number) => `${(s / 3600).toFixed(2)} h`;
const torchForward = torch.forwardSecondsPerBatch * (forwardBatch / torch.batch);
const rows = [
  { figure: `official-style PyTorch VQT step (backbone in the autograd graph, batch ${torch.batch})`, value: `${torch.vqtStepSecondsPerImage.toFixed(3)} s/image`, goal: '(anchor)' },
  { figure: 'cache build (frozen forward, LN1 kept; no image decode)', value: `${(build / count).toFixed(2)} s/image`, goal: '<= 0.6 s/image' },
  { figure: `one cached epoch (T 1, batch ${batch}, dropout 0.1, Adam)`, value: `${(cachedEpoch * 1000).toFixed(0)} ms/image`, goal: '<= 20 ms/image' },
  { figure: 'the same with the first side-query kernel (masked, per-image softmax)', value: `${(maskedEpoch * 1000).toFixed(0)} ms/image`, goal: '-' },
  { figure: `VTAB-1k task (${TASK_IMAGES} images, ${TASK_EPOCHS} epochs), extrapolated`, value: `${hours(ours)} vs ${hours(theirs)}: ${(theirs / ours).toFixed(1)}x`, goal: '>= 20x' },
  { figure: `ViT-B/16 forward, batch ${forwardBatch}, vs PyTorch's ${torchForward.toFixed(2)} s`, value: `${forward.toFixed(2)} s: ${(torchForward / forward).toFixed(2)}x`, goal: '>= 0.6x' },
  {
    figure: `full fine-tuning step (issue 11), batch ${forwardBatch}, vs PyTorch's ${torch.fullStepSecondsPerImage === undefined ? '(not measured)' : `${(torch.fullStepSecondsPerImage * forwardBatch).toFixed(2)} s`}`,
    value: `${fullStep.seconds.toFixed(2)} s${torch.fullStepSecondsPerImage === undefined ? '' : `: ${((torch.fullStepSecondsPerImage * forwardBatch) / fullStep.seconds).toFixed(2)}x`}`,
    goal: '>= 0.33x',
  },
];
const loadAtEnd = loadAverage();
report(NAME, backend, rows, {
  images: count,
  batch,
  epochsPerKernel: epochs,
  forwardBatch,
  forwardRuns: forwards,
  cachedEpochSecondsPerImage: { perHead: [...fastRuns, ...fastAgain], masked: maskedRuns },
  cacheBuildSecondsPerImage: build / count,
  fullFineTuningStep: { secondsPerBatch: fullStep.seconds, runs: fullStep.runs, batch: forwardBatch },
  pytorch: torch,
  loadAverage: { start: loadAtStart, end: loadAtEnd },
  note: 'minimum over epochs for the cached epoch and over runs for the forward; random weights and pixels',
});
writeReadmeTable(rows);
process.exit(0);

/** Replaces the table between the markers in benchmarks/README.md. */
function writeReadmeTable(table: { figure: string; value: string; goal: string }[]): void {
  const readme = join(ROOT, 'benchmarks', 'README.md');
  if (!existsSync(readme)) return;
  const [start, end] = ['<!-- vqt-vs-pytorch:start -->', '<!-- vqt-vs-pytorch:end -->'];
  const text = readFileSync(readme, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) return;
  const lines = [
    start,
    `Run ${new Date().toISOString().slice(0, 16)} UTC, ${backend.tfBackend} ${backend.threads} threads, ${count} images, load average ${loadAtStart} at the start and ${loadAtEnd} at the end (${os.cpus().length} CPUs). PyTorch: ${torch.source}.`,
    '',
    '| figure | measured | goal |',
    '|---|---|---|',
    ...table.map((r) => `| ${r.figure} | ${r.value} | ${r.goal} |`),
    '',
  ];
  writeFileSync(readme, `${text.slice(0, from)}${lines.join('\n')}${text.slice(to)}`);
}
