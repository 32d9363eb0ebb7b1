import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  evaluateModel,
  FeatureDataSource,
  initBackend,
  LinearHead,
  LinearProbe,
  runVtabProtocol,
  seededRandom,
  sliceBatch,
  trainModel,
  createOptimizer,
  peakNewBufferBytes,
  warmupCosineLr,
  type StepProfile,
  type TrainOptions,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vqt-trainer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

/** Three Gaussian blobs in 16 dimensions: separable, so a linear head must learn them. */
function blobs(n: number, seed: number): FeatureDataSource {
  const random = seededRandom(seed);
  const width = 16;
  const centres = [0, 1, 2].map((c) => Float32Array.from({ length: width }, (_, i) => (i % 3 === c ? 2 : 0)));
  const features = new Float32Array(n * width);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 3;
    for (let j = 0; j < width; j++) features[i * width + j] = centres[labels[i]][j] + (random() - 0.5) * 2;
  }
  return new FeatureDataSource(features, width, labels);
}

const options = (extra: Partial<TrainOptions> = {}): TrainOptions => ({
  epochs: 6,
  batchSize: 16,
  lr: 0.05,
  weightDecay: 1e-3,
  optimizer: 'adam',
  warmupEpochs: 2,
  seed: 7,
  progress: 'none',
  ...extra,
});

describe('schedule', () => {
  it('warms up linearly without an epoch at rate 0, then follows half a cosine to zero', () => {
    // No epoch at rate 0: the warmup climbs in equal steps to the peak.
    expect(warmupCosineLr(1, 0, 10, 2)).toBeCloseTo(1 / 3, 10);
    expect(warmupCosineLr(1, 1, 10, 2)).toBeCloseTo(2 / 3, 10);
    expect(warmupCosineLr(1, 2, 10, 2)).toBe(1);
    expect(warmupCosineLr(1, 6, 10, 2)).toBeCloseTo(0.5, 10);
    expect(warmupCosineLr(1, 10, 10, 2)).toBeCloseTo(0, 10);
  });
});

describe('trainModel', () => {
  it('learns a separable task with adam and with sgd, without leaking tensors', async () => {
    for (const optimizer of ['adam', 'sgd'] as const) {
      const before = tf.memory().numTensors;
      const head = new LinearHead(16, 3);
      const { history } = await trainModel(new LinearProbe(head), blobs(300, 1), options({ optimizer, lr: optimizer === 'sgd' ? 0.1 : 0.05 }));
      expect(tf.memory().numTensors).toBe(before + 2); // the head's two variables
      expect(history.at(-1)!.loss).toBeLessThan(history[1].loss);
      const { top1 } = await evaluateModel(new LinearProbe(head), blobs(300, 2), 64);
      expect(top1).toBeGreaterThan(0.9);
      head.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('profiles the first step once: peak bytes cover the weights, a batch and the gradients', async () => {
    const head = new LinearHead(16, 3);
    const profiles: StepProfile[] = [];
    const profiled = await trainModel(new LinearProbe(head), blobs(120, 4), options({ epochs: 2, batchSize: 40, onFirstStepProfile: (p) => profiles.push(p) }));
    expect(profiles).toHaveLength(1);
    const weightBytes = (16 * 3 + 3) * 4;
    expect(profiles[0].startBytes).toBeGreaterThanOrEqual(weightBytes);
    // The batch [40, 16] exists before the step; during it at least the logits [40, 3] and the weight's gradient are added.
    expect(profiles[0].startBytes).toBeGreaterThanOrEqual(weightBytes + 40 * 16 * 4);
    expect(profiles[0].peakBytes).toBeGreaterThanOrEqual(profiles[0].startBytes + 40 * 3 * 4 + 16 * 3 * 4);
    // Counted once per buffer: at least the logits and the weight gradient, at most everything tf.profile saw.
    expect(profiles[0].newBufferBytes).toBeGreaterThanOrEqual(40 * 3 * 4 + 16 * 3 * 4);
    expect(profiles[0].newBufferBytes).toBeLessThanOrEqual(profiles[0].peakBytes - profiles[0].startBytes);
    // Profiling does not change the result.
    const plain = new LinearHead(16, 3);
    const unprofiled = await trainModel(new LinearProbe(plain), blobs(120, 4), options({ epochs: 2, batchSize: 40 }));
    expect(profiled.history.map((h) => h.loss)).toEqual(unprofiled.history.map((h) => h.loss));
    head.dispose();
    plain.dispose();
  });

  it('micro-batches (gradient accumulation) give the same training as whole batches, and leak nothing', async () => {
    const whole = new LinearHead(16, 3);
    const chunked = new LinearHead(16, 3);
    const a = await trainModel(new LinearProbe(whole), blobs(90, 6), options({ epochs: 3, batchSize: 30 }));
    const before = tf.memory().numTensors;
    const b = await trainModel(new LinearProbe(chunked), blobs(90, 6), options({ epochs: 3, batchSize: 30, microBatchSize: 7 }));
    expect(tf.memory().numTensors).toBe(before);
    b.history.forEach((h, i) => {
      expect(h.loss).toBeCloseTo(a.history[i].loss, 5);
      expect(h.trainTop1).toBe(a.history[i].trainTop1);
    });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(whole.weight, chunked.weight))).dataSync()[0]);
    expect(diff).toBeLessThan(1e-5);
    whole.dispose();
    chunked.dispose();
  });

  it('sliceBatch cuts every tensor and typed array of the batch length, nested too', () => {
    const batch = { labels: Int32Array.from([0, 1, 2, 3]), features: tf.tensor2d([[1], [2], [3], [4]]), ln1: [tf.zeros([4, 2, 3])], cls: tf.ones([4, 5]) };
    const part = sliceBatch(batch, 1, 3);
    expect(Array.from(part.labels)).toEqual([1, 2]);
    expect(Array.from(part.features.dataSync())).toEqual([2, 3]);
    expect(part.ln1[0].shape).toEqual([2, 2, 3]);
    expect(part.cls.shape).toEqual([2, 5]);
    tf.dispose([batch.features, batch.ln1[0], batch.cls, part.features, part.ln1[0], part.cls]);
  });

  it('LinearHead exports new tensors (disposing them leaves the head intact) and checks shapes on import', () => {
    const head = new LinearHead(4, 3);
    const exported = head.exportTensors();
    expect(exported['head.weight'].shape).toEqual([3, 4]);
    tf.dispose(Object.values(exported));
    expect(head.bias.isDisposed).toBe(false);
    expect(Array.from(head.bias.dataSync())).toEqual([0, 0, 0]);
    const other = { shape: [3, 5], data: new Float32Array(15) };
    expect(() => head.importTensors(other, { shape: [3], data: new Float32Array(3) })).toThrow(/do not fit \[3, 4\]/);
    head.dispose();
  });

  it('LinearHead imports an adapter file\'s head.weight / head.bias, or says which one is missing or misshapen, naming the file once', () => {
    const head = new LinearHead(4, 3);
    const weight = { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i) };
    const bias = { shape: [3], data: Float32Array.from([1, 2, 3]) };
    const file = 'a/adapter_model.safetensors';
    const open = (tensors: [string, typeof bias][]) => () => head.importFromAdapter(new Map(tensors), file);
    expect(open([['head.bias', bias]])).toThrow(/^a\/adapter_model\.safetensors: missing tensor head\.weight$/);
    expect(open([['head.weight', weight]])).toThrow(/^a\/adapter_model\.safetensors: missing tensor head\.bias$/);
    expect(open([['head.weight', { shape: [3, 5], data: new Float32Array(15) }], ['head.bias', bias]])).toThrow(
      /^a\/adapter_model\.safetensors: head weights \[3,5\] \/ \[3\] do not fit \[3, 4\] \/ \[3\]$/,
    );
    open([['head.weight', weight], ['head.bias', bias]])();
    // Torch layout [classes, features] in the file, input-major [features, classes] in the head.
    expect(head.weight.arraySync()[1]).toEqual([1, 5, 9]);
    expect(Array.from(head.bias.dataSync())).toEqual([1, 2, 3]);
    head.dispose();
  });

  it('applies coupled L2 decay: with zero gradient signal the weights shrink', async () => {
    const head = new LinearHead(16, 3);
    head.weight.assign(tf.ones([16, 3]));
    // Balanced labels and zero features: the loss gradient w.r.t. the weight is exactly zero.
    const data = new FeatureDataSource(new Float32Array(30 * 16), 16, Int32Array.from({ length: 30 }, (_, i) => i % 3));
    await trainModel(new LinearProbe(head), data, options({ optimizer: 'sgd', lr: 0.1, weightDecay: 0.5, warmupEpochs: 0, epochs: 1, batchSize: 30, momentum: 0 }));
    // One SGD step: w - lr * wd * w = 1 - 0.05
    expect(head.weight.dataSync()[0]).toBeCloseTo(0.95, 6);
    head.dispose();
  });

  it('resumes a killed run to exactly the result of an unbroken run', async () => {
    const unbroken = new LinearHead(16, 3);
    await trainModel(new LinearProbe(unbroken), blobs(120, 3), options());

    const file = join(dir, 'state.safetensors');
    const first = new LinearHead(16, 3);
    const part = await trainModel(new LinearProbe(first), blobs(120, 3), options({ checkpointFile: file, stopAfterEpochs: 3 }));
    expect(part.history).toHaveLength(3);
    first.dispose(); // the process "dies"; a new one resumes from the file
    const resumed = new LinearHead(16, 3);
    const rest = await trainModel(new LinearProbe(resumed), blobs(120, 3), options({ checkpointFile: file, resume: true }));
    expect(rest.startEpoch).toBe(3);
    expect(rest.history).toHaveLength(6);
    expect(Array.from(resumed.weight.dataSync())).toEqual(Array.from(unbroken.weight.dataSync()));
    expect(Array.from(resumed.bias.dataSync())).toEqual(Array.from(unbroken.bias.dataSync()));
    unbroken.dispose();
    resumed.dispose();
  });

  it('refuses to resume from a checkpoint written with other options', async () => {
    const file = join(dir, 'other.safetensors');
    const head = new LinearHead(16, 3);
    await trainModel(new LinearProbe(head), blobs(60, 4), options({ checkpointFile: file, stopAfterEpochs: 1 }));
    await expect(trainModel(new LinearProbe(head), blobs(60, 4), options({ checkpointFile: file, resume: true, lr: 0.5 }))).rejects.toThrow(/other options/);
    head.dispose();
  });
});

describe('VTAB protocol', () => {
  it('picks the grid point with the best val200 accuracy, retrains on train800val200 and tests', async () => {
    const calls: string[] = [];
    const result = await runVtabProtocol(
      { lr: [0.1, 0.01], weightDecay: [0, 1e-3] },
      {
        train: async (hp, split) => {
          calls.push(`${split}:${hp.lr}:${hp.weightDecay}`);
          return hp;
        },
        evaluate: async (hp, split) => (split === 'test' ? 0.5 : hp.lr === 0.01 && hp.weightDecay === 1e-3 ? 0.9 : 0.1),
      },
    );
    expect(result.best).toEqual({ lr: 0.01, weightDecay: 1e-3 });
    expect(calls.at(-1)).toBe('train800val200:0.01:0.001');
    expect(result.testTop1).toBe(0.5);
  });

  it('Adam updates one weight at a time: the same steps as tfjs\'s Adam, without every weight\'s temporaries alive at once', async () => {
    const make = () => [tf.variable(tf.randomNormal([64, 32], 0, 1, 'float32', 1)), tf.variable(tf.randomNormal([32], 0, 1, 'float32', 2)), tf.variable(tf.randomNormal([32, 64], 0, 1, 'float32', 3))];
    const ours = make();
    const theirs = make();
    const optimizers = [createOptimizer('adam', 0.01), tf.train.adam(0.01, 0.9, 0.999, 1e-8)];
    const grads = (step: number) => ours.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 1 + 100 * step + i));
    for (let step = 0; step < 3; step++) {
      for (const [k, variables] of [ours, theirs].entries()) {
        const g = grads(step);
        optimizers[k].applyGradients(variables.map((v, i) => ({ name: v.name, tensor: g[i] })));
        tf.dispose(g);
      }
    }
    ours.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(Array.from(theirs[i].dataSync())));
    // The peak of one update: about one weight's temporaries, not every weight's.
    const g = grads(3);
    const peak = await peakNewBufferBytes(() => optimizers[0].applyGradients(ours.map((v, i) => ({ name: v.name, tensor: g[i] }))));
    expect(peak).toBeLessThan(20 * 64 * 32 * 4); // one [64, 32] weight's temporaries
    const theirPeak = await peakNewBufferBytes(() => optimizers[1].applyGradients(theirs.map((v, i) => ({ name: v.name, tensor: g[i] }))));
    expect(theirPeak).toBeGreaterThan(peak * 1.5);
    tf.dispose([...g, ...ours, ...theirs]);
    optimizers.forEach((o) => o.dispose());
  });
});
