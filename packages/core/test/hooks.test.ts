import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, layerNorm, linear, randomVit, VisionTransformer, type Hook, type HookContext, type LinearName, type TapPoint } from '../src/index.js';
import { images, maxAbsDiff, TINY } from './helpers.js';
import { tapeShapes } from './support/tape.js';

// Throwaway hooks: each shows one kind of plugin works through the Hook interface with no change to core.

/** VPT-Deep: prompts inserted after CLS before a block, dropped after it. */
function promptHook(prompts: tf.Variable[]): Hook {
  const count = prompts[0].shape[0];
  return {
    name: 'vpt',
    trainableVariables: () => prompts,
    beforeBlock(tokens, ctx) {
      const [batch] = tokens.shape;
      const p = tf.tile(tf.expandDims(prompts[ctx.block], 0), [batch, 1, 1]);
      const cls = tf.slice(tokens, [0, 0, 0], [-1, 1, -1]);
      const patches = tf.slice(tokens, [0, 1, 0], [-1, -1, -1]);
      return tf.concat([cls, p, patches], 1) as tf.Tensor3D;
    },
    afterBlock(tokens) {
      const cls = tf.slice(tokens, [0, 0, 0], [-1, 1, -1]);
      const patches = tf.slice(tokens, [0, 1 + count, 0], [-1, -1, -1]);
      return tf.concat([cls, patches], 1) as tf.Tensor3D;
    },
  };
}

/** VQT-like: side queries per block, outputs collected. */
function queryHook(queries: tf.Variable[]): Hook & { outputs: tf.Tensor3D[] } {
  const hook = {
    name: 'queries',
    outputs: [] as tf.Tensor3D[],
    trainableVariables: () => queries,
    sideQueries: (ctx: HookContext) => queries[ctx.block] as tf.Tensor2D,
    sideQueryOutput(out: tf.Tensor3D, ctx: HookContext) {
      hook.outputs[ctx.block] = ctx.keep(out);
    },
  };
  return hook;
}

/** AdaptFormer: s * up(relu(down(x1))) beside the MLP. */
function parallelAdapterHook(down: tf.Variable[], up: tf.Variable[], scale = 0.1): Hook {
  return {
    name: 'adaptformer',
    trainableVariables: () => [...down, ...up],
    mlpParallel: (x1, ctx) => tf.mul(linear(tf.relu(linear(x1, down[ctx.block] as tf.Tensor2D)), up[ctx.block] as tf.Tensor2D), scale) as tf.Tensor2D,
  };
}

/** LoRA: x A B added to chosen Linears. */
function loraHook(layer: LinearName, a: tf.Variable[], b: tf.Variable[]): Hook {
  return {
    name: 'lora',
    trainableVariables: () => [...a, ...b],
    linearDelta: (name, input, ctx) => (name === layer ? linear(linear(input, a[ctx.block] as tf.Tensor2D), b[ctx.block] as tf.Tensor2D) : undefined),
  };
}

/** Head2Toe-style read-only taps. */
function tapHook(points: TapPoint[]): Hook & { seen: Map<string, tf.Tensor> } {
  const seen = new Map<string, tf.Tensor>();
  return {
    name: 'taps',
    seen,
    tapPoints: points,
    trainableVariables: () => [],
    tap(point, value, ctx) {
      seen.set(`${ctx.block}.${point}`, ctx.keep(value));
    },
  };
}

const variables = (count: number, shape: number[], seed: number, std = 0.1) =>
  Array.from({ length: count }, (_, i) => tf.variable(tf.randomNormal(shape, 0, std, 'float32', seed + i)));

let vit: VisionTransformer;
let x: tf.Tensor4D;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 3);
  x = images(2, TINY.imageSize);
});
afterAll(() => {
  vit.dispose();
  x.dispose();
});

describe('Hook interface', () => {
  it('VPT: prompts join before a block and leave after it, changing the tokens and receiving gradients', () => {
    const prompts = variables(TINY.depth, [4, TINY.dim], 10);
    const hook = promptHook(prompts);
    tf.tidy(() => {
      const plain = vit.forward(x, { returnBlocks: true });
      const prompted = vit.forward(x, { hooks: [hook], returnBlocks: true });
      expect(prompted.blocks![0].shape).toEqual(plain.blocks![0].shape);
      expect(maxAbsDiff(prompted.cls, plain.cls)).toBeGreaterThan(1e-3);
      // Block 0 with prompts equals running the block on the concatenated sequence by hand.
      const embedded = vit.embed(x);
      const withPrompts = hook.beforeBlock!(embedded, { block: 0 } as HookContext);
      const manual = vit.blocks[0].forwardTokens(withPrompts, { hooks: [], ctx: {} as HookContext, wantsTap: () => false }).output;
      expect(maxAbsDiff(hook.afterBlock!(manual, {} as HookContext), prompted.blocks![0])).toBeLessThan(1e-5);
    });
    const { grads } = tf.variableGrads(() => tf.sum(vit.forward(x, { hooks: [hook] }).cls), prompts);
    for (const p of prompts) expect(tf.max(tf.abs(grads[p.name])).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([...prompts, ...Object.values(grads)]);
  });

  it('side queries (VQT): tokens untouched, outputs match the explicit key/value formulation', () => {
    const queries = variables(TINY.depth, [2, TINY.dim], 20, 0.06);
    const hook = queryHook(queries);
    tf.tidy(() => {
      const plain = vit.forward(x, { returnBlocks: true });
      const withQueries = vit.forward(x, { hooks: [hook], returnBlocks: true });
      for (let m = 0; m < TINY.depth; m++) expect(maxAbsDiff(withQueries.blocks![m], plain.blocks![m])).toBe(0);
      expect(maxAbsDiff(withQueries.cls, plain.cls)).toBe(0);
      const fromLn1 = hook.outputs.slice();
      vit.forward(x, { hooks: [hook], sideQueryMode: 'explicit' });
      for (let m = 0; m < TINY.depth; m++) {
        expect(fromLn1[m].shape).toEqual([2, 2, TINY.dim]);
        expect(maxAbsDiff(fromLn1[m], hook.outputs[m])).toBeLessThan(1e-5);
      }
    });
    tf.dispose(queries);
  });

  for (const perImage of [false, true]) {
    it(`side queries: gradients from LN1 equal the explicit formulation's (${perImage ? 'per-image' : 'shared'} queries)`, () => {
      const queries = variables(TINY.depth, [2, TINY.dim], 40, 0.06);
      const B = x.shape[0];
      // Per-image queries, as query dropout makes them: a different scale per image.
      const scales = tf.reshape(tf.linspace(0.5, 1.5, B), [B, 1, 1]);
      const hook: Hook = {
        name: 'queries',
        trainableVariables: () => queries,
        sideQueries: (ctx) => (perImage ? (tf.mul(queries[ctx.block], scales) as tf.Tensor3D) : (queries[ctx.block] as tf.Tensor2D)),
        sideQueryOutput: (out, ctx) => ctx.keep(out),
      };
      const weight = tf.randomNormal([B, 2, TINY.dim], 0, 1, 'float32', 41);
      const gradsOf = (mode: 'auto' | 'explicit') => {
        const outputs: tf.Tensor3D[] = [];
        hook.sideQueryOutput = (out, ctx) => {
          outputs[ctx.block] = ctx.keep(out);
        };
        const { value, grads } = tf.variableGrads(() => {
          vit.forward(x, { hooks: [hook], sideQueryMode: mode }).cls.dispose();
          return tf.addN(outputs.map((o) => tf.sum(tf.mul(o, weight)))) as tf.Scalar;
        }, queries);
        tf.dispose([value, ...outputs]);
        return queries.map((q) => grads[q.name]);
      };
      const fromLn1 = gradsOf('auto');
      const explicit = gradsOf('explicit');
      for (let m = 0; m < TINY.depth; m++) expect(maxAbsDiff(fromLn1[m], explicit[m])).toBeLessThan(1e-5);
      tf.dispose([...queries, scales, weight, ...fromLn1, ...explicit]);
    });
  }

  it('side queries equal extra tokens that nothing attends to (masked attention by hand)', () => {
    const queries = variables(TINY.depth, [2, TINY.dim], 30, 0.06);
    const hook = queryHook(queries);
    tf.tidy(() => {
      const { blocks } = vit.forward(x, { hooks: [hook], returnBlocks: true });
      const m = 1;
      const block = vit.blocks[m];
      const p = block.params;
      const tokens = blocks![m - 1];
      const [B, L, D] = tokens.shape;
      const H = TINY.heads;
      const d = D / H;
      const all = tf.concat([tokens, tf.tile(tf.expandDims(queries[m], 0), [B, 1, 1])], 1) as tf.Tensor3D;
      const ln = layerNorm(tf.reshape(all, [B * (L + 2), D]) as tf.Tensor2D, p.norm1);
      const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, L + 2, H, d]), [0, 2, 1, 3]);
      const q = heads(linear(ln, p.q.weight, p.q.bias));
      const k = heads(linear(ln, p.k.weight, p.k.bias));
      const v = heads(linear(ln, p.v.weight, p.v.bias));
      // Mask: no row may attend to the query columns.
      const mask = tf.concat([tf.zeros([L + 2, L]), tf.fill([L + 2, 2], -1e9)], 1);
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)), mask);
      const ctx = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), v), [0, 2, 1, 3]), [B * (L + 2), D]) as tf.Tensor2D;
      const x1 = tf.add(tf.reshape(all, [B * (L + 2), D]), linear(ctx, p.proj.weight, p.proj.bias)) as tf.Tensor2D;
      const mlpIn = layerNorm(x1, p.norm2);
      const fc1 = linear(mlpIn, p.fc1.weight, p.fc1.bias);
      const gelu = tf.mul(tf.mul(fc1, 0.5), tf.add(1, tf.erf(tf.mul(fc1, Math.SQRT1_2))));
      const out = tf.reshape(tf.add(x1, linear(gelu as tf.Tensor2D, p.fc2.weight, p.fc2.bias)), [B, L + 2, D]);
      expect(maxAbsDiff(tf.slice(out, [0, 0, 0], [B, L, D]), blocks![m])).toBeLessThan(1e-4);
      expect(maxAbsDiff(tf.slice(out, [0, L, 0], [B, 2, D]), hook.outputs[m])).toBeLessThan(1e-4);
    });
    tf.dispose(queries);
  });

  it('AdaptFormer: a zero-initialised parallel adapter is the identity and then trains', () => {
    const down = variables(TINY.depth, [TINY.dim, 8], 40);
    const up = Array.from({ length: TINY.depth }, () => tf.variable(tf.zeros([8, TINY.dim])));
    const hook = parallelAdapterHook(down, up);
    tf.tidy(() => {
      expect(maxAbsDiff(vit.forward(x, { hooks: [hook] }).cls, vit.forward(x).cls)).toBe(0);
    });
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(vit.forward(x, { hooks: [hook] }).cls)), up);
    for (const u of up) expect(tf.max(tf.abs(grads[u.name])).dataSync()[0]).toBeGreaterThan(0);
    up.forEach((u, i) => u.assign(tf.randomNormal([8, TINY.dim], 0, 0.1, 'float32', 50 + i)));
    tf.tidy(() => {
      expect(maxAbsDiff(vit.forward(x, { hooks: [hook] }).cls, vit.forward(x).cls)).toBeGreaterThan(1e-4);
    });
    tf.dispose([...down, ...up, ...Object.values(grads)]);
  });

  it('LoRA: a low-rank delta on q and fc1 equals merging W + A B into the weights', () => {
    for (const layer of ['q', 'fc1'] as const) {
      const outDim = layer === 'q' ? TINY.dim : TINY.dim * TINY.mlpRatio;
      const a = variables(TINY.depth, [TINY.dim, 4], 60);
      const b = variables(TINY.depth, [4, outDim], 70);
      const hook = loraHook(layer, a, b);
      const merged = new VisionTransformer(TINY, {
        ...vit.params,
        blocks: vit.params.blocks.map((blk, i) => ({
          ...blk,
          [layer]: { weight: tf.add(blk[layer].weight, tf.matMul(a[i], b[i])) as tf.Tensor2D, bias: blk[layer].bias },
        })),
      });
      tf.tidy(() => {
        const viaHook = vit.forward(x, { hooks: [hook] }).cls;
        expect(maxAbsDiff(viaHook, merged.forward(x).cls)).toBeLessThan(1e-5);
        expect(maxAbsDiff(viaHook, vit.forward(x).cls)).toBeGreaterThan(1e-4);
      });
      merged.blocks.forEach((blk) => blk.dispose());
      tf.dispose([...a, ...b, ...merged.params.blocks.map((blk) => blk[layer].weight)]);
    }
  });

  it('Head2Toe taps: LN1, attention, MLP hidden and MLP output are read at the right places', () => {
    const hook = tapHook(['embed', 'ln1', 'attn', 'mlpHidden', 'mlpOut', 'blockOut', 'finalCls']);
    tf.tidy(() => {
      const { cls, blocks } = vit.forward(x, { hooks: [hook], returnBlocks: true });
      const { dim } = TINY;
      const L = vit.numTokens;
      const flat = (t: tf.Tensor) => tf.reshape(t, [-1, t.shape[t.rank - 1]]) as tf.Tensor2D;
      for (let m = 0; m < TINY.depth; m++) {
        const input = m === 0 ? hook.seen.get('-1.embed')! : blocks![m - 1];
        const p = vit.blocks[m].params;
        expect(maxAbsDiff(hook.seen.get(`${m}.ln1`)!, tf.reshape(layerNorm(flat(input), p.norm1), [2, L, dim]))).toBeLessThan(1e-5);
        const x1 = tf.add(input, hook.seen.get(`${m}.attn`)!);
        expect(maxAbsDiff(tf.add(x1, hook.seen.get(`${m}.mlpOut`)!), blocks![m])).toBeLessThan(1e-5);
        expect(hook.seen.get(`${m}.mlpHidden`)!.shape).toEqual([2, L, dim * TINY.mlpRatio]);
        expect(maxAbsDiff(hook.seen.get(`${m}.blockOut`)!, blocks![m])).toBe(0);
      }
      expect(maxAbsDiff(hook.seen.get(`${TINY.depth}.finalCls`)!, cls)).toBe(0);
    });
  });
});

describe('gradient tape', () => {
  it('keeps the frozen backbone off the tape when hooks only read (side queries)', () => {
    const queries = variables(TINY.depth, [2, TINY.dim], 80, 0.06);
    const hook = queryHook(queries);
    const loss = (tapeBackbone: boolean) => () => tf.sum(tf.concat(vit.forward(x, { hooks: [hook], tapeBackbone }) && hook.outputs, 1)) as tf.Scalar;
    const hiddenShape = `${2 * vit.numTokens}x${TINY.dim * TINY.mlpRatio}`;
    expect(tapeShapes(loss(true), queries)).toContain(hiddenShape);
    const offTape = tapeShapes(loss(false), queries);
    expect(offTape).not.toContain(hiddenShape);
    expect(offTape).toContain(`${2 * 2}x${TINY.dim * TINY.mlpRatio}`); // the queries' own MLP is recorded
    tf.dispose(queries);
  });

  it('gives the same query gradients off the tape as with the whole backbone recorded', () => {
    const queries = variables(TINY.depth, [2, TINY.dim], 90, 0.06);
    const hook = queryHook(queries);
    const grads = (tapeBackbone: boolean) =>
      tf.variableGrads(() => {
        vit.forward(x, { hooks: [hook], tapeBackbone });
        return tf.sum(tf.square(tf.concat(hook.outputs, 1))) as tf.Scalar;
      }, queries);
    const a = grads(false);
    const b = grads(true);
    for (const q of queries) expect(maxAbsDiff(a.grads[q.name], b.grads[q.name])).toBeLessThan(1e-5);
    tf.dispose([queries, a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  });
});

describe('memory', () => {
  it('50 forwards leave tf.memory().numTensors unchanged', () => {
    const queries = variables(TINY.depth, [1, TINY.dim], 100);
    const hooks = [queryHook(queries), tapHook(['ln1', 'finalCls'])];
    const run = () => tf.tidy(() => vit.forward(x, { hooks, returnBlocks: true }).cls.dataSync());
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(queries);
  });
});
