// The Hook example of the root and @vqt/core READMEs, run as written: a frozen hook of your own,
// VQT on top, tf.tidy around the forward, takeOutputs() for the query outputs.
//   node readme-hook.mjs
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, loadVit } from '@vqt/core';
import { VqtHook } from '@vqt/vqt';
import { embeddedBackbone } from '@vqt/vtab-datasets';

console.log(describeBackend(await initBackend()));
const { model: vit } = loadVit(embeddedBackbone().file);
const { depth, dim, patchSize, imageSize } = vit.config;

// A frozen hook of your own: shifts every token after each block by a fixed vector, and keeps
// block 1's output for you to read. No trainable variables, so the backbone stays off the tape.
const shift = tf.randomNormal([dim], 0, 0.01, 'float32', 1);
const kept = [];
const myHook = {
  name: 'my-shift',
  trainableVariables: () => [],
  afterBlock: (tokens) => tf.add(tokens, shift),
  tapPoints: ['blockOut'],
  tap: (point, value, ctx) => {
    if (ctx.block === 1) kept.push(ctx.keep(tf.clone(value))); // keep(): survive the block's own tf.tidy
  },
};
const vqt = new VqtHook({ depth, dim, patchSize }, { queries: 1 });
const images = tf.randomNormal([2, 3, imageSize, imageSize]);

// forward creates many intermediate tensors: run it in tf.tidy and return only what you keep.
const [cls, queryOutputs, block1] = tf.tidy(() => {
  const { cls } = vit.forward(images, { hooks: [myHook, vqt] }); // your hook first: VQT reads what it adapted
  // takeOutputs(): VQT's query outputs [B, T, D] per block; like kept tensors they belong to this scope.
  return [cls, tf.stack(vqt.takeOutputs()), kept.pop()];
});
console.log(block1.isDisposed, cls.shape, queryOutputs.shape, block1.shape); // [2, 64] [depth, 2, 1, 64] [2, 65, 64]
tf.dispose([cls, queryOutputs, block1, images, shift]);
vqt.dispose();
vit.dispose();
console.log(`tensors still alive: ${tf.memory().numTensors}`);
