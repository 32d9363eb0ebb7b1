import {
  DEFAULT_RUNTIME,
  currentBackend,
  evaluateFitted,
  getMethod,
  loadVit,
  methodSpec,
  resolveAnyConfig,
  type FitContext,
  type FittedMethod,
  type HyperParameters,
  type ImageSplit,
  type LoadedVit,
  type StepProfile,
} from '@vqt/core';
import { defaultSuiteDir, embeddedBackbone, ensureMiniSuite, generateMiniSuite, openSplit, type VtabSplitName } from '@vqt/vtab-datasets';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { EMBEDDED_CHECKPOINT, cellKey, type BenchCell, type BenchSettings } from './plan.js';

/** Everything one cell measured. Written as one JSON file per cell in the results folder. */
export interface CellResult {
  id: string;
  /** cellKey(settings, cell): a resumed run reuses this result only when the key matches. */
  key: string;
  task: string;
  seed: number;
  method: string;
  label: string;
  purpose: BenchCell['variant']['purpose'];
  sweep?: number;
  /** The method's resolved options. */
  options: Record<string, unknown>;
  /** The method took no gradient step, so lr x wd did not matter and one grid point was scored. */
  gridUnused?: boolean;
  /** val200 top-1 of every grid point (trained on train800). */
  grid: (HyperParameters & { val200Top1: number })[];
  best: HyperParameters;
  /** Test top-1 after retraining on train800val200 with the best grid point. */
  testTop1: number;
  trainableParameters: number;
  /**
   * Peak bytes of buffers one training step creates (core's profileStep, first step of each fit,
   * max over the cell's fits), at the plan's batch size. null: the method takes no gradient steps
   * (Head2Toe's group-lasso solver).
   */
  peakStepBytes: number | null;
  /** tf.profile's peak of the same step, weights included. */
  peakStepTotalBytes: number | null;
  fits: number;
  seconds: number;
  worker: { host: string; pid: number; backend: string; threads: number };
  finishedAt: string;
}

export interface CellEnvironment {
  log(line: string): void;
}

const backbones = new Map<string, LoadedVit>();
const suiteDirs = new Map<string, string>();

function backboneFor(settings: BenchSettings): LoadedVit {
  const key = `${settings.checkpoint}:${settings.heads ?? ''}`;
  if (!backbones.has(key)) backbones.set(key, loadVit(checkpointFile(settings), { heads: settings.heads }));
  return backbones.get(key)!;
}

/** The backbone file: 'embedded' is @vqt/vtab-datasets' ViT, found in each machine's own install. */
export function checkpointFile(settings: BenchSettings): string {
  return settings.checkpoint === EMBEDDED_CHECKPOINT ? embeddedBackbone().file : settings.checkpoint;
}

/** The task folder of a cell; the mini suite is generated on first use (also on a remote worker). */
export async function taskDirectory(settings: BenchSettings, task: string): Promise<string> {
  if (settings.data.kind === 'folders') return join(settings.data.dir, task);
  const cacheKey = `${settings.data.dir ?? ''}:${settings.data.seed}:${JSON.stringify(settings.data.counts ?? null)}:${task}`;
  const data = settings.data;
  if (!suiteDirs.has(cacheKey)) {
    if (data.counts) {
      // Reduced splits never share a folder with the full-size suite.
      const dir = data.dir ?? join(defaultSuiteDir(data.seed), `../seed-${data.seed}-${data.counts.train800}-${data.counts.val200}-${data.counts.test}`);
      await generateMiniSuite(dir, { seed: data.seed, tasks: [task], counts: data.counts, overwrite: false });
      suiteDirs.set(cacheKey, dir);
    } else {
      suiteDirs.set(cacheKey, await ensureMiniSuite({ tasks: [task], seed: data.seed, ...(data.dir ? { dir: data.dir } : {}) }));
    }
  }
  return join(suiteDirs.get(cacheKey)!, task);
}

/** Frees the backbones this process loaded (a worker calls it before exiting). */
export function releaseBackbones(): void {
  for (const backbone of backbones.values()) backbone.model.dispose();
  backbones.clear();
}

/**
 * Runs one cell: the VTAB-1k protocol (every lr x wd point trained on train800 and scored on val200,
 * the best retrained on train800val200 and scored on test), recording the first training step's
 * memory of every fit.
 */
export async function runCell(cell: BenchCell, settings: BenchSettings, env: CellEnvironment): Promise<CellResult> {
  const started = performance.now();
  const backbone = backboneFor(settings);
  const spec = methodSpec(cell.variant.method);
  const config = resolveAnyConfig(spec, cell.variant.options, cell.variant.label);
  const dir = await taskDirectory(settings, cell.task);
  const imageSize = backbone.model.config.imageSize;
  const splits = new Map<VtabSplitName, ImageSplit>();
  const splitNamed = async (name: VtabSplitName): Promise<ImageSplit> => {
    if (!splits.has(name)) {
      const split = await openSplit(dir, name, { imageSize, normalization: settings.normalization, onWarning: (w) => env.log(`warning: ${w}`) });
      splits.set(name, {
        id: `${split.taskDir}:${split.split}`,
        size: split.size,
        numClasses: split.numClasses,
        imageSize: split.imageSize,
        batches: (batchSize, options) => split.batches(batchSize, options),
      });
    }
    return splits.get(name)!;
  };
  let peakStep: StepProfile | undefined;
  let fits = 0;
  let stepsProfiled = 0;
  let trainableParameters = 0;
  const context: Omit<FitContext, 'hp'> = {
    backbone,
    runtime: { ...DEFAULT_RUNTIME, cacheBudgetBytes: settings.cacheBudgetMiB * 2 ** 20 },
    log: () => {},
    announce: (n) => {
      trainableParameters = n;
    },
    train: {
      epochs: settings.epochs,
      batchSize: settings.batchSize,
      optimizer: settings.optimizer,
      warmupEpochs: settings.warmupEpochs,
      seed: cell.seed,
      progress: 'none',
      onFirstStepProfile: (profile) => {
        stepsProfiled++;
        if (!peakStep || profile.newBufferBytes > peakStep.newBufferBytes) peakStep = profile;
      },
    },
  };
  let options: Record<string, unknown> = {};
  try {
    const train = async (hp: HyperParameters, split: 'train800' | 'train800val200') => {
      fits++;
      const before = stepsProfiled;
      const fitted = await spec.fit(config, { ...context, hp }, await splitNamed(split));
      trainableParameters = fitted.trainableParameters();
      options = fitted.options();
      return { fitted, tookSteps: stepsProfiled > before };
    };
    const score = async (fitted: FittedMethod, split: 'val200' | 'test') => (await evaluateFitted(fitted, await splitNamed(split), settings.batchSize)).top1;
    // The VTAB-1k protocol as core's runVtabProtocol (ties go to the earlier grid point), except that
    // a method whose fit takes no gradient step (Head2Toe's lasso solver) ignores lr and wd, so one
    // grid point stands for all of them instead of refitting the same model.
    const grid: CellResult['grid'] = [];
    let gridUnused = false;
    for (const lr of settings.grid.lr) {
      for (const weightDecay of settings.grid.weightDecay) {
        if (gridUnused) continue;
        const { fitted, tookSteps } = await train({ lr, weightDecay }, 'train800');
        try {
          grid.push({ lr, weightDecay, val200Top1: await score(fitted, 'val200') });
        } finally {
          fitted.dispose();
        }
        env.log(`${cell.id}: grid lr ${lr} wd ${weightDecay}: val200 top-1 ${(100 * grid[grid.length - 1].val200Top1).toFixed(2)}%`);
        if (!tookSteps) gridUnused = true;
      }
    }
    const bestPoint = grid.reduce((a, b) => (b.val200Top1 > a.val200Top1 ? b : a));
    const best = { lr: bestPoint.lr, weightDecay: bestPoint.weightDecay };
    const final = (await train(best, 'train800val200')).fitted;
    let testTop1: number;
    try {
      testTop1 = await score(final, 'test');
    } finally {
      final.dispose();
    }
    env.log(`${cell.id}: best lr ${best.lr} wd ${best.weightDecay}: test top-1 ${(100 * testTop1).toFixed(2)}%`);
    const protocol = { grid, best, testTop1 };
    const backend = currentBackend();
    return {
      id: cell.id,
      key: cellKey(settings, cell),
      task: cell.task,
      seed: cell.seed,
      method: cell.variant.method,
      label: cell.variant.label,
      purpose: cell.variant.purpose,
      ...(cell.variant.sweep !== undefined ? { sweep: cell.variant.sweep } : {}),
      options,
      grid: protocol.grid,
      ...(gridUnused ? { gridUnused: true } : {}),
      best: protocol.best,
      testTop1: protocol.testTop1,
      trainableParameters,
      peakStepBytes: peakStep ? peakStep.newBufferBytes : null,
      peakStepTotalBytes: peakStep ? peakStep.peakBytes : null,
      fits,
      seconds: (performance.now() - started) / 1000,
      worker: { host: hostname(), pid: process.pid, backend: backend?.kind ?? 'unknown', threads: backend?.threads ?? 0 },
      finishedAt: new Date().toISOString(),
    };
  } finally {
    // Feature caches are per split; the next cell is usually another task, so free them now.
    for (const part of cell.variant.method.split('+')) await getMethod(part).close?.();
  }
}
