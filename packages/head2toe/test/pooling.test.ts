import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { adaptivePoolRange, featureLayout, l2NormalizeRows, poolingMatrix, poolTokens, tokenGroups } from '../src/index.js';
import { maxAbsDiff, useWasm } from './helpers.js';

beforeAll(useWasm);

describe('adaptive average pooling over tokens', () => {
  it('uses torch adaptive_avg_pool1d ranges: L = 5 into 2 groups overlap at token 2', () => {
    expect(adaptivePoolRange(5, 2, 0)).toEqual([0, 3]);
    expect(adaptivePoolRange(5, 2, 1)).toEqual([2, 5]);
    expect([0, 1, 2].map((i) => adaptivePoolRange(5, 3, i))).toEqual([
      [0, 2],
      [1, 4],
      [3, 5],
    ]);
  });

  it('pools a hand-computed example (L = 5, C = 2, g = 2) and flattens [g, C] row-major', () => {
    // tokens (rows) x channels: token t = [t + 1, 10 * (t + 1)], for two images (the second doubled).
    const one = [1, 10, 2, 20, 3, 30, 4, 40, 5, 50];
    const tap = tf.tensor3d([...one, ...one.map((v) => 2 * v)], [2, 5, 2]);
    const matrix = poolingMatrix(5, 2);
    const pooled = poolTokens(tap, matrix);
    // group 0 = mean of tokens 0..2 = [2, 20]; group 1 = mean of tokens 2..4 = [4, 40].
    expect(pooled.shape).toEqual([2, 4]);
    expect(maxAbsDiff(pooled, new Float32Array([2, 20, 4, 40, 4, 40, 8, 80]))).toBeLessThan(1e-6);
    // L2 per example: both rows normalise to the same unit vector.
    const norm = Math.sqrt(2 * 2 + 20 * 20 + 4 * 4 + 40 * 40);
    const unit = [2, 20, 4, 40].map((v) => v / norm);
    expect(maxAbsDiff(l2NormalizeRows(pooled), new Float32Array([...unit, ...unit]))).toBeLessThan(1e-6);
    tf.dispose([tap, matrix, pooled]);
  });

  it('matches a direct host computation on every path (mean, batched matMul, transposed matMul)', () => {
    const [batch, tokens, channels] = [3, 17, 5];
    const tap = tf.randomNormal([batch, tokens, channels], 0, 1, 'float32', 3) as tf.Tensor3D;
    const x = tap.dataSync();
    for (const groups of [1, 2, 3, 4, 5, 8, 16]) {
      const expected = new Float32Array(batch * groups * channels);
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < groups; i++) {
          const [start, end] = adaptivePoolRange(tokens, groups, i);
          for (let c = 0; c < channels; c++) {
            let sum = 0;
            for (let t = start; t < end; t++) sum += x[(b * tokens + t) * channels + c];
            expected[(b * groups + i) * channels + c] = sum / (end - start);
          }
        }
      }
      const matrix = poolingMatrix(tokens, groups);
      const pooled = poolTokens(tap, matrix);
      expect(pooled.shape).toEqual([batch, groups * channels]);
      expect(maxAbsDiff(pooled, expected)).toBeLessThan(1e-6);
      tf.dispose([matrix, pooled]);
    }
    tap.dispose();
  });

  it('passes tokens through when g = L, and a zero row stays zero when normalised', () => {
    const tap = tf.tensor3d([1, 2, 3, 4, 5, 6], [1, 3, 2]);
    expect(Array.from(poolTokens(tap, undefined).dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(l2NormalizeRows(tf.zeros([1, 4])).dataSync())).toEqual([0, 0, 0, 0]);
    tap.dispose();
  });

  it('picks g = min(L, max(1, floor(S / C))) groups per tap', () => {
    expect(tokenGroups(197, 768, 2048)).toBe(2);
    expect(tokenGroups(197, 3072, 2048)).toBe(1);
    expect(tokenGroups(197, 768, 8192)).toBe(10);
    expect(tokenGroups(5, 1, 100)).toBe(5);
    // ViT-B/16 at 224 px with the default target size: the width quoted in the README.
    const layout = featureLayout({ dim: 768, depth: 12, mlpRatio: 4, tokens: 197 }, 2048);
    expect(layout).toHaveLength(1 + 4 * 12 + 1);
    const last = layout[layout.length - 1];
    expect(last.offset + last.width).toBe(94464);
    expect(layout.map((t) => t.name).slice(0, 6)).toEqual(['embed', 'block0.ln1', 'block0.attn', 'block0.mlp_hidden', 'block0.mlp_out', 'block1.ln1']);
  });
});
