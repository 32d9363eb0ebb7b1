import { evaluateFitted, getMethod, loadVit, openFitted, readSafetensors, resolveAnyConfig, runVtabProtocol, saveFitted, type FitContext, type FittedMethod, type HyperParameters, type OptimizerName } from '@vqt/core';
import type { Normalization } from '@vqt/vtab-datasets';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openTaskSplit, parseSplit } from '../data.js';
import { asImageSplit } from '../image-split.js';
import { methodConfigFromFlags, runtimeFromFlags, type RuntimeFlags } from '../methods.js';
import { trainableSummary } from '../params.js';
import { UsageError } from '../errors.js';
import { log } from '../runtime.js';

export interface TrainCommandOptions extends Partial<RuntimeFlags> {
  method: string;
  checkpoint: string;
  heads?: number;
  /** Load a checkpoint with tensors the loader does not use (warned about). */
  ignoreUnknown?: boolean;
  data: string;
  /** --classes: class count of a folder outside the task registry. */
  classes?: number;
  split: string;
  evalSplit?: string;
  epochs: number;
  lr: number;
  wd: number;
  batch: number;
  optimizer: OptimizerName;
  warmup: number;
  seed: number;
  out: string;
  /** A trained adapter of the stack's base method, reused instead of fitting it again. */
  base?: string;
  /** Train a stack's two methods together instead of two-stage. */
  joint?: boolean;
  resume?: boolean;
  protocol?: boolean;
  lrGrid?: number[];
  wdGrid?: number[];
  normalization: Normalization;
  progress: 'auto' | 'bar' | 'lines' | 'none';
  /** The method's own flags, by commander property name (strings until the method's spec parses them). */
  [flag: string]: unknown;
}

export interface TrainOutcome {
  method: string;
  options: Record<string, unknown>;
  trainableParameters: number;
  backboneParameters: number;
  evalTop1?: number;
  evalSplit?: string;
  protocol?: Awaited<ReturnType<typeof runVtabProtocol>>;
}

/** vqt train: fit one method (or stack) on a task folder and save its adapter. */
export async function trainCommand(options: TrainCommandOptions): Promise<TrainOutcome> {
  const { spec, config: flags } = methodConfigFromFlags(options.method, options);
  const backbone = loadVit(options.checkpoint, { heads: options.heads, ignoreUnknown: options.ignoreUnknown });
  const vit = backbone.model;
  vit.checkpointing = options.checkpointing ?? 'auto';
  const imageSize = vit.config.imageSize;
  const open = async (split: string) => asImageSplit(await openTaskSplit(options.data, parseSplit(split), imageSize, options.normalization, options.classes));
  const outcome: TrainOutcome = { method: spec.name, options: {}, trainableParameters: 0, backboneParameters: vit.parameterCount() };
  let announced = false;
  const context: Omit<FitContext, 'hp'> = {
    backbone,
    runtime: runtimeFromFlags(options),
    log,
    announce: (trainable: number) => {
      if (announced) return;
      announced = true;
      log(trainableSummary(trainable, outcome.backboneParameters));
    },
    train: {
      epochs: options.epochs,
      batchSize: options.batch,
      optimizer: options.optimizer,
      warmupEpochs: options.warmup,
      seed: options.seed,
      progress: options.progress,
      checkpointFile: join(options.out, 'trainer_state.safetensors'),
      resume: options.resume,
    },
  };
  const config = resolveAnyConfig(spec, flags, 'command line');
  if (options.joint) {
    if (!spec.name.includes('+')) throw new UsageError(`--joint trains the two methods of a stack together; --method ${spec.name} is not a stack`);
    if (options.base) throw new UsageError('--joint fits the base too; it cannot be combined with --base');
    context.joint = true;
  }
  if (options.base) {
    if (!spec.name.includes('+')) throw new UsageError(`--base reuses the base of a stack; --method ${spec.name} is not a stack (e.g. vpt+vqt)`);
    const { fitted } = openFitted(options.base, backbone, context.runtime);
    context.base = fitted;
    log(`stack base: ${fitted.method} adapter from ${options.base} (not retrained)`);
  }
  mkdirSync(options.out, { recursive: true });
  const stateFile = join(options.out, 'trainer_state.safetensors');
  if (options.resume && !options.protocol && existsSync(stateFile)) {
    const progress = JSON.parse(readSafetensors(stateFile).metadata.trainer ?? '{}') as { epochsDone?: number };
    log(`resuming from ${stateFile} after epoch ${progress.epochsDone ?? '?'}`);
  }
  const trainSplit = await open(options.split);
  log(`task ${options.data}: ${trainSplit.size} images in ${options.split}, ${trainSplit.numClasses} classes, image size ${imageSize}`);

  let final: FittedMethod;
  try {
    if (options.protocol) {
      // The protocol trains many models; a resumable per-run state file would mix them up.
      const perRun = { ...context, train: { ...context.train, checkpointFile: undefined, resume: false } };
      const splits = new Map<string, Awaited<ReturnType<typeof open>>>();
      const splitNamed = async (name: string) => {
        if (!splits.has(name)) splits.set(name, await open(name));
        return splits.get(name)!;
      };
      outcome.protocol = await runVtabProtocol(
        { lr: options.lrGrid ?? [options.lr], weightDecay: options.wdGrid ?? [options.wd] },
        {
          train: async (hp: HyperParameters, split) => spec.fit(config, { ...perRun, hp }, await splitNamed(split)),
          evaluate: async (model, split) => (await evaluateFitted(model, await splitNamed(split), options.batch)).top1,
          dispose: (model) => model.dispose(),
          log,
        },
      );
      // Refit on train800val200 with the best point, to save that adapter.
      final = await spec.fit(config, { ...perRun, hp: outcome.protocol.best }, await splitNamed('train800val200'));
      outcome.evalSplit = 'test';
      outcome.evalTop1 = outcome.protocol.testTop1;
    } else {
      final = await spec.fit(config, { ...context, hp: { lr: options.lr, weightDecay: options.wd } }, trainSplit);
    }
    outcome.trainableParameters = final.trainableParameters();
    outcome.options = final.options();
    if (!options.protocol && options.evalSplit) {
      const result = await evaluateFitted(final, await open(options.evalSplit), options.batch);
      outcome.evalSplit = options.evalSplit;
      outcome.evalTop1 = result.top1;
      log(`${options.evalSplit} top-1: ${(100 * result.top1).toFixed(2)}% (${result.correct}/${result.count})`);
    }
    saveFitted(options.out, final, backbone, {
      labelNames: trainSplit.labelNames,
      training: {
        data: resolve(options.data),
        split: options.split,
        epochs: options.epochs,
        lr: options.lr,
        weightDecay: options.wd,
        batchSize: options.batch,
        optimizer: options.optimizer,
        seed: options.seed,
        ...(options.joint ? { stacking: 'joint' } : spec.name.includes('+') ? { stacking: options.base ? 'two-stage, base reused' : 'two-stage' } : {}),
        normalization: options.normalization,
        ...(outcome.protocol ? { protocol: outcome.protocol } : {}),
        ...(outcome.evalTop1 !== undefined ? { [`${outcome.evalSplit}Top1`]: outcome.evalTop1 } : {}),
      },
    });
    writeFileSync(join(options.out, 'train_summary.json'), `${JSON.stringify(outcome, null, 2)}\n`);
    log(`adapter saved to ${options.out}`);
    final.dispose();
  } finally {
    context.base?.dispose();
    for (const part of spec.name.split('+')) await getMethod(part).close?.();
    vit.dispose();
  }
  return outcome;
}
