import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadVit, readNpy } from '../src/index.js';

// Golden outputs from tools/reference (an independent PyTorch ViT); see tools/reference/README.md.
const FIXTURES = join(__dirname, 'fixtures');
const CASES = ['tiny_f32', 'tiny_npz', 'tiny_f16', 'tiny_bf16', 'tiny_resample_up', 'tiny_resample_down'];

const npy = (dir: string, name: string) => {
  const a = readNpy(join(dir, name));
  return tf.tensor(a.data as Float32Array, a.shape);
};

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('numerical parity with the PyTorch reference', () => {
  for (const name of CASES) {
    it(`${name}: final CLS and every block output within 1e-4`, () => {
      const dir = join(FIXTURES, name);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      const file = join(dir, config.format === 'npz' ? 'model.npz' : 'model.safetensors');
      const { model } = loadVit(file, { heads: config.heads, imageSize: config.runImageSize });
      tf.tidy(() => {
        const { cls, blocks } = model.forward(npy(dir, 'input.npy') as tf.Tensor4D, { returnBlocks: true });
        const errCls = tf.max(tf.abs(tf.sub(cls, npy(dir, 'cls.npy')))).dataSync()[0];
        const errBlocks = tf.max(tf.abs(tf.sub(tf.stack(blocks!), npy(dir, 'blocks.npy')))).dataSync()[0];
        expect(errCls).toBeLessThanOrEqual(1e-4);
        expect(errBlocks).toBeLessThanOrEqual(1e-4);
      });
      model.dispose();
    });
  }

  it('the stored (uncompressed) npz gives the same model as the deflated one', () => {
    const dir = join(FIXTURES, 'tiny_npz');
    const a = loadVit(join(dir, 'model.npz'));
    const b = loadVit(join(dir, 'model_stored.npz'));
    tf.tidy(() => {
      const x = npy(dir, 'input.npy') as tf.Tensor4D;
      expect(tf.max(tf.abs(tf.sub(a.model.forward(x).cls, b.model.forward(x).cls))).dataSync()[0]).toBe(0);
    });
    a.model.dispose();
    b.model.dispose();
  });
});
