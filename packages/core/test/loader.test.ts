import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileFormatError,
  encodeSafetensors,
  initBackend,
  inspectCheckpoint,
  knownArchitecture,
  loadVit,
  readNpy,
  readSafetensors,
  type HostTensor,
} from '../src/index.js';

const FIXTURES = join(__dirname, 'fixtures');
const TINY_F32 = join(FIXTURES, 'tiny_f32', 'model.safetensors');
let dir: string;

const npy = (folder: string, name: string) => {
  const a = readNpy(join(FIXTURES, folder, name));
  return tf.tensor(a.data as Float32Array, a.shape);
};

/** tiny_f32's tensors with `extra` added, written as a new file (with tiny_f32's metadata). */
function withTensors(name: string, extra: Record<string, HostTensor>, drop: string[] = []): string {
  const { tensors, metadata } = readSafetensors(TINY_F32);
  for (const key of drop) tensors.delete(key);
  for (const [key, t] of Object.entries(extra)) tensors.set(key, t);
  const file = join(dir, name);
  writeFileSync(file, encodeSafetensors(tensors, { metadata }));
  return file;
}

const vector = (size: number): HostTensor => ({ shape: [size], data: new Float32Array(size).fill(0.5) });

function oneLineError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(FileFormatError);
    const message = (error as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    return message;
  }
  throw new Error('expected an error');
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = mkdtempSync(join(tmpdir(), 'vqt-loader-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('strict loading', () => {
  it('refuses tensors it does not use, naming the first few and the count, in one line', () => {
    const extra = Object.fromEntries(['blocks.0.ls1.gamma_typo', 'blocks.0.attn.rel_pos', 'blocks.1.attn.rel_pos', 'mask_token', 'decoder.weight', 'decoder.bias'].map((n) => [n, vector(48)]));
    const file = withTensors('unknown.safetensors', extra);
    const message = oneLineError(() => loadVit(file));
    expect(message).toContain('unknown.safetensors');
    expect(message).toMatch(/6 tensors this loader does not use: .*(blocks\.0\.attn\.rel_pos|decoder\.bias).*\(6 in all\)/);
    expect(message).toMatch(/--ignore-unknown/);
  });

  it('ignoreUnknown loads such a file and warns, naming the tensors', () => {
    const file = withTensors('unknown-one.safetensors', { mask_token: vector(48) });
    const warnings: string[] = [];
    const { model, info } = loadVit(file, { ignoreUnknown: true, onWarning: (w) => warnings.push(w) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/unknown-one\.safetensors: ignoring 1 tensor this loader does not use: mask_token$/);
    expect(info.unknownTensors).toEqual(['mask_token']);
    // The unused tensor changes nothing: same features as the clean file.
    const clean = loadVit(TINY_F32);
    tf.tidy(() => {
      const x = npy('tiny_f32', 'input.npy') as tf.Tensor4D;
      expect(tf.max(tf.abs(tf.sub(model.forward(x).cls, clean.model.forward(x).cls))).dataSync()[0]).toBe(0);
    });
    model.dispose();
    clean.model.dispose();
  });

  it('the classifier head is the known exception: read, reported, unused', () => {
    const info = inspectCheckpoint(TINY_F32);
    expect(info.unusedTensors.sort()).toEqual(['head.bias', 'head.weight']);
    expect(info.unknownTensors).toEqual([]);
    expect(info.headClasses).toBe(10);
    const npz = inspectCheckpoint(join(FIXTURES, 'tiny_npz', 'model.npz'));
    expect(npz.unusedTensors.sort()).toEqual(['head/bias', 'head/kernel']);
    expect(npz.unknownTensors).toEqual([]);
  });

  it('a variant tensor present in a file is used, never ignored (LayerScale gains change the output)', () => {
    const ls = Object.fromEntries([0, 1, 2].flatMap((i) => [[`blocks.${i}.ls1.gamma`, vector(48)], [`blocks.${i}.ls2.gamma`, vector(48)]]));
    const file = withTensors('layerscale.safetensors', ls);
    const { model, info } = loadVit(file);
    expect(info.config.layerScale).toBe(true);
    expect(info.variant).toBe('LayerScale');
    const clean = loadVit(TINY_F32);
    tf.tidy(() => {
      const x = npy('tiny_f32', 'input.npy') as tf.Tensor4D;
      expect(tf.max(tf.abs(tf.sub(model.forward(x).cls, clean.model.forward(x).cls))).dataSync()[0]).toBeGreaterThan(1e-2);
    });
    model.dispose();
    clean.model.dispose();
  });

  it('fc_norm without norm (global average pooling) loads', () => {
    const { tensors, metadata } = readSafetensors(TINY_F32);
    tensors.set('fc_norm.weight', tensors.get('norm.weight')!);
    tensors.set('fc_norm.bias', tensors.get('norm.bias')!);
    tensors.delete('norm.weight');
    tensors.delete('norm.bias');
    const file = join(dir, 'gap.safetensors');
    writeFileSync(file, encodeSafetensors(tensors, { metadata }));
    const { model, info } = loadVit(file);
    expect(info.config.globalPool).toBe('avg');
    expect(info.variant).toBe('global average pooling, fc_norm');
    model.dispose();
  });

  it('an incomplete variant (ls1 without ls2) names the missing tensor', () => {
    const file = withTensors('half-ls.safetensors', { 'blocks.0.ls1.gamma': vector(48), 'blocks.1.ls1.gamma': vector(48), 'blocks.2.ls1.gamma': vector(48) });
    expect(oneLineError(() => loadVit(file))).toMatch(/half-ls\.safetensors: blocks\.0\.ls2\.gamma: missing tensor/);
  });
});

describe('files that are not checkpoints say what they look like', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['image.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 73, 72, 68, 82]), /not a checkpoint .*: this is a PNG image/],
    ['photo.jpg', new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 74, 70, 73, 70, 0, 1]), /this is a JPEG image/],
    ['weights.pth', new Uint8Array([0x80, 0x02, 0x63, 0x63, 0x6f, 0x6c]), /this is a Python pickle/],
    ['config.json', new TextEncoder().encode('{"architecture": "vit_base_patch16_224"}'), /this is a JSON file/],
    ['archive.zip', zipSync({ 'readme.txt': new TextEncoder().encode('hello') }), /this is a zip archive without \.npy members \(readme\.txt\), not an \.npz/],
    ['torch.pt', zipSync({ 'archive/data.pkl': new Uint8Array([0x80, 2]), 'archive/version': new TextEncoder().encode('3') }), /PyTorch zip checkpoint/],
  ];
  for (const [name, bytes, pattern] of cases) {
    it(name, () => {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      const message = oneLineError(() => loadVit(file));
      expect(message).toMatch(pattern);
      expect(message.startsWith(file)).toBe(true);
      expect(message).not.toMatch(/header length/);
    });
  }
});

describe('a timm hub folder as the checkpoint', () => {
  it('model.safetensors + config.json: heads and activation from config.json, matches the reference without --heads', () => {
    const hub = join(dir, 'hub');
    const { tensors } = readSafetensors(join(FIXTURES, 'tiny_ls_reg_quickgelu', 'model.safetensors'));
    // timm's own files have no num_heads metadata: config.json must tell.
    mkdirSync(hub, { recursive: true });
    writeFileSync(join(hub, 'model.safetensors'), encodeSafetensors(tensors));
    writeFileSync(
      join(hub, 'config.json'),
      JSON.stringify({ architecture: 'vit_tiny_test', num_classes: 10, num_features: 48, global_pool: 'token', model_args: { num_heads: 3, act_layer: 'quick_gelu', reg_tokens: 2, no_embed_class: true, init_values: 1e-5 }, pretrained_cfg: { tag: 'test', input_size: [3, 32, 32] } }),
    );
    const info = inspectCheckpoint(hub);
    expect(info.headsSource).toBe('config.json');
    expect(info.config).toMatchObject({ heads: 3, activation: 'quickGelu', registerTokens: 2, noEmbedClass: true, layerScale: true });
    expect(info.configFile).toBe(join(hub, 'config.json'));
    const { model, name, sha256 } = loadVit(hub);
    expect(name).toBe('hub');
    expect(sha256).toMatch(/^[0-9a-f]{64}$/);
    tf.tidy(() => {
      const cls = model.forward(npy('tiny_ls_reg_quickgelu', 'input.npy') as tf.Tensor4D).cls;
      expect(tf.max(tf.abs(tf.sub(cls, npy('tiny_ls_reg_quickgelu', 'cls.npy')))).dataSync()[0]).toBeLessThanOrEqual(1e-4);
    });
    model.dispose();
  });

  it('a folder without model.safetensors says what it has', () => {
    const empty = join(dir, 'pickled');
    mkdirSync(empty, { recursive: true });
    writeFileSync(join(empty, 'pytorch_model.bin'), new Uint8Array([0x80, 2]));
    expect(oneLineError(() => loadVit(empty))).toMatch(/pickled: has pytorch_model\.bin \(a Python pickle\) but no model\.safetensors/);
  });

  it('an unsupported pooling in config.json is refused, naming the file', () => {
    const hub = join(dir, 'map');
    mkdirSync(hub, { recursive: true });
    writeFileSync(join(hub, 'model.safetensors'), readFileSync(TINY_F32));
    writeFileSync(join(hub, 'config.json'), JSON.stringify({ architecture: 'vit_base_patch16_siglip_224', global_pool: 'map' }));
    expect(oneLineError(() => loadVit(hub))).toMatch(/config\.json: global_pool "map" is not supported/);
  });
});

describe("timm's known architectures by name", () => {
  const expectations: [string, Record<string, unknown>][] = [
    ['vit_tiny_patch16_224.augreg_in21k', { heads: 3, eps: 1e-6, activation: 'gelu' }],
    ['vit_small_patch16_224', { heads: 6 }],
    ['vit_base_patch16_224.mae', { heads: 12, eps: 1e-6, globalPool: 'token' }],
    ['vit_base_patch32_224', { heads: 12 }],
    ['vit_large_patch16_224', { heads: 16 }],
    ['vit_base_patch16_clip_224.laion2b', { heads: 12, eps: 1e-5, activation: 'gelu' }],
    ['vit_base_patch16_clip_quickgelu_224.openai', { heads: 12, eps: 1e-5, activation: 'quickGelu' }],
    ['vit_small_patch14_dinov2.lvd142m', { heads: 6, registerTokens: 0, noEmbedClass: false }],
    ['vit_base_patch14_dinov2.lvd142m', { heads: 12 }],
    ['vit_base_patch14_reg4_dinov2.lvd142m', { heads: 12, registerTokens: 4, noEmbedClass: true }],
    ['deit3_small_patch16_224.fb_in22k_ft_in1k', { heads: 6, noEmbedClass: true }],
    ['deit3_base_patch16_224', { heads: 12, noEmbedClass: true }],
  ];
  for (const [name, expected] of expectations) {
    it(name, () => expect(knownArchitecture(name)).toMatchObject(expected));
  }
  it('OpenAI CLIP weights under the GELU architecture carry a note; unknown names give nothing', () => {
    expect(knownArchitecture('vit_base_patch16_clip_224.openai')!.notes[0]).toMatch(/QuickGELU/);
    expect(knownArchitecture('convnext_tiny')).toBeUndefined();
  });
});

describe('what no tensor tells', () => {
  it('a pre-norm file without config.json gets timm CLIP eps 1e-5, with a note', () => {
    const { tensors, metadata } = readSafetensors(TINY_F32);
    tensors.set('norm_pre.weight', { shape: [48], data: new Float32Array(48).fill(1) });
    tensors.set('norm_pre.bias', { shape: [48], data: new Float32Array(48) });
    tensors.delete('patch_embed.proj.bias');
    const file = join(dir, 'clip-like.safetensors');
    writeFileSync(file, encodeSafetensors(tensors, { metadata }));
    const info = inspectCheckpoint(file);
    expect(info.config).toMatchObject({ preNorm: true, eps: 1e-5 });
    expect(info.notes.join(' ')).toMatch(/eps 1e-5 and GELU assumed/);
    expect(inspectCheckpoint(file, { eps: 1e-6 }).config.eps).toBe(1e-6);
  });

  it('a timm architecture name stands in for config.json beside a bare file', () => {
    const file = join(FIXTURES, 'tiny_f32', 'model.safetensors');
    const info = inspectCheckpoint(file, { architecture: 'vit_base_patch16_clip_quickgelu_224' });
    expect(info.config).toMatchObject({ eps: 1e-5, activation: 'quickGelu', heads: 3 }); // heads: the file's metadata wins
    expect(info.architecture).toBe('vit_base_patch16_clip_quickgelu_224');
    expect(oneLineError(() => inspectCheckpoint(file, { architecture: 'resnet50' }))).toMatch(/unknown timm architecture "resnet50"/);
  });

  it('registers whose pos_embed rows fit a grid both ways ask for no_embed_class', () => {
    // 4 registers + CLS = 5 prefix rows; 9 rows are a 3x3 grid alone or a 2x2 grid after the prefix.
    const tensors = readSafetensors(TINY_F32).tensors;
    tensors.set('reg_token', { shape: [1, 4, 48], data: new Float32Array(4 * 48) });
    tensors.set('pos_embed', { shape: [1, 9, 48], data: new Float32Array(9 * 48) });
    const file = join(dir, 'ambiguous.safetensors');
    writeFileSync(file, encodeSafetensors(tensors));
    expect(oneLineError(() => inspectCheckpoint(file))).toMatch(/ambiguous\.safetensors: pos_embed: 9 rows fit a grid both with and without the 5 prefix token\(s\); give noEmbedClass/);
    expect(inspectCheckpoint(file, { noEmbedClass: true }).checkpointImageSize).toBe(3 * 8);
    expect(inspectCheckpoint(file, { noEmbedClass: false }).checkpointImageSize).toBe(2 * 8);
  });
});
