import { DEFAULT_RUNTIME, evaluateFitted, getMethod, loadVit, resolveMethodConfig, type BackendInfo, type FitContext } from '@vqt/core';
import { embeddedBackbone, ensureMiniSuite, MINI_SUITE_TASK_NAMES } from '@vqt/vtab-datasets';
import { join } from 'node:path';
import { openTaskSplit } from '../data.js';
import { UsageError } from '../errors.js';
import { asImageSplit } from '../image-split.js';
import '../methods.js';
import { trainableSummary } from '../params.js';
import { log } from '../runtime.js';

export interface DemoOptions {
  task: string;
  epochs: number;
  lr: number;
  batch: number;
  seed: number;
  queries: number;
}

/**
 * What a newcomer first sees: VQT on the embedded backbone over one mini-suite task, next to a
 * linear probe on the same frozen backbone, with accuracy, trainable parameters and peak memory.
 */
export async function demoCommand(options: DemoOptions, backend: BackendInfo): Promise<void> {
  if (!MINI_SUITE_TASK_NAMES.includes(options.task)) throw new UsageError(`unknown mini-suite task "${options.task}"; use one of ${MINI_SUITE_TASK_NAMES.join(', ')}`);
  const suite = await ensureMiniSuite({ tasks: [options.task], onTask: (t) => log(`generated mini-suite task ${t.task ?? t}`) });
  const taskDir = join(suite, options.task);
  const backbone = loadVit(embeddedBackbone().file);
  log(`backbone ${backbone.name}: ${backbone.model.parameterCount().toLocaleString('en-US')} parameters, image ${backbone.model.config.imageSize}, ${backbone.model.numTokens - 1} patch tokens`);
  const open = (split: 'train800val200' | 'test') => openTaskSplit(taskDir, split, backbone.model.config.imageSize, 'imagenet');
  const train = asImageSplit(await open('train800val200'));
  const test = asImageSplit(await open('test'));
  log(`task ${options.task}: ${train.size} training and ${test.size} test images, ${train.numClasses} classes`);

  const rows: { method: string; top1: number; trainable: number; peakTensorMiB: number; seconds: number }[] = [];
  for (const name of ['vqt', 'linear']) {
    const method = getMethod(name);
    const config = resolveMethodConfig(method, name === 'vqt' ? { queries: options.queries } : {});
    const context: FitContext = {
      backbone,
      hp: { lr: options.lr, weightDecay: 1e-4 },
      runtime: { ...DEFAULT_RUNTIME, cacheBudgetBytes: 2 ** 30 },
      log: () => {},
      train: { epochs: options.epochs, batchSize: options.batch, optimizer: 'adam', warmupEpochs: Math.min(5, Math.floor(options.epochs / 10)), seed: options.seed, progress: 'none' },
    };
    const started = performance.now();
    let peakBytes = Number.NaN;
    context.train.onFirstStepProfile = (profile) => {
      peakBytes = profile.newBufferBytes;
    };
    const fitted = await method.fit(config, context, train);
    const { top1 } = await evaluateFitted(fitted, test, options.batch);
    const seconds = (performance.now() - started) / 1000;
    rows.push({ method: name, top1, trainable: fitted.trainableParameters(), peakTensorMiB: peakBytes / 2 ** 20, seconds });
    log(`${name}: test top-1 ${(100 * top1).toFixed(2)}% (${seconds.toFixed(0)} s)`);
    fitted.dispose();
    await method.close?.();
  }
  const frozen = backbone.model.parameterCount();
  const rssMiB = process.resourceUsage().maxRSS / 1024;
  const lines = [
    '',
    `VQT demo on ${options.task} (${backend.kind}${backend.kind === 'wasm' ? `, ${backend.threads} thread${backend.threads === 1 ? '' : 's'}` : ''})`,
    'method   test top-1   trainable params   training-step memory (peak, beyond weights and batch)',
    ...rows.map((r) => `${r.method.padEnd(8)} ${(100 * r.top1).toFixed(2).padStart(9)}%   ${r.trainable.toLocaleString('en-US').padStart(16)}   ${r.peakTensorMiB.toFixed(1).padStart(8)} MiB`),
    '',
    `VQT: ${trainableSummary(rows[0].trainable, frozen)}`,
    `peak process memory (max RSS): ${rssMiB.toFixed(0)} MiB`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  backbone.model.dispose();
}
