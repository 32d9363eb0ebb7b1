// Our own .npy parser rather than npyjs (v1.2.0, installed): npyjs never compares the data size
// with the header's shape (it views the rest of the buffer, so truncated or padded files load
// silently with the wrong element count), does not check that the header length fits in the
// file, reports fortran_order but leaves the data column-major, throws bare RangeErrors on unaligned or
// short data, and its messages do not name the file. The format is small enough to parse here.
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { writeFileAtomic } from './atomic.js';
import { FileFormatError, withFile } from './errors.js';
import { float16BitsToFloat32Bits } from './safetensors.js';
import { numel, type HostTensor } from './types.js';

export type NpyData =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

export interface NpyArray {
  /** The descr as stored in the file, e.g. '<f4', '|u1'; `data` may be wider (see parseNpy). */
  dtype: string;
  shape: number[];
  data: NpyData;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const DATA_ALIGNMENT = 64;

/** Element size and a decoder from a fresh, aligned buffer. */
const DTYPES: Record<string, { bytes: number; decode: (buffer: ArrayBuffer, count: number) => NpyData }> = {
  f4: { bytes: 4, decode: (b, n) => new Float32Array(b, 0, n) },
  f8: { bytes: 8, decode: (b, n) => new Float64Array(b, 0, n) },
  f2: { bytes: 2, decode: (b, n) => halvesToFloat32(new Uint16Array(b, 0, n)) },
  i8: { bytes: 8, decode: (b, n) => narrowInt64(new BigInt64Array(b, 0, n)) },
  u8: { bytes: 8, decode: (b, n) => narrowUint64(new BigUint64Array(b, 0, n)) },
  i4: { bytes: 4, decode: (b, n) => new Int32Array(b, 0, n) },
  u4: { bytes: 4, decode: (b, n) => new Uint32Array(b, 0, n) },
  i2: { bytes: 2, decode: (b, n) => new Int16Array(b, 0, n) },
  u2: { bytes: 2, decode: (b, n) => new Uint16Array(b, 0, n) },
  i1: { bytes: 1, decode: (b, n) => new Int8Array(b, 0, n) },
  u1: { bytes: 1, decode: (b, n) => new Uint8Array(b, 0, n) },
  b1: { bytes: 1, decode: (b, n) => new Uint8Array(b, 0, n) },
};

/** Kinds numpy writes that we refuse, with what they are, for the error message. */
const REFUSED_KINDS: Record<string, string> = {
  O: 'object arrays hold pickled Python objects',
  c: 'complex arrays have no real-valued meaning here',
  U: 'unicode string arrays hold text',
  S: 'byte string arrays hold text',
  V: 'void (raw or structured) arrays have no numeric layout',
  M: 'datetime arrays hold dates',
  m: 'timedelta arrays hold durations',
};

/**
 * Parses a NumPy .npy file (format versions 1.0, 2.0, 3.0) of any byte order ('<', '>', '|', '=')
 * and either memory order: big-endian data is byte-swapped and `fortran_order: True` data
 * (what np.save writes for a transposed array) is transposed to C order, so `data` is always
 * row-major in native order. '<f2' is widened to Float32Array and '<i8'/'<u8' narrowed to
 * Int32Array when every value fits (else BigInt64Array/BigUint64Array); `dtype` still reports
 * the stored descr. `name` (an npz member) goes into error messages after the file.
 */
export function parseNpy(bytes: Uint8Array, file: string, name?: string): NpyArray {
  const fail = (reason: string) => new FileFormatError(file, reason, name);
  if (bytes.length < MAGIC.length || MAGIC.some((byte, i) => bytes[i] !== byte)) throw fail('not a .npy file (bad magic)');
  if (bytes.length < 10) throw fail(`file ends inside the preamble (${bytes.length} bytes)`);
  const major = bytes[6];
  if (major < 1 || major > 3) throw fail(`unsupported .npy format version ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerStart = major === 1 ? 10 : 12;
  if (bytes.length < headerStart) throw fail(`file ends inside the preamble (${bytes.length} bytes)`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) throw fail(`header length ${headerLength} runs past the end of the ${bytes.length}-byte file`);

  const headerText = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const { descr, shape, fortranOrder } = parseHeader(headerText, fail);
  const byteOrder = descr[0];
  const kind = descr.slice(1);
  const dtype = DTYPES[kind];
  if (!'<>|='.includes(byteOrder) || !Object.hasOwn(DTYPES, kind)) {
    const refused = REFUSED_KINDS[kind[0]] ?? REFUSED_KINDS[descr[0]];
    throw fail(`unsupported dtype ${descr}${refused ? ` (${refused})` : ''}; supported: ${Object.keys(DTYPES).join(', ')} in any byte order`);
  }
  // '=' is the writer's native order, which numpy spells out as '<' or '>' on save; take it as ours.
  const bigEndian = byteOrder === '>' || (byteOrder === '=' && endianness() === 'BE');

  const expectedBytes = numel(shape) * dtype.bytes;
  const actualBytes = bytes.length - dataStart;
  if (actualBytes !== expectedBytes) {
    const problem = actualBytes < expectedBytes ? 'truncated' : 'trailing bytes';
    throw fail(`${problem}: shape ${pythonTuple(shape)} of ${descr} needs ${expectedBytes} data bytes, file has ${actualBytes}`);
  }
  // slice() copies into a fresh buffer at offset 0, so typed-array views are aligned and own their data.
  // Copy via the Uint8Array constructor: on a Node Buffer, slice() is a view of the whole pool.
  const raw = new Uint8Array(bytes.subarray(dataStart));
  if (bigEndian !== (endianness() === 'BE')) swapBytes(raw, dtype.bytes);
  const data = dtype.decode(raw.buffer, numel(shape));
  return { dtype: descr, shape, data: fortranOrder ? fortranToC(data, shape) : data };
}

/** The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
function parseHeader(text: string, fail: (reason: string) => FileFormatError): { descr: string; shape: number[]; fortranOrder: boolean } {
  const body = text.trim();
  if (!body.startsWith('{') || !body.endsWith('}')) throw fail('header is not a Python dict literal');
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(body)?.[1];
  if (descr === undefined) throw fail("header has no string 'descr' (structured dtypes are not supported)");
  const fortranOrder = /['"]fortran_order['"]\s*:\s*(True|False)\b/.exec(body)?.[1];
  if (fortranOrder === undefined) throw fail("header has no 'fortran_order'");
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(body)?.[1];
  if (shapeText === undefined) throw fail("header has no 'shape' tuple");
  const dims = shapeText.split(',').map((dim) => dim.trim());
  if (dims.at(-1) === '') dims.pop(); // trailing comma, as in (5,)
  if (!dims.every((dim) => /^\d+L?$/.test(dim))) throw fail(`shape (${shapeText}) is not a tuple of non-negative integers`);
  const shape = dims.map((dim) => Number.parseInt(dim, 10));
  if (!shape.every(Number.isSafeInteger)) throw fail(`shape (${shapeText}) is too large`);
  return { descr, shape, fortranOrder: fortranOrder === 'True' };
}

export function readNpy(path: string): NpyArray {
  const buffer = withFile(path, () => readFileSync(path));
  return parseNpy(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), path);
}

/** Encodes float32 ('<f4') or int32 ('<i4') data as a version 1.0 .npy (2.0 if the header is huge). */
export function encodeNpy(array: HostTensor | { shape: number[]; data: Int32Array }): Uint8Array {
  const { shape, data } = array;
  const descr = data instanceof Float32Array ? '<f4' : data instanceof Int32Array ? '<i4' : undefined;
  if (!descr) throw new TypeError('encodeNpy: data must be a Float32Array or Int32Array');
  if (!Array.isArray(shape) || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
    throw new TypeError(`encodeNpy: invalid shape ${JSON.stringify(shape)}`);
  }
  if (numel(shape) !== data.length) throw new RangeError(`encodeNpy: ${data.length} values do not fill shape [${shape.join(', ')}]`);

  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${pythonTuple(shape)}, }`;
  const major = dict.length + 1 + 10 > 0xffff ? 2 : 1;
  const headerStart = major === 1 ? 10 : 12;
  // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
  const headerLength = Math.ceil((headerStart + dict.length + 1) / DATA_ALIGNMENT) * DATA_ALIGNMENT - headerStart;
  const header = `${dict.padEnd(headerLength - 1, ' ')}\n`;

  const out = new Uint8Array(headerStart + headerLength + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerLength, true);
  else view.setUint32(8, headerLength, true);
  for (let i = 0; i < header.length; i++) out[headerStart + i] = header.charCodeAt(i); // ASCII only
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), headerStart + headerLength);
  return out;
}

export function writeNpy(path: string, array: HostTensor | { shape: number[]; data: Int32Array }): void {
  writeFileAtomic(path, encodeNpy(array));
}

/**
 * Narrows a parsed array to a float32 HostTensor, or throws e.g.
 * `x.npy: input: expected float32 array of rank 4 [B,3,H,W], got <f8 of shape [2, 3]`.
 * '<f2' data (already widened) is accepted; `layout` only decorates the message.
 */
export function expectFloat32(array: NpyArray, file: string, name: string, rank?: number, layout?: string): HostTensor {
  const { data, shape, dtype } = array;
  if (data instanceof Float32Array && (rank === undefined || shape.length === rank)) return { shape, data };
  const wanted = `float32 array${rank === undefined ? '' : ` of rank ${rank}`}${layout ? ` ${layout}` : ''}`;
  throw new FileFormatError(file, `expected ${wanted}, got ${dtype} of shape [${shape.join(', ')}]`, name);
}

/** As Python writes a shape: (), (5,), (2, 3). */
function pythonTuple(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** Reverses the byte order of every `width`-byte element in place. */
function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let start = 0; start < bytes.length; start += width) {
    for (let lo = start, hi = start + width - 1; lo < hi; lo++, hi--) {
      const byte = bytes[lo];
      bytes[lo] = bytes[hi];
      bytes[hi] = byte;
    }
  }
}

/**
 * Column-major (first index fastest) to row-major. Walks the output in C order with an odometer
 * over the index, keeping the matching column-major offset in step.
 */
function fortranToC<T extends NpyData>(data: T, shape: readonly number[]): T {
  if (shape.filter((dim) => dim > 1).length < 2) return data; // one real axis: both orders coincide
  const rank = shape.length;
  const fortranStrides = new Array<number>(rank);
  for (let axis = 0, stride = 1; axis < rank; axis++) {
    fortranStrides[axis] = stride;
    stride *= shape[axis];
  }
  const out = new (data.constructor as new (length: number) => T)(data.length);
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  const last = rank - 1;
  const lastDim = shape[last];
  const lastStride = fortranStrides[last];
  for (let target = 0; target < data.length; ) {
    // the innermost axis as a tight loop, then carry into the outer axes
    for (let i = 0; i < lastDim; i++, target++) out[target] = data[source + i * lastStride];
    for (let axis = last - 1; axis >= 0; axis--) {
      index[axis]++;
      source += fortranStrides[axis];
      if (index[axis] < shape[axis]) break;
      source -= index[axis] * fortranStrides[axis];
      index[axis] = 0;
    }
  }
  return out;
}

function halvesToFloat32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) outBits[i] = float16BitsToFloat32Bits(halves[i]);
  return out;
}

/** uint64 as Int32Array when every value fits in int32, as for int64. */
function narrowUint64(values: BigUint64Array): Int32Array | BigUint64Array {
  const max = BigInt(0x7fffffff);
  for (const value of values) if (value > max) return values;
  return Int32Array.from(values, (value) => Number(value));
}

/** int64 (NumPy's default integer) as Int32Array when every value fits, which is the usual case for labels. */
function narrowInt64(values: BigInt64Array): Int32Array | BigInt64Array {
  const min = BigInt(-0x80000000);
  const max = BigInt(0x7fffffff);
  for (const value of values) if (value < min || value > max) return values;
  return Int32Array.from(values, (value) => Number(value));
}
