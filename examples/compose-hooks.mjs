// Composition through the Hook interface: VQT stacked on a frozen feature-adapting method.
// Here the adapting method is an AdaptFormer-style parallel adapter written in a few lines (any
// Hook that adapts tokens works the same way). Its weights are frozen, as after its own training;
// VQT's queries read the tokens it adapted, and only VQT's queries receive gradients.
//   node compose-hooks.mjs
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, linear, loadVit } from '@vqt/core';
import { VqtHook } from '@vqt/vqt';
import { embeddedBackbone } from '@vqt/vtab-datasets';

console.log(describeBackend(await initBackend()));
const { model: vit } = loadVit(embeddedBackbone().file);
const { depth, dim, patchSize, imageSize } = vit.config;

/** AdaptFormer: x1 -> s * up(relu(down(x1))) added beside each block's MLP. Frozen: plain tensors, not variables. */
function parallelAdapter(bottleneck, scale, seed) {
  const down = Array.from({ length: depth }, (_, m) => tf.randomNormal([dim, bottleneck], 0, 0.05, 'float32', seed + m));
  const up = Array.from({ length: depth }, (_, m) => tf.randomNormal([bottleneck, dim], 0, 0.05, 'float32', seed + 100 + m));
  return {
    name: 'adaptformer',
    trainableVariables: () => [],
    mlpParallel: (x1, ctx) => tf.mul(linear(tf.relu(linear(x1, down[ctx.block])), up[ctx.block]), scale),
    dispose: () => tf.dispose([...down, ...up]),
  };
}

const adapter = parallelAdapter(8, 0.5, 1);
const vqt = new VqtHook({ depth, dim, patchSize }, { queries: 2 });
const images = tf.randomNormal([4, 3, imageSize, imageSize], 0, 1, 'float32', 7);

const queryOutputs = (hooks) =>
  tf.tidy(() => {
    const { cls } = vit.forward(images, { hooks });
    cls.dispose();
    return tf.stack(vqt.takeOutputs()); // [depth, B, T, D]
  });
const alone = queryOutputs([vqt]);
const stacked = queryOutputs([adapter, vqt]); // the adapter runs first; VQT reads what it adapted
const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(stacked, alone))).dataSync()[0]);
console.log(`query outputs change when VQT stacks on the adapter: max |difference| ${difference.toExponential(2)}`);

// One gradient step: only VQT's queries are trainable; the adapter and the backbone stay frozen.
const { value, grads } = tf.variableGrads(() => {
  vit.forward(images, { hooks: [adapter, vqt], training: true, seed: 1 }).cls.dispose();
  return tf.mean(tf.square(tf.stack(vqt.takeOutputs())));
}, vqt.trainableVariables());
console.log(`loss ${value.dataSync()[0].toFixed(6)}; gradients for ${Object.keys(grads).length} variables (VQT's ${depth} query blocks)`);

tf.dispose([alone, stacked, images, value, ...Object.values(grads)]);
adapter.dispose();
vqt.dispose();
vit.dispose();
console.log(`tensors still alive: ${tf.memory().numTensors}`);
