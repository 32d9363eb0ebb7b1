// New-user task 1: embed a few PNG or JPEG files with the embedded backbone (the final CLS of each).
//   node embed-images.mjs a.png b.png ...
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, loadVit } from '@vqt/core';
import { decodeImage, embeddedBackbone, preprocessImage, resolvePreprocess } from '@vqt/vtab-datasets';
import { readFileSync } from 'node:fs';

console.log(describeBackend(await initBackend()));
const files = process.argv.slice(2);
const backbone = loadVit(embeddedBackbone().file);
const side = backbone.model.config.imageSize; // 64 for the embedded backbone
const params = resolvePreprocess({ imageSize: side }); // resize + ImageNet normalisation
const pixels = new Float32Array(files.length * 3 * side * side);
files.forEach((file, i) => pixels.set(preprocessImage(decodeImage(readFileSync(file)), params), i * 3 * side * side));
const embeddings = tf.tidy(() => backbone.model.forward(tf.tensor4d(pixels, [files.length, 3, side, side])).cls);
const rows = await embeddings.array(); // [images, dim]
files.forEach((file, i) => console.log(`${file}: ${rows[i].length} values, first ${rows[i].slice(0, 3).map((v) => v.toFixed(4)).join(' ')}`));
embeddings.dispose();
