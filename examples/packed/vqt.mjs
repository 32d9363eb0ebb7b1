// @vqt/vqt through core's registry: fit on six images with the embedded backbone, save, reopen, predict.
import * as tf from '@tensorflow/tfjs';
import { arrayImageSplit, describeBackend, fitMethod, initBackend, loadVit, openFitted, predict, saveFitted } from '@vqt/core';
import { vqtMethod } from '@vqt/vqt';
import { embeddedBackbone } from '@vqt/vtab-datasets';

console.log(describeBackend(await initBackend()));
const backbone = loadVit(embeddedBackbone().file);
const side = backbone.model.config.imageSize;
const images = tf.randomNormal([6, 3, side, side], 0, 1, 'float32', 1);
const data = arrayImageSplit(images.dataSync(), [0, 1, 2, 0, 1, 2], side, { labelNames: ['a', 'b', 'c'] });
const fitted = await fitMethod(vqtMethod, backbone, data, { epochs: 2, batchSize: 6 });
saveFitted('vqt-adapter', fitted, backbone, { labelNames: data.labelNames });
const { fitted: reopened, config } = openFitted('vqt-adapter', backbone);
const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(fitted.logits(images), reopened.logits(images)))).dataSync()[0]);
const [first] = await predict(reopened, images, { topK: 3, labelNames: config.labelNames });
console.log(`vqt: method ${config.method}, reopened max |logit difference| ${difference}, top-3 of image 0: ${first.top.map((t) => t.label).join(' ')}`);
