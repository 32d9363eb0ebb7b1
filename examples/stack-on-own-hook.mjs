// New-user task 3: VQT stacked on a frozen hook of one's own (here a fixed bottleneck beside each
// block's MLP; any Hook without trainable variables works), trained on a folder of class subfolders.
//   node stack-on-own-hook.mjs <folder> [epochs]
import * as tf from '@tensorflow/tfjs';
import { arrayImageSplit, describeBackend, evaluateModel, initBackend, linear, loadVit, trainModel } from '@vqt/core';
import { splitImageSource, VqtModel } from '@vqt/vqt';
import { decodeImage, embeddedBackbone, preprocessImage, resolvePreprocess } from '@vqt/vtab-datasets';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

console.log(describeBackend(await initBackend()));
const [folder, epochs = '30'] = process.argv.slice(2);
const backbone = loadVit(embeddedBackbone().file);
const { imageSize: side, dim } = backbone.model.config;
const params = resolvePreprocess({ imageSize: side });
const classes = readdirSync(folder).sort();
const examples = classes.flatMap((name, label) => readdirSync(join(folder, name)).map((file) => ({ file: join(folder, name, file), label })));
const images = new Float32Array(examples.length * 3 * side * side);
examples.forEach(({ file }, i) => images.set(preprocessImage(decodeImage(readFileSync(file)), params), i * 3 * side * side));
const data = arrayImageSplit(images, examples.map((e) => e.label), side, { labelNames: classes });

const [down, up] = [tf.randomNormal([dim, 8], 0, 0.05, 'float32', 1), tf.randomNormal([8, dim], 0, 0.05, 'float32', 2)];
const myHook = { name: 'my-adapter', trainableVariables: () => [], mlpParallel: (x1) => linear(tf.relu(linear(x1, down)), up) };
const model = new VqtModel(backbone.model, { numClasses: data.numClasses, queries: 1, baseHooks: [myHook] });
const cache = await model.buildCache(data.batches(16)); // LN1 features of the adapted backbone, computed once
await trainModel(model, cache, { epochs: Number(epochs), batchSize: 16, lr: 0.01, weightDecay: 1e-4, optimizer: 'adam', warmupEpochs: 2, seed: 0, progress: 'none' });
await cache.close();
const { top1 } = await evaluateModel(model, splitImageSource(data), 16);
console.log(`VQT on my frozen hook: ${model.parameterCount()} trainable parameters, train top-1 ${(100 * top1).toFixed(1)}%`);
model.dispose();
tf.dispose([down, up]);
backbone.model.dispose();
console.log(`tensors still alive: ${tf.memory().numTensors}`);
