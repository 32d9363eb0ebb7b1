import { loadVit, readSafetensors, runVtabProtocol, type HyperParameters, type OptimizerName } from '@vqt/core';
import type { Normalization } from '@vqt/vtab-datasets';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openTaskSplit, parseSplit } from '../data.js';
import { createMethod, type MethodOptions, type TrainedMethod } from '../methods/index.js';
import { trainableSummary } from '../params.js';
import { log } from '../runtime.js';

export interface TrainCommandOptions extends MethodOptions {
  method: string;
  checkpoint: string;
  heads?: number;
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
  resume?: boolean;
  protocol?: boolean;
  lrGrid?: number[];
  wdGrid?: number[];
  normalization: Normalization;
  progress: 'auto' | 'bar' | 'lines' | 'none';
}

export interface TrainOutcome {
  method: string;
  trainableParameters: number;
  backboneParameters: number;
  evalTop1?: number;
  evalSplit?: string;
  protocol?: Awaited<ReturnType<typeof runVtabProtocol>>;
}

/** vqt train: fit one method on a VTAB-style task folder and save its adapter. */
export async function trainCommand(options: TrainCommandOptions): Promise<TrainOutcome> {
  const backbone = loadVit(options.checkpoint, { heads: options.heads });
  const vit = backbone.model;
  const method = createMethod(options.method);
  const imageSize = vit.config.imageSize;
  const open = (split: string) => openTaskSplit(options.data, parseSplit(split), imageSize, options.normalization, options.classes);
  const outcome: TrainOutcome = { method: method.name, trainableParameters: 0, backboneParameters: vit.parameterCount() };
  let announced = false;
  const context = {
    backbone,
    options,
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
  mkdirSync(options.out, { recursive: true });
  const stateFile = join(options.out, 'trainer_state.safetensors');
  if (options.resume && !options.protocol && existsSync(stateFile)) {
    const progress = JSON.parse(readSafetensors(stateFile).metadata.trainer ?? '{}') as { epochsDone?: number };
    log(`resuming from ${stateFile} after epoch ${progress.epochsDone ?? '?'}`);
  }
  const trainSplit = await open(options.split);
  log(`task ${trainSplit.task ?? options.data}: ${trainSplit.size} images in ${trainSplit.split}, ${trainSplit.numClasses} classes, image size ${imageSize}`);

  let final: TrainedMethod;
  if (options.protocol) {
    // The protocol trains many models; a resumable per-run state file would mix them up.
    const perRun = { ...context, train: { ...context.train, checkpointFile: undefined, resume: false } };
    const splits = new Map<string, Awaited<ReturnType<typeof open>>>();
    const splitNamed = async (name: string) => {
      if (!splits.has(name)) splits.set(name, await open(name));
      return splits.get(name)!;
    };
    let kept: TrainedMethod | undefined;
    outcome.protocol = await runVtabProtocol(
      { lr: options.lrGrid ?? [options.lr], weightDecay: options.wdGrid ?? [options.wd] },
      {
        train: async (hp: HyperParameters, split) => method.fit(perRun, hp, await splitNamed(split)),
        evaluate: async (model, split) => (await model.evaluate(await splitNamed(split), options.batch)).top1,
        dispose: (model) => {
          if (model !== kept) model.dispose();
        },
        log,
      },
    );
    // Refit on train800val200 with the best point, to save that adapter.
    kept = await method.fit(perRun, outcome.protocol.best, await splitNamed('train800val200'));
    final = kept;
    outcome.evalSplit = 'test';
    outcome.evalTop1 = outcome.protocol.testTop1;
  } else {
    final = await method.fit(context, { lr: options.lr, weightDecay: options.wd }, trainSplit);
  }
  outcome.trainableParameters = final.trainableParameters();
  if (!options.protocol && options.evalSplit) {
    const result = await final.evaluate(await open(options.evalSplit), options.batch);
    outcome.evalSplit = options.evalSplit;
    outcome.evalTop1 = result.top1;
    log(`${options.evalSplit} top-1: ${(100 * result.top1).toFixed(2)}% (${result.correct}/${result.count})`);
  }
  final.save(options.out, {
    task: trainSplit.task,
    data: resolve(options.data),
    split: options.split,
    epochs: options.epochs,
    lr: options.lr,
    weightDecay: options.wd,
    batchSize: options.batch,
    optimizer: options.optimizer,
    seed: options.seed,
    ...(outcome.protocol ? { protocol: outcome.protocol } : {}),
    ...(outcome.evalTop1 !== undefined ? { [`${outcome.evalSplit}Top1`]: outcome.evalTop1 } : {}),
  }, trainSplit.labelNames ? [...trainSplit.labelNames] : undefined);
  writeFileSync(join(options.out, 'train_summary.json'), `${JSON.stringify(outcome, null, 2)}\n`);
  log(`adapter saved to ${options.out}`);
  final.dispose();
  await method.close?.();
  vit.dispose();
  return outcome;
}
