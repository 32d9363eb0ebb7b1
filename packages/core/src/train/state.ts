import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { FileFormatError } from '../io/errors.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { HostTensor } from '../io/types.js';
import type { EpochLog, TrainOptions } from './types.js';

/** What a resumed run must agree on with the run that wrote the checkpoint. */
export function runFingerprint(options: TrainOptions, variables: tf.Variable[]): string {
  const { epochs, batchSize, lr, weightDecay, optimizer, momentum, warmupEpochs, seed, shuffle } = options;
  return JSON.stringify({ epochs, batchSize, lr, weightDecay, optimizer, momentum, warmupEpochs, seed, shuffle, shapes: variables.map((v) => v.shape) });
}

interface SavedState {
  fingerprint: string;
  epochsDone: number;
  history: EpochLog[];
}

/**
 * tfjs's Adam keeps beta^t as running products but setWeights recomputes them with pow(), which
 * differs in the last bits; saving the products makes a resumed run match an unbroken one exactly.
 */
function adamPowers(optimizer: tf.Optimizer): Record<string, tf.Variable> {
  const internals = optimizer as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  return internals.accBeta1 && internals.accBeta2 ? { accBeta1: internals.accBeta1, accBeta2: internals.accBeta2 } : {};
}

const toHost = (t: tf.Tensor): HostTensor => ({ shape: t.shape.slice(), data: Float32Array.from(t.dataSync()) });
const pad = (i: number) => String(i).padStart(4, '0');

/** One safetensors file (atomic write): variables, optimizer slots by position, and the run's progress. */
export async function saveTrainState(file: string, variables: tf.Variable[], optimizer: tf.Optimizer, state: SavedState): Promise<void> {
  const tensors: Record<string, HostTensor> = {};
  variables.forEach((v, i) => (tensors[`variable.${pad(i)}`] = toHost(v)));
  const slots = await optimizer.getWeights();
  slots.forEach((slot, i) => (tensors[`optimizer.${pad(i)}`] = toHost(slot.tensor)));
  for (const [name, t] of Object.entries(adamPowers(optimizer))) tensors[`optimizer.${name}`] = toHost(t);
  writeSafetensors(file, tensors, { metadata: { trainer: JSON.stringify({ ...state, slotNames: slots.map((s) => s.name) }) } });
}

/** Restores variables and optimizer slots; returns the progress, or undefined when there is no checkpoint. */
export async function loadTrainState(file: string, variables: tf.Variable[], optimizer: tf.Optimizer, fingerprint: string): Promise<SavedState | undefined> {
  if (!existsSync(file)) return undefined;
  const { tensors, metadata } = readSafetensors(file);
  let saved: SavedState & { slotNames: string[] };
  try {
    saved = JSON.parse(metadata.trainer ?? '');
  } catch {
    throw new FileFormatError(file, 'not a trainer checkpoint (no trainer metadata)');
  }
  if (saved.fingerprint !== fingerprint) {
    throw new FileFormatError(file, 'was written by a run with other options or variable shapes; remove it or drop --resume');
  }
  variables.forEach((v, i) => {
    const t = tensors.get(`variable.${pad(i)}`);
    if (!t || t.shape.join() !== v.shape.join()) throw new FileFormatError(file, `missing or wrong shape for ${v.name}`, `variable.${pad(i)}`);
    v.assign(tf.tensor(t.data, t.shape));
  });
  const slots = saved.slotNames.map((name, i) => {
    const t = tensors.get(`optimizer.${pad(i)}`);
    if (!t) throw new FileFormatError(file, 'missing optimizer slot', `optimizer.${pad(i)}`);
    return { name, tensor: tf.tensor(t.data, t.shape) };
  });
  if (slots.length > 0) await optimizer.setWeights(slots);
  tf.dispose(slots.map((s) => s.tensor));
  for (const [name, variable] of Object.entries(adamPowers(optimizer))) {
    const t = tensors.get(`optimizer.${name}`);
    if (t) variable.assign(tf.scalar(t.data[0]));
  }
  return { fingerprint: saved.fingerprint, epochsDone: saved.epochsDone, history: saved.history };
}
