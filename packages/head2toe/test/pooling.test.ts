import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adaptivePoolRange,
  featureLayout,
  l2NormalizeRows,
  officialPoolRanges,
  officialPoolSize,
  officialTokenGroups,
  poolingMatrix,
  poolTokens,
  tapTokenRanges,
  tokenGroups,
  tokenPoolingFor,
  unitNormalizeRows,
} from '../src/index.js';
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
      const pooled = poolTokens(tap, groups === 1 ? 'mean' : matrix);
      expect(pooled.shape).toEqual([batch, groups * channels]);
      expect(maxAbsDiff(pooled, expected)).toBeLessThan(1e-6);
      tf.dispose([matrix, pooled]);
    }
    tap.dispose();
  });

  it('passes tokens through when g = L, and a zero row stays zero when normalised', () => {
    const tap = tf.tensor3d([1, 2, 3, 4, 5, 6], [1, 3, 2]);
    expect(Array.from(poolTokens(tap, undefined).dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(poolTokens(tap, 'none').dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(l2NormalizeRows(tf.zeros([1, 4])).dataSync())).toEqual([0, 0, 0, 0]);
    tap.dispose();
  });

  it('picks g = min(L, max(1, floor(S / C))) groups per tap', () => {
    expect(tokenGroups(197, 768, 2048)).toBe(2);
    expect(tokenGroups(197, 3072, 2048)).toBe(1);
    expect(tokenGroups(197, 768, 8192)).toBe(10);
    expect(tokenGroups(5, 1, 100)).toBe(5);
    // ViT-B/16 at 224 px with the default target size: the width quoted in the README.
    const layout = featureLayout({ dim: 768, depth: 12, mlpRatio: 4, tokens: 197 }, 2048, 'adaptive');
    expect(layout).toHaveLength(1 + 4 * 12 + 1);
    const last = layout[layout.length - 1];
    expect(last.offset + last.width).toBe(94464);
    expect(layout.map((t) => t.name).slice(0, 6)).toEqual(['embed', 'block0.ln1', 'block0.attn', 'block0.mlp_hidden', 'block0.mlp_out', 'block1.ln1']);
  });
});

describe('official pooling (head2toe flatten_and_concat)', () => {
  it('pool size int(L / (S / C)), floor(L / pool) groups; the token mean when C >= S', () => {
    // The ViT-B/16 example: 2 groups over tokens 0-72 and 73-145, tokens 146-196 dropped.
    expect(officialPoolSize(197, 768, 2048)).toBe(73);
    expect(officialTokenGroups(197, 768, 2048)).toBe(2);
    expect(officialPoolRanges(197, 73)).toEqual([
      [0, 73],
      [73, 146],
    ]);
    expect(officialPoolSize(197, 3072, 2048)).toBe(0);
    expect(officialTokenGroups(197, 3072, 2048)).toBe(1);
    expect(officialPoolSize(197, 2048, 2048)).toBe(0);
    // S = 8192: 10 groups of 18 (the MLP hidden: 2 groups of 73).
    expect([officialPoolSize(197, 768, 8192), officialTokenGroups(197, 768, 8192)]).toEqual([18, 10]);
    expect([officialPoolSize(197, 3072, 8192), officialTokenGroups(197, 3072, 8192)]).toEqual([73, 2]);
    // Tiny ViT (L 17, C 48): S 336 gives 8 groups of 2 where the adaptive rule gives 7.
    expect([officialPoolSize(17, 48, 336), officialTokenGroups(17, 48, 336), tokenGroups(17, 48, 336)]).toEqual([2, 8, 7]);
    // S / C > L: the official code's pool size 0, the mean; pool size 1: every token its own group.
    expect([officialPoolSize(17, 1, 100), officialTokenGroups(17, 1, 100)]).toEqual([0, 1]);
    expect([officialPoolSize(17, 1, 17), officialTokenGroups(17, 1, 17)]).toEqual([1, 17]);
  });

  it('pools a hand-computed example (L = 5, C = 2, S = 4: pool 2, groups 0-1 and 2-3, token 4 dropped)', () => {
    const one = [1, 10, 2, 20, 3, 30, 4, 40, 5, 50];
    const tap = tf.tensor3d([...one, ...one.map((v) => 2 * v)], [2, 5, 2]);
    expect(officialPoolSize(5, 2, 4)).toBe(2);
    const matrix = poolingMatrix(5, officialPoolRanges(5, 2));
    const pooled = poolTokens(tap, matrix);
    expect(maxAbsDiff(pooled, new Float32Array([1.5, 15, 3.5, 35, 3, 30, 7, 70]))).toBeLessThan(1e-6);
    // One partial group (S = 3: pool int(5 / 1.5) = 3, tokens 0-2): not the mean of all tokens.
    const partial = poolTokens(tap, poolingMatrix(5, officialPoolRanges(5, officialPoolSize(5, 2, 3))));
    expect(maxAbsDiff(partial, new Float32Array([2, 20, 4, 40]))).toBeLessThan(1e-6);
    tf.dispose([tap, matrix, pooled, partial]);
  });

  it('chooses the mean, no pooling or a matrix from the ranges', () => {
    expect(tokenPoolingFor(5, [[0, 5]])).toBe('mean');
    expect(tokenPoolingFor(3, [[0, 1], [1, 2], [2, 3]])).toBe('none');
    const matrix = tokenPoolingFor(5, [[0, 3]]) as tf.Tensor2D;
    expect(Array.from(matrix.dataSync())).toEqual([1 / 3, 1 / 3, 1 / 3, 0, 0].map(Math.fround));
    matrix.dispose();
    expect(() => poolingMatrix(5, [[3, 6]])).toThrow(/\[3, 6\) is not inside \[0, 5\)/);
  });

  it('every path (mean, batched and transposed matMul) equals a host loop over the official groups', () => {
    const [batch, tokens, channels] = [3, 17, 5];
    const tap = tf.randomNormal([batch, tokens, channels], 0, 1, 'float32', 4) as tf.Tensor3D;
    const x = tap.dataSync();
    const seen = new Set<number>();
    for (let target = 1; target <= 100; target += 3) {
      const ranges = officialPoolRanges(tokens, officialPoolSize(tokens, channels, target));
      seen.add(ranges.length);
      const expected = new Float32Array(batch * ranges.length * channels);
      for (let b = 0; b < batch; b++) {
        ranges.forEach(([start, end], i) => {
          for (let c = 0; c < channels; c++) {
            let sum = 0;
            for (let t = start; t < end; t++) sum += x[(b * tokens + t) * channels + c];
            expected[(b * ranges.length + i) * channels + c] = sum / (end - start);
          }
        });
      }
      const pooling = tokenPoolingFor(tokens, ranges);
      const pooled = poolTokens(tap, pooling);
      expect(pooled.shape).toEqual([batch, ranges.length * channels]);
      expect(maxAbsDiff(pooled, expected)).toBeLessThan(1e-6);
      tf.dispose([pooled, ...(pooling instanceof tf.Tensor ? [pooling] : [])]);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual(expect.arrayContaining([1, 2, 3, 8, 17]));
    tap.dispose();
  });

  it('normalises each row to unit length and keeps a zero row zero (no NaN)', () => {
    const x = tf.tensor2d([0, 0, 0, 3, 0, 4], [2, 3]);
    expect(Array.from(unitNormalizeRows(x).dataSync())).toEqual([0, 0, 0, 0.6, 0, 0.8].map(Math.fround));
    x.dispose();
  });

  it('lays out ViT-B/16 at S 2048 with the official taps: F = 97,536 (the README figure)', () => {
    const layout = featureLayout({ dim: 768, depth: 12, mlpRatio: 4, tokens: 197 }, 2048);
    expect(layout).toHaveLength(2 + 4 * 12 + 2);
    expect(layout.map((t) => t.name).slice(0, 7)).toEqual([
      'root_output_with_cls',
      'position_embedded_input',
      'encoder_0_pre_attn',
      'encoder_0_attn',
      'encoder_0_mlp_1',
      'encoder_0_mlp_2',
      'encoder_1_pre_attn',
    ]);
    expect(layout.slice(-2).map((t) => [t.name, t.point, t.width])).toEqual([
      ['encoded_sequence', 'finalSequence', 1536],
      ['cls_embedded', 'finalCls', 768],
    ]);
    const hidden = layout.find((t) => t.name === 'encoder_5_mlp_1')!;
    expect([hidden.groups, hidden.poolSize, hidden.width]).toEqual([1, 0, 3072]);
    expect(tapTokenRanges(layout[0], 197)).toEqual([
      [0, 73],
      [73, 146],
    ]);
    const last = layout[layout.length - 1];
    expect(last.offset + last.width).toBe(97536);
    const s8192 = featureLayout({ dim: 768, depth: 12, mlpRatio: 4, tokens: 197 }, 8192);
    expect(s8192[s8192.length - 1].offset + s8192[s8192.length - 1].width).toBe(374016);
  });
});
