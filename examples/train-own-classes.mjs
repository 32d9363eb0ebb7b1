// New-user task 2a: train VQT on a folder of one's own images (one subfolder per class), save it.
//   node train-own-classes.mjs <folder> [adapter-dir] [epochs]
import { arrayImageSplit, describeBackend, evaluateFitted, fitMethod, initBackend, loadVit, saveFitted } from '@vqt/core';
import '@vqt/vqt'; // registers the 'vqt' method
import { decodeImage, embeddedBackbone, preprocessImage, resolvePreprocess } from '@vqt/vtab-datasets';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

console.log(describeBackend(await initBackend()));
const [folder, out = 'my-adapter', epochs = '30'] = process.argv.slice(2);
const backbone = loadVit(embeddedBackbone().file);
const side = backbone.model.config.imageSize;
const params = resolvePreprocess({ imageSize: side });
const classes = readdirSync(folder).sort(); // the label names
const examples = classes.flatMap((name, label) => readdirSync(join(folder, name)).sort().map((file) => ({ file: join(folder, name, file), label })));
const images = new Float32Array(examples.length * 3 * side * side);
examples.forEach(({ file }, i) => images.set(preprocessImage(decodeImage(readFileSync(file)), params), i * 3 * side * side));
const data = arrayImageSplit(images, examples.map((e) => e.label), side, { labelNames: classes });
const fitted = await fitMethod('vqt', backbone, data, { epochs: Number(epochs), batchSize: 16, lr: 0.01 });
const { top1 } = await evaluateFitted(fitted, data, 16);
saveFitted(out, fitted, backbone, { labelNames: classes });
console.log(`${examples.length} images, ${classes.length} classes (${classes.join(', ')}): train top-1 ${(100 * top1).toFixed(1)}%, adapter saved to ${out}`);
