// New-user task 2b: in a new process, reopen the saved adapter and classify one new image.
//   node classify.mjs <adapter-dir> <image>      (or: npx vqt predict --checkpoint <backbone> --adapter <adapter-dir> <image>)
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, loadVit, openFitted, predict } from '@vqt/core';
import '@vqt/vqt'; // registers the 'vqt' method, so openFitted can rebuild it
import { decodeImage, embeddedBackbone, preprocessImage, resolvePreprocess } from '@vqt/vtab-datasets';
import { readFileSync } from 'node:fs';

console.log(describeBackend(await initBackend()));
const [adapterDir, imageFile] = process.argv.slice(2);
const backbone = loadVit(embeddedBackbone().file);
const { fitted, config } = openFitted(adapterDir, backbone); // refuses any other backbone (sha256)
const side = backbone.model.config.imageSize;
const pixels = preprocessImage(decodeImage(readFileSync(imageFile)), resolvePreprocess({ imageSize: side }));
const image = tf.tensor4d(pixels, [1, 3, side, side]);
const [prediction] = await predict(fitted, image, { topK: 3, labelNames: config.labelNames });
for (const { label, probability } of prediction.top) console.log(`${imageFile}: ${label} ${(100 * probability).toFixed(1)}%`);
image.dispose();
