// @vqt/core alone: a random tiny ViT, one forward pass, the backend it ran on.
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, randomVit } from '@vqt/core';

console.log(describeBackend(await initBackend()));
const vit = randomVit({ imageSize: 32, patchSize: 8, dim: 48, depth: 2, heads: 3, mlpRatio: 4, eps: 1e-6 }, 0);
const cls = tf.tidy(() => vit.forward(tf.randomNormal([2, 3, 32, 32], 0, 1, 'float32', 1)).cls);
const finite = tf.tidy(() => tf.all(tf.isFinite(cls)).dataSync()[0] === 1);
console.log(`core: cls ${cls.shape.join('x')}, finite ${finite}`);
