import * as tf from '@tensorflow/tfjs';
import { registerMethod, type FitContext, type FittedMethod, type ImageSplit, type MethodSpec } from '@vqt/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { releaseBackbones, runCell } from '../src/cell.js';
import { planBench } from '../src/plan.js';
import { tinySettings, tinyTasks } from './helpers.js';

// A method that takes no gradient step (like Head2Toe's lasso solver): its fits ignore lr and wd.
let fits: { lr: number; weightDecay: number; split: string }[] = [];
registerMethod({
  name: 'cell-nostep', description: 'predicts class 0', prefix: 'cell-nostep.', role: 'read',
  defaults: {}, options: [],
  async fit(_config: object, context: FitContext, data: ImageSplit) {
    fits.push({ ...context.hp, split: data.id.split(':').pop()! });
    const fitted: FittedMethod = {
      method: 'cell-nostep', numClasses: data.numClasses, options: () => ({}), trainableParameters: () => 0,
      logits: (images) => tf.tidy(() => tf.oneHot(tf.zeros([images.shape[0]], 'int32'), data.numClasses).toFloat() as tf.Tensor2D),
      headFeatures: (images) => tf.zeros([images.shape[0], 1]) as tf.Tensor2D,
      exportTensors: () => ({}), dispose: () => {},
    };
    return fitted;
  },
  open: () => { throw new Error('not opened'); },
} as unknown as MethodSpec<object>);

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await tinyTasks();
});

describe('runCell', () => {
  it('scores one grid point for a method that takes no gradient steps, then refits on train800val200 and tests', async () => {
    fits = [];
    const settings = { ...tinySettings(dir), grid: { lr: [0.1, 0.01], weightDecay: [1e-3, 0] } };
    const [cell] = planBench({ methods: ['cell-nostep'], tasks: ['blob_patch'], seeds: 1 }).cells;
    const before = tf.memory().numTensors;
    const result = await runCell(cell, settings, { log: () => {} });
    // A second cell in the same process leaves no tensor behind.
    const afterFirst = tf.memory().numTensors;
    await runCell(cell, settings, { log: () => {} });
    expect(tf.memory().numTensors).toBe(afterFirst);
    fits = fits.slice(0, 2);
    // The backbone stays loaded for the next cell of this process until released.
    releaseBackbones();
    expect(tf.memory().numTensors).toBe(before);
    expect(fits).toEqual([{ lr: 0.1, weightDecay: 1e-3, split: 'train800' }, { lr: 0.1, weightDecay: 1e-3, split: 'train800val200' }]);
    expect(result.gridUnused).toBe(true);
    expect(result.grid).toHaveLength(1);
    expect(result.fits).toBe(2);
    expect(result.peakStepBytes).toBeNull();
    // blob_patch's test split at 16 images: predicting class 0 scores the share of class 0.
    expect(result.testTop1).toBeGreaterThanOrEqual(0);
    expect(result.testTop1).toBeLessThanOrEqual(1);
  });
});
