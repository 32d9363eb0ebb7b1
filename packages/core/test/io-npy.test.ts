import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FileFormatError, encodeNpy, expectFloat32, parseNpy, readNpy, readNpz, writeNpy } from '../src/io/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vqt-io-npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));
const F = 'x.npy';

/** A .npy file from a header dict and raw data, as NumPy lays it out (any version). */
function npy(dict: string, data: Uint8Array = new Uint8Array(0), version = 1): Uint8Array {
  const start = version === 1 ? 10 : 12;
  const header = new TextEncoder().encode(`${dict}\n`);
  const out = new Uint8Array(start + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(header, start);
  out.set(data, start + header.length);
  return out;
}
const dictFor = (descr: string, shape: string, fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
const bytesOf = (array: ArrayBufferView) => new Uint8Array(array.buffer, array.byteOffset, array.byteLength);

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

describe('npy round trips', () => {
  it('writes float32 and int32 with a NumPy v1.0 header and 64-byte aligned data', () => {
    const cases = [
      { shape: [2, 3], data: new Float32Array([1, 2, 3, 4.5, -5, 6]), tuple: '(2, 3)', descr: '<f4' },
      { shape: [4], data: new Int32Array([1, -2, 3, 2 ** 31 - 1]), tuple: '(4,)', descr: '<i4' },
      { shape: [], data: new Float32Array([7]), tuple: '()', descr: '<f4' },
      { shape: [0, 2], data: new Float32Array(0), tuple: '(0, 2)', descr: '<f4' },
    ];
    for (const { shape, data, tuple, descr } of cases) {
      const path = join(dir, `rt-${descr}-${shape.join('x')}.npy`);
      writeNpy(path, { shape, data } as Parameters<typeof writeNpy>[1]);
      const bytes = new Uint8Array(readFileSync(path));
      expect([...bytes.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      const headerLength = bytes[8] | (bytes[9] << 8);
      expect((10 + headerLength) % 64).toBe(0);
      const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLength));
      expect(header.endsWith('\n')).toBe(true);
      expect(header.trimEnd()).toBe(`{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`);

      const read = readNpy(path);
      expect(read).toEqual({ dtype: descr, shape, data });
      expect(read.data.constructor).toBe(data.constructor);
    }
  });

  it('reads every supported dtype', () => {
    const cases: [string, ArrayBufferView, ArrayLike<number | bigint>][] = [
      ['<f8', new Float64Array([0.1, -2]), new Float64Array([0.1, -2])],
      ['<f2', new Uint16Array([0x3c00, 0xc100, 0x0001, 0x7c00]), new Float32Array([1, -2.5, 2 ** -24, Infinity])],
      ['<i8', new BigInt64Array([5n, -3n]), new Int32Array([5, -3])],
      ['<i8', new BigInt64Array([2n ** 40n, 1n]), new BigInt64Array([2n ** 40n, 1n])],
      ['|u1', new Uint8Array([0, 255]), new Uint8Array([0, 255])],
      ['|i1', new Int8Array([-128, 127]), new Int8Array([-128, 127])],
      ['<u2', new Uint16Array([65535, 1]), new Uint16Array([65535, 1])],
      ['<i2', new Int16Array([-32768, 2]), new Int16Array([-32768, 2])],
      ['|b1', new Uint8Array([1, 0]), new Uint8Array([1, 0])],
    ];
    for (const [descr, stored, expected] of cases) {
      const read = parseNpy(npy(dictFor(descr, `(${expected.length},)`), bytesOf(stored)), F);
      expect(read.dtype).toBe(descr);
      expect(read.data).toEqual(expected);
    }
  });

  it('reads format versions 2.0 and 3.0 and unaligned input', () => {
    const data = bytesOf(new Float32Array([1, 2, 3]));
    for (const version of [2, 3]) expect(parseNpy(npy(dictFor('<f4', '(3,)'), data, version), F).data).toEqual(new Float32Array([1, 2, 3]));
    const shifted = new Uint8Array(npy(dictFor('<f4', '(3,)'), data).length + 1);
    shifted.set(npy(dictFor('<f4', '(3,)'), data), 1);
    expect(parseNpy(shifted.subarray(1), F).data).toEqual(new Float32Array([1, 2, 3]));
  });

  it('reads the fixture input and narrows it with expectFloat32', () => {
    const path = join(FIXTURES, 'tiny_f32', 'input.npy');
    const input = expectFloat32(readNpy(path), path, 'input', 4, '[B,3,H,W]');
    expect(input.shape).toEqual([2, 3, 32, 32]);
    expect(input.data).toBeInstanceOf(Float32Array);
  });
});

describe('npy byte and memory orders', () => {
  it('transposes fortran_order arrays to C order, for every rank and dtype', () => {
    // C-order values 0..23 of shape (2, 3, 4); column-major storage puts index (i, j, k) at i + 2j + 6k
    const shape = [2, 3, 4];
    const columnMajor = new Float32Array(24);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) columnMajor[i + 2 * j + 6 * k] = 12 * i + 4 * j + k;
    const read = parseNpy(npy(dictFor('<f4', '(2, 3, 4)', 'True'), bytesOf(columnMajor)), F);
    expect(read.shape).toEqual(shape);
    expect(Array.from(read.data as Float32Array)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    // a 2-d int array, a 1-d and a (1, n) one (where both orders coincide), and an empty one
    expect(Array.from(parseNpy(npy(dictFor('<i4', '(2, 3)', 'True'), bytesOf(new Int32Array([0, 3, 1, 4, 2, 5]))), F).data as Int32Array)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(parseNpy(npy(dictFor('<f4', '(3,)', 'True'), bytesOf(new Float32Array([1, 2, 3]))), F).data).toEqual(new Float32Array([1, 2, 3]));
    expect(parseNpy(npy(dictFor('<f4', '(1, 3)', 'True'), bytesOf(new Float32Array([1, 2, 3]))), F).data).toEqual(new Float32Array([1, 2, 3]));
    expect(parseNpy(npy(dictFor('<f4', '(0, 3)', 'True')), F).data).toEqual(new Float32Array(0));
  });

  it('byte-swaps big-endian data', () => {
    const bigEndian = (width: number, write: (view: DataView, i: number) => void, count: number) => {
      const bytes = new Uint8Array(width * count);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < count; i++) write(view, i);
      return bytes;
    };
    expect(parseNpy(npy(dictFor('>f4', '(2,)'), bigEndian(4, (v, i) => v.setFloat32(4 * i, [1.5, -2][i]), 2)), F).data).toEqual(new Float32Array([1.5, -2]));
    expect(parseNpy(npy(dictFor('>f8', '(1,)'), bigEndian(8, (v) => v.setFloat64(0, 0.1), 1)), F).data).toEqual(new Float64Array([0.1]));
    expect(parseNpy(npy(dictFor('>i8', '(2,)'), bigEndian(8, (v, i) => v.setBigInt64(8 * i, [-7n, 9n][i]), 2)), F).data).toEqual(new Int32Array([-7, 9]));
    expect(parseNpy(npy(dictFor('>f2', '(1,)'), bigEndian(2, (v) => v.setUint16(0, 0xc100), 1)), F).data).toEqual(new Float32Array([-2.5]));
    expect(parseNpy(npy(dictFor('>u1', '(2,)'), new Uint8Array([3, 250])), F).data).toEqual(new Uint8Array([3, 250]));
  });

  it('reads what numpy wrote: Fortran-order, big-endian, f2, 0-d, u1, b1, i8, u4 (fixtures/npy_orders/cases.npz)', () => {
    const dirOf = join(FIXTURES, 'npy_orders');
    const expected = JSON.parse(readFileSync(join(dirOf, 'cases.json'), 'utf8')) as Record<string, { dtype: string; shape: number[]; values: unknown }>;
    const arrays = readNpz(join(dirOf, 'cases.npz'));
    expect([...arrays.keys()].sort()).toEqual(Object.keys(expected).sort());
    const flat = (values: unknown): number[] => (Array.isArray(values) ? values.flatMap(flat) : [Number(values)]);
    for (const [name, want] of Object.entries(expected)) {
      const got = arrays.get(name)!;
      expect(got.dtype, name).toBe(want.dtype);
      expect(got.shape, name).toEqual(want.shape);
      const values = Array.from(got.data as ArrayLike<number | bigint>, Number);
      const wanted = flat(want.values);
      expect(values.length, name).toBe(wanted.length);
      // f4/f2 values went through float64 in the JSON: compare at float32 precision
      values.forEach((v, i) => expect(Math.fround(v), `${name}[${i}]`).toBe(Math.fround(wanted[i])));
    }
  });
});

describe('expectFloat32', () => {
  it('names the file, the array, the wanted rank and what it got', () => {
    const f64 = parseNpy(npy(dictFor('<f8', '(2, 3)'), new Uint8Array(48)), 'X.npy');
    expect(() => expectFloat32(f64, 'X.npy', 'input', 4, '[B,3,H,W]')).toThrow(
      new FileFormatError('X.npy', 'expected float32 array of rank 4 [B,3,H,W], got <f8 of shape [2, 3]', 'input'),
    );
    try {
      expectFloat32(f64, 'X.npy', 'input', 4, '[B,3,H,W]');
    } catch (error) {
      expect((error as Error).message).toBe('X.npy: input: expected float32 array of rank 4 [B,3,H,W], got <f8 of shape [2, 3]');
    }
    const f32 = parseNpy(npy(dictFor('<f4', '(2, 3)'), new Uint8Array(24)), 'X.npy');
    expectFormatError(() => expectFloat32(f32, 'X.npy', 'labels', 1), 'X.npy', 'labels', /expected float32 array of rank 1, got <f4 of shape \[2, 3\]$/);
    expect(expectFloat32(f32, 'X.npy', 'labels').shape).toEqual([2, 3]);
  });
});

describe('npy rejects bad files', () => {
  const valid = encodeNpy({ shape: [2, 3], data: new Float32Array(6) });

  it('wrong magic', () => {
    const bad = valid.slice();
    bad[1] = 0x4f;
    expectFormatError(() => parseNpy(bad, F), F, undefined, /not a \.npy file \(bad magic\)/);
    expectFormatError(() => parseNpy(new Uint8Array(0), F), F, undefined, /bad magic/);
    expectFormatError(() => parseNpy(new TextEncoder().encode('PK\x03\x04 this is a zip'), F), F, undefined, /bad magic/);
  });

  it('truncated data, named with the file on disk', () => {
    const path = join(dir, 'truncated.npy');
    writeFileSync(path, valid.subarray(0, valid.length - 4));
    expectFormatError(() => readNpy(path), path, undefined, /truncated: shape \(2, 3\) of <f4 needs 24 data bytes, file has 20/);
  });

  it('trailing bytes', () => {
    const longer = new Uint8Array(valid.length + 4);
    longer.set(valid);
    expectFormatError(() => parseNpy(longer, F), F, undefined, /trailing bytes: .* needs 24 data bytes, file has 28/);
  });

  it('a truncated preamble or header, checked before decoding', () => {
    expectFormatError(() => parseNpy(valid.subarray(0, 8), F), F, undefined, /ends inside the preamble/);
    expectFormatError(() => parseNpy(valid.subarray(0, 40), F), F, undefined, /header length 118 runs past the end of the 40-byte file/);
    const hugeHeader = npy(dictFor('<f4', '(1,)'), new Uint8Array(4), 2);
    new DataView(hugeHeader.buffer).setUint32(8, 0xffffffff, true);
    expectFormatError(() => parseNpy(hugeHeader, F), F, undefined, /header length 4294967295 runs past/);
  });

  it('unsupported dtypes, saying what they are', () => {
    expectFormatError(() => parseNpy(npy(dictFor('<c8', '(1,)'), new Uint8Array(8)), F), F, undefined, /unsupported dtype <c8 \(complex arrays/);
    expectFormatError(() => parseNpy(npy(dictFor('<U3', '(1,)'), new Uint8Array(12)), F), F, undefined, /unsupported dtype <U3 \(unicode string arrays/);
    expectFormatError(() => parseNpy(npy(dictFor('|O', '(1,)'), new Uint8Array(8)), 'm.npz', 'labels'), 'm.npz', 'labels', /unsupported dtype \|O \(object arrays hold pickled Python objects\)/);
    expectFormatError(() => parseNpy(npy(dictFor('<M8[s]', '(1,)'), new Uint8Array(8)), F), F, undefined, /unsupported dtype <M8\[s\] \(datetime/);
    expectFormatError(() => parseNpy(npy(dictFor('!f4', '(1,)'), new Uint8Array(4)), F), F, undefined, /unsupported dtype !f4; supported: .* in any byte order/);
    const structured = "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }";
    expectFormatError(() => parseNpy(npy(structured, new Uint8Array(4)), F), F, undefined, /no string 'descr'/);
  });

  it('malformed headers, shapes and versions', () => {
    expectFormatError(() => parseNpy(npy(dictFor('<f4', '(2, -1)')), F), F, undefined, /shape \(2, -1\) is not a tuple of non-negative integers/);
    expectFormatError(() => parseNpy(npy(dictFor('<f4', '(2,,3)')), F), F, undefined, /not a tuple/);
    expectFormatError(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False}"), F), F, undefined, /no 'shape' tuple/);
    expectFormatError(() => parseNpy(npy("{'descr': '<f4', 'shape': (1,)}"), F), F, undefined, /no 'fortran_order'/);
    expectFormatError(() => parseNpy(npy('not a dict'), F), F, undefined, /not a Python dict literal/);
    const v4 = valid.slice();
    v4[6] = 4;
    expectFormatError(() => parseNpy(v4, F), F, undefined, /unsupported \.npy format version 4\.0/);
  });

  it('names the array when given one (npz members)', () => {
    expectFormatError(() => parseNpy(valid.subarray(0, 100), 'm.npz', 'Transformer/cls'), 'm.npz', 'Transformer/cls', /runs past/);
  });
});

describe('npy writer', () => {
  it('rejects other array types and mismatched shapes; leaves no file behind', () => {
    const path = join(dir, 'never.npy');
    expect(() => writeNpy(path, { shape: [1], data: new Float64Array(1) as unknown as Float32Array })).toThrow(TypeError);
    expect(() => writeNpy(path, { shape: [3], data: new Float32Array(2) })).toThrow(RangeError);
    expect(readdirSync(dir)).not.toContain('never.npy');
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});
