import { encodeSafetensors, readNpy, readSafetensors, writeNpy, writeNpz } from '@vqt/core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CORE_FIXTURES, errorLines, vqt } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'vqt-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('vqt embed reproduces the PyTorch reference', () => {
  for (const [name, file] of [
    ['tiny_f32', 'model.safetensors'],
    ['tiny_npz', 'model.npz'],
    ['tiny_resample_up', 'model.safetensors'],
  ]) {
    it(`${name}: cls and blocks within 1e-4`, () => {
      const fixture = join(CORE_FIXTURES, name);
      for (const features of ['cls', 'blocks']) {
        const out = join(dir, `${name}-${features}.npy`);
        const run = vqt(['embed', '--checkpoint', join(fixture, file), '--heads', '3', '--input', join(fixture, 'input.npy'), '--out', out, '--features', features, '--batch', '1']);
        expect(run.status, run.stderr).toBe(0);
        expect(run.stderr).toMatch(/^backend: wasm \(SIMD, 1 thread\)/);
        const got = readNpy(out);
        const want = readNpy(join(fixture, `${features}.npy`));
        expect(got.shape).toEqual(want.shape);
        expect(maxAbsDiff(got.data as Float32Array, want.data as Float32Array)).toBeLessThanOrEqual(1e-4);
      }
    });
  }

  it('inspect reports the architecture', () => {
    const run = vqt(['inspect', join(CORE_FIXTURES, 'tiny_npz', 'model.npz'), '--json']);
    expect(run.status, run.stderr).toBe(0);
    const info = JSON.parse(run.stdout);
    expect(info.config).toMatchObject({ dim: 48, depth: 3, heads: 3, patchSize: 8, mlpRatio: 4 });
    expect(info.format).toBe('npz');
  });
});

describe('bad input gives one line naming the file and tensor, exit != 0, no stack trace', () => {
  const good = join(CORE_FIXTURES, 'tiny_f32', 'model.safetensors');
  const input = join(CORE_FIXTURES, 'tiny_f32', 'input.npy');
  const bytes = readFileSync(good);
  const headerLength = Number(Buffer.from(bytes).readBigUInt64LE(0));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8'));
  const body = bytes.subarray(8 + headerLength);

  /** A safetensors file with an edited header and the original data. */
  function withHeader(name: string, edit: (h: Record<string, any>) => void, data: Uint8Array = body): string {
    const h = structuredClone(header);
    edit(h);
    const json = Buffer.from(JSON.stringify(h));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    const file = join(dir, name);
    writeFileSync(file, Buffer.concat([prefix, json, data]));
    return file;
  }

  const expectOneLineError = (args: string[], pattern: RegExp) => {
    const run = vqt(args);
    expect(run.status).not.toBe(0);
    const lines = errorLines(run);
    expect(lines, run.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  };
  const embed = (checkpoint: string, inputFile = input) => ['embed', '--checkpoint', checkpoint, '--heads', '3', '--input', inputFile, '--out', join(dir, 'out.npy')];

  it('truncated safetensors', () => {
    const file = join(dir, 'truncated.safetensors');
    writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    expectOneLineError(embed(file), /truncated\.safetensors: .+/);
  });

  it('header length past the end of the file', () => {
    const file = join(dir, 'header-past-end.safetensors');
    const copy = Buffer.from(bytes);
    copy.writeBigUInt64LE(BigInt(bytes.length * 4), 0);
    writeFileSync(file, copy);
    expectOneLineError(embed(file), /header-past-end\.safetensors: .*header/i);
  });

  it('offsets out of range', () => {
    const file = withHeader('offsets.safetensors', (h) => (h['norm.bias'].data_offsets = [0, body.length + 400]));
    expectOneLineError(embed(file), /offsets\.safetensors: norm\.bias: /);
  });

  it('overlapping tensors', () => {
    const file = withHeader('overlap.safetensors', (h) => {
      h['norm.bias'].data_offsets = h['norm.weight'].data_offsets.slice();
    });
    expectOneLineError(embed(file), /overlap\.safetensors: norm\.(bias|weight): .*(overlap|unused)/i);
  });

  it('unknown dtype', () => {
    const file = withHeader('dtype.safetensors', (h) => (h['cls_token'].dtype = 'Q7'));
    expectOneLineError(embed(file), /dtype\.safetensors: cls_token: .*Q7/);
  });

  it('shape not matching the byte count', () => {
    const file = withHeader('shape.safetensors', (h) => (h['cls_token'].shape = [1, 1, 47]));
    expectOneLineError(embed(file), /shape\.safetensors: cls_token: /);
  });

  it('a tensor with the wrong shape for the architecture', () => {
    const { tensors } = readSafetensors(good);
    const bad = Object.fromEntries(tensors);
    bad['blocks.1.mlp.fc2.weight'] = { shape: [48, 100], data: new Float32Array(4800) };
    const file = join(dir, 'arch.safetensors');
    writeFileSync(file, encodeSafetensors(bad));
    expectOneLineError(embed(file), /arch\.safetensors: blocks\.1\.mlp\.fc2\.weight: expected shape \[48, 192\]/);
  });

  it('npz missing a tensor, and npz with a wrong shape', async () => {
    const { readNpz } = await import('@vqt/core');
    const members = readNpz(join(CORE_FIXTURES, 'tiny_npz', 'model.npz'));
    const all: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [k, v] of members) all[k] = { shape: v.shape, data: v.data as Float32Array };
    const missing = { ...all };
    delete missing['Transformer/encoderblock_2/MlpBlock_3/Dense_1/bias'];
    writeNpz(join(dir, 'missing.npz'), missing);
    expectOneLineError(embed(join(dir, 'missing.npz')), /missing\.npz: Transformer\/encoderblock_2\/MlpBlock_3\/Dense_1\/bias: missing/);
    const wrong = { ...all, 'Transformer/encoder_norm/scale': { shape: [47], data: new Float32Array(47) } };
    writeNpz(join(dir, 'wrong.npz'), wrong);
    expectOneLineError(embed(join(dir, 'wrong.npz')), /wrong\.npz: Transformer\/encoder_norm\/scale: expected shape \[48\]/);
  });

  it('.npy input of the wrong dtype or rank', () => {
    const rank2 = join(dir, 'rank2.npy');
    writeNpy(rank2, { shape: [2, 48], data: new Float32Array(96) });
    expectOneLineError(embed(good, rank2), /rank2\.npy: input: expected float32 array of rank 4/);
    const ints = join(dir, 'ints.npy');
    writeNpy(ints, { shape: [1, 3, 32, 32], data: new Int32Array(3 * 32 * 32) });
    expectOneLineError(embed(good, ints), /ints\.npy: input: expected float32 .* got <i4/);
  });

  it('a missing checkpoint file', () => {
    expectOneLineError(embed(join(dir, 'nope.safetensors')), /nope\.safetensors: cannot read: no such file/);
  });
});
