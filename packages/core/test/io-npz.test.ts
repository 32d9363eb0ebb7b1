import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { unzipSync, zipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend, loadVit } from '../src/index.js';
import { FileFormatError, encodeNpy, encodeNpz, parseNpz, readNpy, readNpz, writeNpz, type HostTensor } from '../src/io/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vqt-io-npz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));
const F = 'model.npz';

const KERNEL = 'Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel';
const arrays: Record<string, HostTensor> = {
  [KERNEL]: { shape: [4, 8], data: Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)) },
  cls: { shape: [1, 1, 8], data: new Float32Array(8).fill(0.25) },
  b: { shape: [300], data: new Float32Array(300) }, // zeros: compresses well
};

function expectFormatError(run: () => unknown, file: string, tensor: string | undefined, reason: RegExp): void {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(FileFormatError);
  const error = caught as FileFormatError;
  expect(error.message).not.toMatch(/[\r\n]/);
  expect(error.file).toBe(file);
  expect(error.tensor).toBe(tensor);
  expect(error.message.startsWith(tensor === undefined ? `${file}: ` : `${file}: ${tensor}: `)).toBe(true);
  expect(error.message).toMatch(reason);
}

/** Where a member's (possibly compressed) data starts, from its local file header. */
function memberDataOffset(zip: Uint8Array, name: string): number {
  const view = new DataView(zip.buffer, zip.byteOffset);
  for (let i = 0; i + 30 <= zip.length; i++) {
    if (view.getUint32(i, true) !== 0x04034b50) continue;
    const nameLength = view.getUint16(i + 26, true);
    if (new TextDecoder().decode(zip.subarray(i + 30, i + 30 + nameLength)) === name) return i + 30 + nameLength + view.getUint16(i + 28, true);
  }
  throw new Error(`no local header for ${name}`);
}

/** Rewrites a member's uncompressed size in the central directory. */
function patchCentralSize(zip: Uint8Array, name: string, originalSize: number): Uint8Array {
  const patched = zip.slice();
  const view = new DataView(patched.buffer);
  for (let i = 0; i + 46 <= patched.length; i++) {
    if (view.getUint32(i, true) !== 0x02014b50) continue;
    const nameLength = view.getUint16(i + 28, true);
    if (new TextDecoder().decode(patched.subarray(i + 46, i + 46 + nameLength)) !== name) continue;
    view.setUint32(i + 24, originalSize, true);
    return patched;
  }
  throw new Error(`no central directory entry for ${name}`);
}

describe('npz round trips', () => {
  for (const compress of [false, true]) {
    it(`${compress ? 'deflated' : 'stored'}: exact member names, values and shapes`, () => {
      const path = join(dir, `rt-${compress}.npz`);
      writeNpz(path, arrays, { compress });
      const read = readNpz(path);
      expect([...read.keys()].sort()).toEqual(Object.keys(arrays).sort());
      for (const [name, array] of Object.entries(arrays)) expect(read.get(name)).toEqual({ dtype: '<f4', ...array });
      // A missing member is the caller's to report; the map just does not have it.
      expect(read.has(`${KERNEL}.npy`)).toBe(false);
      expect(read.get('Transformer/encoderblock_0/MlpBlock_3/Dense_1/kernel')).toBeUndefined();
    });
  }

  it('compress actually deflates', () => {
    expect(encodeNpz(arrays, { compress: true }).length).toBeLessThan(encodeNpz(arrays).length);
  });

  it('keeps names without .npy, skips directory entries', () => {
    const npy = encodeNpy({ shape: [1], data: new Float32Array([3]) });
    const zip = zipSync({ raw: npy, folder: { 'a.npy': npy } });
    const read = parseNpz(zip, F);
    expect([...read.keys()].sort()).toEqual(['folder/a', 'raw']);
  });

  it('reads the deflated and stored fixtures alike', () => {
    const deflated = readNpz(join(FIXTURES, 'tiny_npz', 'model.npz'));
    const stored = readNpz(join(FIXTURES, 'tiny_npz', 'model_stored.npz'));
    expect(deflated.size).toBeGreaterThan(0);
    expect(deflated.has('embedding/kernel')).toBe(true);
    expect([...stored.keys()]).toEqual([...deflated.keys()]);
    for (const [name, array] of deflated) {
      const other = stored.get(name)!;
      expect(other.shape).toEqual(array.shape);
      expect(Buffer.from(other.data.buffer).equals(Buffer.from(array.data.buffer))).toBe(true); // deep-equal on 100k floats is slow
    }
  });

  it('reads an empty archive as an empty map', () => {
    expect(parseNpz(zipSync({}), F).size).toBe(0);
  });
});

describe('npz rejects bad files', () => {
  const stored = encodeNpz(arrays);
  const deflated = encodeNpz(arrays, { compress: true });

  it('bytes that are not a zip', () => {
    expectFormatError(() => parseNpz(new Uint8Array(100).fill(7), F), F, undefined, /not a valid zip archive/);
    expectFormatError(() => parseNpz(new Uint8Array(0), F), F, undefined, /not a valid zip archive/);
  });

  it('a zip cut short (named with the file on disk)', () => {
    const path = join(dir, 'cut.npz');
    writeFileSync(path, deflated.subarray(0, deflated.length >> 1));
    expectFormatError(() => readNpz(path), path, undefined, /not a valid zip archive/);
  });

  it('a stored member that is not a valid .npy', () => {
    const corrupt = stored.slice();
    corrupt[memberDataOffset(corrupt, 'cls.npy')] = 0x00; // break its magic
    expectFormatError(() => parseNpz(corrupt, F), F, 'cls', /not a \.npy file \(bad magic\)/);
  });

  it('a deflated member whose stream is corrupt', () => {
    const corrupt = deflated.slice();
    corrupt[memberDataOffset(corrupt, 'b.npy')] = 0xff; // deflate block type 3 does not exist
    expectFormatError(() => parseNpz(corrupt, F), F, 'b', /cannot extract member/);
  });

  it('a member whose zip directory lies about its size', () => {
    expectFormatError(() => parseNpz(patchCentralSize(deflated, 'b.npy', 0xf0000000), F), F, 'b', /claims 4026531840 uncompressed bytes from \d+ compressed/);
    expectFormatError(() => parseNpz(patchCentralSize(stored, 'cls.npy', 12), F), F, 'cls', /stored member is \d+ bytes but claims 12/);
    // Claiming less makes the inflater stop early; the .npy inside is then short.
    expectFormatError(() => parseNpz(patchCentralSize(deflated, 'b.npy', 200), F), F, 'b', /truncated/);
    expectFormatError(() => parseNpz(patchCentralSize(deflated, 'b.npy', 5000), F), F, 'b', /extracted \d+ bytes, the zip directory says 5000/);
  });

  it('two members that map to one name', () => {
    const npy = encodeNpy({ shape: [1], data: new Float32Array([3]) });
    expectFormatError(() => parseNpz(zipSync({ 'x.npy': npy, x: npy }), F), F, 'x', /two zip members/);
  });
});

describe('npz writer', () => {
  it('is atomic: a bad array leaves the old file and no temp file', () => {
    const path = join(dir, 'atomic.npz');
    writeNpz(path, arrays);
    const before = readFileSync(path);
    expect(() => writeNpz(path, { w: { shape: [9], data: new Float32Array(2) } })).toThrow(RangeError);
    expect(readFileSync(path)).toEqual(before);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});

describe('Fortran-order npz (numpy-written, tools/reference/make_npy_orders.py)', () => {
  const orders = join(FIXTURES, 'npy_orders');
  const fortranNpz = join(orders, 'model_fortran.npz');

  it('is really Fortran-order: its kernels say fortran_order True', () => {
    const members = unzipSync(new Uint8Array(readFileSync(fortranNpz)));
    const fortran = Object.keys(members).filter((name) => new TextDecoder('latin1').decode(members[name].subarray(10, 80)).includes("'fortran_order': True"));
    expect(fortran).toContain('Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel.npy');
    expect(fortran.length).toBeGreaterThanOrEqual(3 * 6 + 2); // per block q, k, v, out, fc1, fc2; embedding, head
  });

  it('loads and gives the same model as the safetensors of the same weights (within 1e-6)', async () => {
    await initBackend({ backend: 'wasm' });
    const timm = loadVit(join(FIXTURES, 'tiny_f32', 'model.safetensors'), { heads: 3 });
    const google = loadVit(fortranNpz, { heads: 3 });
    const input = readNpy(join(FIXTURES, 'tiny_f32', 'input.npy'));
    const before = tf.memory().numTensors;
    const [clsDiff, blocksDiff, toReference] = tf.tidy(() => {
      const x = tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number]);
      const a = timm.model.forward(x, { returnBlocks: true });
      const b = google.model.forward(x, { returnBlocks: true });
      const reference = readNpy(join(FIXTURES, 'tiny_f32', 'cls.npy'));
      const maxDiff = (p: tf.Tensor, q: tf.Tensor) => tf.max(tf.abs(tf.sub(p, q))).dataSync()[0];
      return [maxDiff(a.cls, b.cls), maxDiff(tf.stack(a.blocks!), tf.stack(b.blocks!)), maxDiff(b.cls, tf.tensor(reference.data as Float32Array, reference.shape))];
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(clsDiff).toBeLessThanOrEqual(1e-6);
    expect(blocksDiff).toBeLessThanOrEqual(1e-6);
    expect(toReference).toBeLessThanOrEqual(1e-4); // and both match the PyTorch reference
    timm.model.dispose();
    google.model.dispose();
  });
});
