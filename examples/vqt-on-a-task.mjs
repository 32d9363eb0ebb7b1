// VQT end to end with the library API: the embedded backbone, one offline mini-suite task, the
// feature cache, the shared trainer, an adapter-only checkpoint, and reloading it.
//   node vqt-on-a-task.mjs [--task dsprites_loc] [--epochs 20] [--train 1000] [--out adapters/example]
import * as tf from '@tensorflow/tfjs';
import { describeBackend, evaluateModel, initBackend, loadVit, trainModel } from '@vqt/core';
import { loadVqtAdapter, saveVqtAdapter, splitImageSource, VqtModel } from '@vqt/vqt';
import { embeddedBackbone, ensureMiniSuite, openSplit } from '@vqt/vtab-datasets';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    task: { type: 'string', default: 'dsprites_loc' },
    epochs: { type: 'string', default: '20' },
    train: { type: 'string', default: '1000' }, // use the first N training images
    out: { type: 'string', default: join('adapters', 'example') },
  },
});

console.log(describeBackend(await initBackend()));
const backbone = loadVit(embeddedBackbone().file);
const { imageSize } = backbone.model.config;
const taskDir = join(await ensureMiniSuite({ tasks: [args.task] }), args.task);
const train = await openSplit(taskDir, 'train800val200', { imageSize });
const test = await openSplit(taskDir, 'test', { imageSize });

const model = new VqtModel(backbone.model, { numClasses: train.numClasses, queries: 1 });
console.log(`trainable parameters: ${model.parameterCount().toLocaleString('en-US')} of ${backbone.model.parameterCount().toLocaleString('en-US')} frozen`);

// No augmentation, so the frozen features are computed once and every epoch runs only the query path.
const trainCount = Math.min(Number(args.train), train.size);
async function* firstImages(limit) {
  let seen = 0;
  for await (const batch of train.batches(64)) {
    if (seen >= limit) return;
    const take = Math.min(batch.labels.length, limit - seen);
    const pixels = batch.images.length / batch.labels.length;
    yield { images: batch.images.subarray(0, take * pixels), labels: batch.labels.subarray(0, take) };
    seen += take;
  }
}
const cache = await model.buildCache(firstImages(trainCount));
const { history } = await trainModel(model, cache, {
  epochs: Number(args.epochs), batchSize: 32, lr: 0.01, weightDecay: 1e-4, optimizer: 'adam', warmupEpochs: 2, seed: 0, progress: 'lines',
});
await cache.close();
const { top1 } = await evaluateModel(model, splitImageSource(test), 64);
console.log(`${args.task}: final train loss ${history.at(-1).loss.toFixed(4)}, test top-1 ${(100 * top1).toFixed(2)}% on ${test.size} images`);

saveVqtAdapter(args.out, model, backbone, { training: { task: args.task, top1 } });
const { model: reloaded } = loadVqtAdapter(args.out, backbone);
const again = await evaluateModel(reloaded, splitImageSource(test), 64);
console.log(`reloaded adapter from ${args.out}: test top-1 ${(100 * again.top1).toFixed(2)}%`);
if (again.top1 !== top1) throw new Error('the reloaded adapter does not reproduce the trained model');
model.dispose();
reloaded.dispose();
backbone.model.dispose();
console.log(`tensors still alive: ${tf.memory().numTensors}`);
