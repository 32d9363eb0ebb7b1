import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadVit, readNpy, setAttentionKernel, type Hook, type HookContext } from '../src/index.js';

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

  // timm's variants; the fixture's config.json `variant` holds the fields no tensor tells (activation, eps, pooling).
  const VARIANT_CASES = ['tiny_ls_reg_quickgelu', 'tiny_prenorm_qknorm_gap', 'tiny_reg_resample'];
  for (const name of VARIANT_CASES) {
    for (const kernel of ['perHead', 'batched'] as const) {
      it(`${name} (${kernel} attention): image feature, block outputs and side-query outputs within 1e-4`, () => {
        const dir = join(FIXTURES, name);
        const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        const { variant } = config;
        const { model, info } = loadVit(join(dir, 'model.safetensors'), {
          activation: variant.activation,
          eps: variant.eps,
          globalPool: variant.globalPool,
          imageSize: config.runImageSize,
        });
        for (const [key, value] of Object.entries(variant)) {
          if (key === 'fcNorm') continue;
          expect(info.config[key as keyof typeof info.config], key).toBe(value);
        }
        const queries = npy(dir, 'queries.npy');
        const perBlock = tf.unstack(queries) as tf.Tensor2D[];
        const outputs: tf.Tensor3D[] = [];
        const hook: Hook = {
          name: 'side-queries',
          trainableVariables: () => [],
          sideQueries: (ctx: HookContext) => perBlock[ctx.block],
          sideQueryOutput: (out: tf.Tensor3D, ctx: HookContext) => void (outputs[ctx.block] = ctx.keep(out)),
        };
        setAttentionKernel(kernel);
        try {
          tf.tidy(() => {
            const { cls, blocks } = model.forward(npy(dir, 'input.npy') as tf.Tensor4D, { returnBlocks: true, hooks: [hook] });
            expect(tf.max(tf.abs(tf.sub(cls, npy(dir, 'cls.npy')))).dataSync()[0]).toBeLessThanOrEqual(1e-4);
            expect(tf.max(tf.abs(tf.sub(tf.stack(blocks!), npy(dir, 'blocks.npy')))).dataSync()[0]).toBeLessThanOrEqual(1e-4);
            expect(tf.max(tf.abs(tf.sub(tf.stack(outputs), npy(dir, 'query_outputs.npy')))).dataSync()[0]).toBeLessThanOrEqual(1e-4);
          });
        } finally {
          setAttentionKernel(undefined);
          tf.dispose([queries, ...perBlock]);
          model.dispose();
        }
      });
    }
  }

  it('a variant loaded as the original ViT is far off: the fixtures would catch an ignored variant', () => {
    const dir = join(FIXTURES, 'tiny_ls_reg_quickgelu');
    const { model } = loadVit(join(dir, 'model.safetensors')); // GELU instead of QuickGELU
    tf.tidy(() => {
      const err = tf.max(tf.abs(tf.sub(model.forward(npy(dir, 'input.npy') as tf.Tensor4D).cls, npy(dir, 'cls.npy')))).dataSync()[0];
      expect(err).toBeGreaterThan(1e-2);
    });
    model.dispose();
  });

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
