import { encodeSafetensors, readNpy, readSafetensors } from '@vqt/core';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CORE_FIXTURES, errorLines, vqt } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'vqt-cli-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** tiny_f32 with two tensors no ViT has. */
function withUnknown(): string {
  const { tensors, metadata } = readSafetensors(join(CORE_FIXTURES, 'tiny_f32', 'model.safetensors'));
  tensors.set('mask_token', { shape: [1, 1, 48], data: new Float32Array(48) });
  tensors.set('decoder_embed.weight', { shape: [48], data: new Float32Array(48) });
  const file = join(dir, 'mae-pretrain.safetensors');
  writeFileSync(file, encodeSafetensors(tensors, { metadata }));
  return file;
}

describe('--ignore-unknown and strict loading', () => {
  const input = join(CORE_FIXTURES, 'tiny_f32', 'input.npy');
  const out = join(dir, 'cls.npy');

  it('embed refuses unknown tensors in one line, and loads them with --ignore-unknown and a warning', () => {
    const file = withUnknown();
    const refused = vqt(['embed', '--checkpoint', file, '--input', input, '--out', out]);
    expect(refused.status).not.toBe(0);
    const lines = errorLines(refused);
    expect(lines, refused.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/mae-pretrain\.safetensors: 2 tensors this loader does not use: (decoder_embed\.weight, mask_token|mask_token, decoder_embed\.weight).*--ignore-unknown/);

    const loaded = vqt(['embed', '--checkpoint', file, '--input', input, '--out', out, '--ignore-unknown']);
    expect(loaded.status, loaded.stderr).toBe(0);
    expect(loaded.stderr).toMatch(/warning: .*mae-pretrain\.safetensors: ignoring 2 tensors this loader does not use/);
    expect(readNpy(out).shape).toEqual([2, 48]);
  });

  it('every command that takes --checkpoint has the flag', () => {
    for (const command of ['embed', 'train', 'eval']) {
      expect(vqt([command, '--help']).stdout, command).toMatch(/--ignore-unknown/);
    }
    expect(vqt(['inspect', '--help']).stdout).not.toMatch(/--ignore-unknown/);
  });

  it('a PNG given as the checkpoint says so', () => {
    const png = join(dir, 'cat.png');
    writeFileSync(png, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 73, 72, 68, 82]));
    const run = vqt(['embed', '--checkpoint', png, '--input', input, '--out', out]);
    expect(errorLines(run)).toEqual([`vqt: ${png}: not a checkpoint (timm .safetensors or Google ViT .npz): this is a PNG image`]);
  });
});

/** The LayerScale + registers + QuickGELU fixture as a timm hub folder (QuickGELU is only in config.json). */
function variantHub(): string {
  const hub = join(dir, 'hub');
  mkdirSync(hub, { recursive: true });
  const { tensors } = readSafetensors(join(CORE_FIXTURES, 'tiny_ls_reg_quickgelu', 'model.safetensors'));
  writeFileSync(join(hub, 'model.safetensors'), encodeSafetensors(tensors));
  writeFileSync(join(hub, 'config.json'), JSON.stringify({ architecture: 'vit_tiny_test', global_pool: 'token', model_args: { num_heads: 3, act_layer: 'quick_gelu' } }));
  return hub;
}

describe('vqt embed on a timm hub folder with registers', () => {
  for (const features of ['cls', 'blocks'] as const) {
    it(`--features ${features} matches the reference, no --heads (registers dropped from blocks)`, () => {
      const fixture = join(CORE_FIXTURES, 'tiny_ls_reg_quickgelu');
      const out = join(dir, `hub-${features}.npy`);
      const run = vqt(['embed', '--checkpoint', variantHub(), '--input', join(fixture, 'input.npy'), '--out', out, '--features', features]);
      expect(run.status, run.stderr).toBe(0);
      const got = readNpy(out);
      const want = readNpy(join(fixture, `${features}.npy`));
      expect(got.shape).toEqual(want.shape);
      let worst = 0;
      for (let i = 0; i < got.data.length; i++) worst = Math.max(worst, Math.abs(Number(got.data[i]) - Number(want.data[i])));
      expect(worst).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('vqt inspect', () => {
  it('prints the variant, where the heads came from, the unused head and unknown tensors', () => {
    const run = vqt(['inspect', withUnknown()]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^width +48, depth 3, heads 3 \(from the file's num_heads metadata\)/m);
    expect(run.stdout).toMatch(/^variant +standard ViT$/m);
    expect(run.stdout).toMatch(/^head +10 classes \(read, unused: 2 tensors\)$/m);
    expect(run.stdout).toMatch(/^unknown +2 tensors this loader does not use: .*refuses it without --ignore-unknown$/m);
  });

  it('a timm hub folder: architecture, variant and registers', () => {
    const run = vqt(['inspect', variantHub()]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^timm arch +vit_tiny_test$/m);
    expect(run.stdout).toMatch(/heads 3 \(from config\.json\)/);
    expect(run.stdout).toMatch(/16 patches \+ CLS \+ 2 registers/);
    expect(run.stdout).toMatch(/^variant +LayerScale, 2 register tokens, QuickGELU, no_embed_class$/m);
    expect(run.stdout).toMatch(/^note +architecture vit_tiny_test is not one this loader knows by name/m);
  });
});
