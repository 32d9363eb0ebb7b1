import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FileFormatError,
  encodeSafetensors,
  float16BitsToFloat32Bits,
  float16ToNumber,
  float32BitsToFloat16Bits,
  parseSafetensors,
  readSafetensors,
  writeFileAtomic,
  writeFileAtomicAsync,
  writeSafetensors,
  type HostTensor,
} from '../src/io/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vqt-io-safetensors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));

function tensor(shape: number[], values?: number[]): HostTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  return { shape, data: new Float32Array(values ?? Array.from({ length: count }, (_, i) => (i - count / 3) * 0.37)) };
}

/** A safetensors file from a raw header (object or exact JSON text) and data buffer. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Asserts a one-line FileFormatError that names the file (and the tensor, when given); returns it. */
function expectFormatError(run: () => unknown, file: string, tensor?: string, reason?: RegExp): FileFormatError {
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
  const shownTensor = tensor?.replace(/\s*[\r\n]+\s*/g, ' ');
  expect(error.message.startsWith(tensor === undefined ? `${file}: ` : `${file}: ${shownTensor}: `)).toBe(true);
  if (reason) expect(error.message).toMatch(reason);
  return error;
}

const F = 'bad.safetensors';

describe('safetensors round trips', () => {
  it('writes F32 sorted by name with an 8-byte aligned header and reads it back exactly', () => {
    const path = join(dir, 'f32.safetensors');
    const tensors = { 'b.weight': tensor([2, 3]), a: tensor([4]), '10': tensor([]), '2': tensor([0, 5]) };
    writeSafetensors(path, tensors, { metadata: { format: 'pt', note: 'x' } });

    const bytes = new Uint8Array(readFileSync(path));
    const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(header.trimEnd().endsWith('}')).toBe(true);
    const json = JSON.parse(header);
    // Offsets follow name order ('10' < '2' < 'a' < 'b.weight'), even for integer-like names.
    expect(json['10'].data_offsets).toEqual([0, 4]);
    expect(json['2'].data_offsets).toEqual([4, 4]);
    expect(json.a.data_offsets).toEqual([4, 20]);
    expect(json['b.weight'].data_offsets).toEqual([20, 44]);
    expect(header.indexOf('__metadata__')).toBe(2);

    const read = readSafetensors(path);
    expect([...read.tensors.keys()]).toEqual(['10', '2', 'a', 'b.weight']);
    for (const [name, expected] of Object.entries(tensors)) {
      expect(read.tensors.get(name)!.shape).toEqual(expected.shape);
      expect(read.tensors.get(name)!.data).toEqual(expected.data);
      expect(read.dtypes.get(name)).toBe('F32');
    }
    expect(read.metadata).toEqual({ format: 'pt', note: 'x' });
    expect(parseSafetensors(bytes, path)).toEqual(read);
  });

  it('accepts a Map and no metadata', () => {
    const bytes = encodeSafetensors(new Map([['w', tensor([3])]]));
    const read = parseSafetensors(bytes, 'm.safetensors');
    expect(read.metadata).toEqual({});
    expect(read.tensors.get('w')!.data).toEqual(tensor([3]).data);
  });

  it('writes F16 and reads it back within half precision', () => {
    const path = join(dir, 'f16.safetensors');
    const values = [0, -0, 1, -2.5, 0.1, 1 / 3, 1e-3, -123.456, 65504, 6e-8, 1e-5];
    writeSafetensors(path, { x: tensor([values.length], values) }, { dtype: 'F16', metadata: { dtype: 'half' } });
    expect(readFileSync(path).length).toBe(8 + Number(readFileSync(path).readBigUInt64LE(0)) + 2 * values.length);
    const read = readSafetensors(path);
    expect(read.dtypes.get('x')).toBe('F16');
    expect(read.metadata).toEqual({ dtype: 'half' });
    const got = read.tensors.get('x')!.data;
    values.forEach((value, i) => {
      // Normal halves keep 11 significant bits; subnormals have an absolute step of 2^-24.
      expect(Math.abs(got[i] - value)).toBeLessThanOrEqual(Math.max(Math.abs(value) * 2 ** -11, 2 ** -25));
    });
    expect(Object.is(got[1], -0)).toBe(true);
  });

  it('reads BF16 and F64 built by hand', () => {
    // bf16 is the top half of an f32: 1.0 = 0x3f80, -2.5 = 0xc020, 3.140625 = 0x4049, -inf = 0xff80
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc020, 0x4049, 0xff80]).buffer);
    const f64 = new Uint8Array(new Float64Array([0.5, -1e10]).buffer);
    const data = new Uint8Array([...bf16, ...f64]);
    const bytes = build(
      {
        __metadata__: { source: 'hand' },
        w: { dtype: 'BF16', shape: [2, 2], data_offsets: [0, 8] },
        d: { dtype: 'F64', shape: [2], data_offsets: [8, 24] },
      },
      data,
    );
    const read = parseSafetensors(bytes, 'hand.safetensors');
    expect(read.tensors.get('w')).toEqual({ shape: [2, 2], data: new Float32Array([1, -2.5, 3.140625, -Infinity]) });
    expect(read.tensors.get('d')!.data).toEqual(new Float32Array([0.5, -1e10]));
    expect(read.dtypes).toEqual(new Map([['d', 'F64'], ['w', 'BF16']]));
    expect(read.metadata).toEqual({ source: 'hand' });
  });

  it('reads the F32, F16 and BF16 fixtures', () => {
    for (const dtype of ['F32', 'F16', 'BF16']) {
      const read = readSafetensors(join(FIXTURES, `tiny_${dtype.toLowerCase()}`, 'model.safetensors'));
      expect(read.tensors.size).toBeGreaterThan(0);
      expect(new Set(read.dtypes.values())).toEqual(new Set([dtype]));
      expect(read.metadata.format).toBe('pt');
      for (const t of read.tensors.values()) expect(t.data.every(Number.isFinite)).toBe(true);
    }
  });

  it('does not alias the input bytes', () => {
    const bytes = encodeSafetensors({ w: tensor([2], [1, 2]) });
    const read = parseSafetensors(bytes, 'a.safetensors');
    bytes.fill(0, bytes.length - 8);
    expect(read.tensors.get('w')!.data).toEqual(new Float32Array([1, 2]));
  });
});

describe('float16 conversion', () => {
  /** Reference by arithmetic rather than bits. */
  function halfValue(h: number): number {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
    if (exponent === 0) return sign * mantissa * 2 ** -24;
    return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  const f32 = new Float32Array(1);
  const bitsOf = (value: number) => {
    f32[0] = value;
    return new Uint32Array(f32.buffer)[0];
  };

  it('decodes every half exactly, including subnormals, infinities and NaN', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const expected = halfValue(h);
      const got = float16ToNumber(h);
      if (Number.isNaN(expected) ? !Number.isNaN(got) : !Object.is(got, expected)) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  it('encodes every half back to itself and rounds midpoints to even', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const bits = float16BitsToFloat32Bits(h);
      if (Number.isNaN(halfValue(h))) {
        if (!Number.isNaN(halfValue(float32BitsToFloat16Bits(bits)))) wrong.push(h);
        continue;
      }
      if (float32BitsToFloat16Bits(bits) !== h) wrong.push(h);
      // Exactly between h and the next half up (same sign): ties go to the even one.
      if ((h & 0x7fff) < 0x7bff) {
        const midpoint = (halfValue(h) + halfValue(h + 1)) / 2;
        if (float32BitsToFloat16Bits(bitsOf(midpoint)) !== (h & 1 ? h + 1 : h)) wrong.push(h);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('overflows to infinity and underflows to signed zero', () => {
    expect(float32BitsToFloat16Bits(bitsOf(65520))).toBe(0x7c00); // midpoint of 65504 and 2^16 -> even -> inf
    expect(float32BitsToFloat16Bits(bitsOf(65519))).toBe(0x7bff);
    expect(float32BitsToFloat16Bits(bitsOf(1e6))).toBe(0x7c00);
    expect(float32BitsToFloat16Bits(bitsOf(-1e-30))).toBe(0x8000);
    expect(float32BitsToFloat16Bits(bitsOf(2 ** -25))).toBe(0); // half the smallest subnormal -> even -> 0
    expect(float32BitsToFloat16Bits(bitsOf(2 ** -25 * 1.01))).toBe(1);
  });
});

describe('safetensors rejects bad files', () => {
  const valid = encodeSafetensors({ a: tensor([2]), b: tensor([3]) }, { metadata: { k: 'v' } });

  it('a file shorter than 8 bytes', () => {
    expectFormatError(() => parseSafetensors(new Uint8Array(5), F), F, undefined, /5 bytes, too short/);
    const path = join(dir, 'short.safetensors');
    writeFileSync(path, new Uint8Array(3));
    expectFormatError(() => readSafetensors(path), path, undefined, /3 bytes/);
  });

  it('a valid file cut short in its data (names the last tensor)', () => {
    const cut = valid.slice(0, valid.length - 3);
    expectFormatError(() => parseSafetensors(cut, F), F, 'b', /run past the 17-byte data buffer/);
    const path = join(dir, 'cut.safetensors');
    writeFileSync(path, cut);
    expectFormatError(() => readSafetensors(path), path, 'b', /run past/);
  });

  it('a valid file cut short in its header', () => {
    expectFormatError(() => parseSafetensors(valid.slice(0, 20), F), F, undefined, /header length \d+ runs past the end of the 20-byte file/);
  });

  it('a header length past the end of the file, checked before allocating', () => {
    const huge = build({}, new Uint8Array(0), 2n ** 63n);
    expectFormatError(() => parseSafetensors(huge, F), F, undefined, /header length 9223372036854775808 runs past/);
    const path = join(dir, 'huge.safetensors');
    writeFileSync(path, build({}, new Uint8Array(0), 2n ** 64n - 1n));
    expectFormatError(() => readSafetensors(path), path, undefined, /runs past the end of the 10-byte file/);
  });

  it('a header that is not JSON, not UTF-8 or not an object', () => {
    expectFormatError(() => parseSafetensors(build('{"a": '), F), F, undefined, /header is not valid JSON/);
    const latin1 = build('{"a":1}');
    latin1[10] = 0xff;
    expectFormatError(() => parseSafetensors(latin1, F), F, undefined, /not valid JSON/);
    expectFormatError(() => parseSafetensors(build('[1, 2]'), F), F, undefined, /not a JSON object/);
    expectFormatError(() => parseSafetensors(build('null'), F), F, undefined, /not a JSON object/);
    expectFormatError(() => parseSafetensors(build({ w: 3 }), F), F, 'w', /entry is not an object/);
  });

  it('bad __metadata__', () => {
    expectFormatError(() => parseSafetensors(build({ __metadata__: [1] }), F), F, '__metadata__', /not an object/);
    expectFormatError(() => parseSafetensors(build({ __metadata__: { n: 1 } }), F), F, '__metadata__', /"n" is not a string/);
  });

  it('an unknown dtype', () => {
    const bytes = build({ w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8));
    expectFormatError(() => parseSafetensors(bytes, F), F, 'w', /unsupported dtype "I64" \(supported: F64, F32, F16, BF16\)/);
    expectFormatError(() => parseSafetensors(build({ w: { shape: [], data_offsets: [0, 0] } }), F), F, 'w', /unsupported dtype undefined/);
  });

  it('a shape that is not a list of non-negative integers', () => {
    for (const shape of [[-1], [1.5], '3', [2, 'x'], null]) {
      const bytes = build({ w: { dtype: 'F32', shape, data_offsets: [0, 4] } }, new Uint8Array(4));
      expectFormatError(() => parseSafetensors(bytes, F), F, 'w', /shape .* is not a list of non-negative integers/);
    }
  });

  it('data_offsets that are malformed, out of range or reversed', () => {
    const data = new Uint8Array(16);
    const withOffsets = (data_offsets: unknown) => build({ w: { dtype: 'F32', shape: [2], data_offsets } }, data);
    expectFormatError(() => parseSafetensors(withOffsets([0, 1000]), F), F, 'w', /\[0, 1000\] run past the 16-byte data buffer/);
    expectFormatError(() => parseSafetensors(withOffsets([8, 0]), F), F, 'w', /end before they begin/);
    expectFormatError(() => parseSafetensors(withOffsets([0]), F), F, 'w', /not a pair of non-negative integers/);
    expectFormatError(() => parseSafetensors(withOffsets([-8, 0]), F), F, 'w', /not a pair/);
  });

  it('a byte count that does not match the shape', () => {
    const bytes = build({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expectFormatError(() => parseSafetensors(bytes, F), F, 'w', /shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] hold 8/);
    const half = build({ h: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 16] } }, new Uint8Array(16));
    expectFormatError(() => parseSafetensors(half, F), F, 'h', /needs 8 bytes/);
  });

  it('overlapping tensors', () => {
    const bytes = build(
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
      new Uint8Array(12),
    );
    expectFormatError(() => parseSafetensors(bytes, F), F, 'b', /overlap tensor "a"/);
    const same = build(
      { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } },
      new Uint8Array(4),
    );
    expectFormatError(() => parseSafetensors(same, F), F, 'b', /overlap/);
  });

  it('holes between tensors or at the end of the buffer', () => {
    const gap = build(
      { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } },
      new Uint8Array(12),
    );
    expectFormatError(() => parseSafetensors(gap, F), F, 'b', /4 unused bytes before/);
    const leadingGap = build({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8));
    expectFormatError(() => parseSafetensors(leadingGap, F), F, 'a', /4 unused bytes before/);
    const tail = build({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(6));
    expectFormatError(() => parseSafetensors(tail, F), F, undefined, /2 unused bytes at the end/);
  });

  it('accepts empty tensors sharing an offset', () => {
    const bytes = build(
      { e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } },
      new Uint8Array(4),
    );
    expect(parseSafetensors(bytes, F).tensors.get('e')).toEqual({ shape: [0, 3], data: new Float32Array(0) });
  });

  it('keeps the message on one line for hostile tensor names', () => {
    const bytes = build({ 'evil\nname': { dtype: 'Q4', shape: [], data_offsets: [0, 0] } });
    const error = expectFormatError(() => parseSafetensors(bytes, F), F, 'evil\nname');
    expect(error.message).toBe(`${F}: evil name: unsupported dtype "Q4" (supported: F64, F32, F16, BF16)`);
  });
});

describe('safetensors writer input checks', () => {
  it('rejects mismatched data, reserved names, bad dtypes and metadata', () => {
    expect(() => encodeSafetensors({ w: { shape: [3], data: new Float32Array(2) } })).toThrow(RangeError);
    expect(() => encodeSafetensors({ __metadata__: tensor([1]) })).toThrow(/reserved/);
    expect(() => encodeSafetensors({ w: tensor([1]) }, { dtype: 'BF16' as 'F16' })).toThrow(/cannot write dtype BF16/);
    expect(() => encodeSafetensors({ w: tensor([1]) }, { metadata: { n: 1 as unknown as string } })).toThrow(/not a string/);
  });
});

describe('writeFileAtomic', () => {
  const entries = (sub: string) => readdirSync(join(dir, sub)).sort();

  it('creates and replaces files, leaving no temp files', () => {
    mkdirSync(join(dir, 'plain'));
    const path = join(dir, 'plain', 'out.txt');
    writeFileAtomic(path, 'first');
    writeFileAtomic(path, new Uint8Array([104, 105]));
    expect(readFileSync(path, 'utf8')).toBe('hi');
    expect(entries('plain')).toEqual(['out.txt']);
  });

  it('keeps the old file when the encoder throws before writing', () => {
    mkdirSync(join(dir, 'encoder'));
    const path = join(dir, 'encoder', 'model.safetensors');
    writeSafetensors(path, { w: tensor([2]) });
    const before = readFileSync(path);
    expect(() => writeSafetensors(path, { w: { shape: [5], data: new Float32Array(2) } })).toThrow(RangeError);
    expect(readFileSync(path)).toEqual(before);
    expect(entries('encoder')).toEqual(['model.safetensors']);
  });

  it('keeps the old file and removes the temp file when writing fails midway', () => {
    mkdirSync(join(dir, 'midway'));
    const path = join(dir, 'midway', 'model.safetensors');
    writeSafetensors(path, { w: tensor([2]) });
    const before = readFileSync(path);
    // The temp file exists by the time the value is found to be unserialisable.
    expect(() => writeFileAtomic(path, { not: 'bytes' } as unknown as Uint8Array)).toThrow(TypeError);
    expect(readFileSync(path)).toEqual(before);
    expect(entries('midway')).toEqual(['model.safetensors']);
  });

  it('removes the temp file when the final rename fails', () => {
    mkdirSync(join(dir, 'rename', 'target'), { recursive: true });
    writeFileSync(join(dir, 'rename', 'target', 'keep'), 'x');
    expect(() => writeFileAtomic(join(dir, 'rename', 'target'), 'data')).toThrow();
    expect(entries('rename')).toEqual(['target']);
    expect(readFileSync(join(dir, 'rename', 'target', 'keep'), 'utf8')).toBe('x');
  });

  it('async variant: same guarantees', async () => {
    mkdirSync(join(dir, 'async'));
    const path = join(dir, 'async', 'out.bin');
    await writeFileAtomicAsync(path, new Uint8Array([1, 2, 3]));
    await expect(writeFileAtomicAsync(path, 42 as unknown as string)).rejects.toThrow(TypeError);
    await expect(writeFileAtomicAsync(join(dir, 'async'), 'x')).rejects.toThrow();
    expect(readFileSync(path)).toEqual(Buffer.from([1, 2, 3]));
    expect(entries('async')).toEqual(['out.bin']);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]); // the failed rename's temp file
  });

  it('fails cleanly when the directory does not exist', () => {
    expect(() => writeFileAtomic(join(dir, 'missing', 'x'), 'x')).toThrow(/ENOENT/);
  });
});
