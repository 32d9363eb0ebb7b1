import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { FileFormatError, withFile } from './errors.js';
import { numel, type HostTensor } from './types.js';

// Layout: u64 LE header length N, N bytes of JSON header, then the data buffer that the
// header's data_offsets index into. Every length below is checked against the file size
// before anything is allocated or decoded from it.

const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2 } as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

const LENGTH_PREFIX_BYTES = 8;
/** The reference implementation's cap on the JSON header. */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsFile {
  /** Every tensor converted to float32, in name order. */
  tensors: Map<string, HostTensor>;
  /** The dtype each tensor was stored as. */
  dtypes: Map<string, string>;
  metadata: Record<string, string>;
}

export interface SafetensorsWriteOptions {
  metadata?: Record<string, string>;
  /** Storage dtype (default F32); F16 rounds to nearest even. */
  dtype?: 'F32' | 'F16';
}

interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

// ---- reading ----

export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const headerLength = checkHeaderLength(bytes, bytes.length, file);
  const dataStart = LENGTH_PREFIX_BYTES + headerLength;
  const header = parseHeader(bytes.subarray(LENGTH_PREFIX_BYTES, dataStart), bytes.length - dataStart, file);
  // slice() copies each tensor into a fresh, aligned buffer that does not alias the input.
  // Copy through the Uint8Array constructor: Buffer#slice (a Node Buffer is a Uint8Array) does not copy.
  return decodeAll(header, (entry) => new Uint8Array(bytes.subarray(dataStart + entry.begin, dataStart + entry.end)));
}

/** Reads the header first and then each tensor, so the file is never held in memory twice. */
export function readSafetensors(path: string): SafetensorsFile {
  const fd = withFile(path, () => openSync(path, 'r'));
  try {
    const fileSize = fstatSync(fd).size;
    const prefix = readExactly(fd, 0, Math.min(LENGTH_PREFIX_BYTES, fileSize), path);
    const headerLength = checkHeaderLength(prefix, fileSize, path);
    const dataStart = LENGTH_PREFIX_BYTES + headerLength;
    const header = parseHeader(readExactly(fd, LENGTH_PREFIX_BYTES, headerLength, path), fileSize - dataStart, path);
    return decodeAll(header, (entry) => readExactly(fd, dataStart + entry.begin, entry.end - entry.begin, path, entry.name));
  } finally {
    closeSync(fd);
  }
}

function checkHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < LENGTH_PREFIX_BYTES) {
    throw new FileFormatError(file, `file is ${fileSize} bytes, too short for the 8-byte header length`);
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_PREFIX_BYTES).getBigUint64(0, true);
  if (length > BigInt(fileSize - LENGTH_PREFIX_BYTES)) {
    throw new FileFormatError(file, `header length ${length} runs past the end of the ${fileSize}-byte file`);
  }
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new FileFormatError(file, `header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  return Number(length);
}

function parseHeader(headerBytes: Uint8Array, dataLength: number, file: string): { entries: TensorEntry[]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw new FileFormatError(file, `header is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!isObject(header)) throw new FileFormatError(file, 'header is not a JSON object');

  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') metadata = parseMetadata(info, file);
    else entries.push(parseEntry(name, info, dataLength, file));
  }
  checkContiguous(entries, dataLength, file);
  return { entries, metadata };
}

function parseMetadata(info: unknown, file: string): Record<string, string> {
  if (!isObject(info)) throw new FileFormatError(file, '__metadata__ is not an object', '__metadata__');
  for (const [key, value] of Object.entries(info)) {
    if (typeof value !== 'string') throw new FileFormatError(file, `__metadata__ value for ${JSON.stringify(key)} is not a string`, '__metadata__');
  }
  return Object.fromEntries(Object.entries(info)) as Record<string, string>;
}

function parseEntry(name: string, info: unknown, dataLength: number, file: string): TensorEntry {
  const fail = (reason: string) => new FileFormatError(file, reason, name);
  if (!isObject(info)) throw fail('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = info;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw fail(`unsupported dtype ${preview(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) throw fail(`shape ${preview(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    throw fail(`data_offsets ${preview(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw fail(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLength) throw fail(`data_offsets [${begin}, ${end}] run past the ${dataLength}-byte data buffer`);
  const expectedBytes = numel(shape) * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (expectedBytes !== end - begin) {
    throw fail(`shape [${shape.join(', ')}] of ${dtype} needs ${expectedBytes} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end };
}

/** Like the reference implementation: tensors must tile the data buffer with no overlap and no hole. */
function checkContiguous(entries: TensorEntry[], dataLength: number, file: string): void {
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expectedBegin = 0;
  let previous: string | undefined;
  for (const entry of byOffset) {
    if (entry.begin < expectedBegin) {
      throw new FileFormatError(file, `data_offsets [${entry.begin}, ${entry.end}] overlap tensor ${JSON.stringify(previous)}`, entry.name);
    }
    if (entry.begin > expectedBegin) {
      throw new FileFormatError(file, `${entry.begin - expectedBegin} unused bytes before this tensor's data_offsets [${entry.begin}, ${entry.end}]`, entry.name);
    }
    expectedBegin = entry.end;
    previous = entry.name;
  }
  if (expectedBegin !== dataLength) {
    throw new FileFormatError(file, `${dataLength - expectedBegin} unused bytes at the end of the data buffer`);
  }
}

function decodeAll(
  header: { entries: TensorEntry[]; metadata: Record<string, string> },
  fetchBytes: (entry: TensorEntry) => Uint8Array,
): SafetensorsFile {
  const tensors = new Map<string, HostTensor>();
  const dtypes = new Map<string, string>();
  for (const entry of [...header.entries].sort((a, b) => compareNames(a.name, b.name))) {
    tensors.set(entry.name, { shape: entry.shape, data: decodeToFloat32(fetchBytes(entry), entry.dtype) });
    dtypes.set(entry.name, entry.dtype);
  }
  return { tensors, dtypes, metadata: header.metadata };
}

/** `raw` must own a fresh buffer starting at offset 0 (so typed-array views are aligned). Little-endian hosts, like tfjs. */
function decodeToFloat32(raw: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const count = raw.length / DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'F32':
      return new Float32Array(raw.buffer, 0, count);
    case 'F64':
      return new Float32Array(new Float64Array(raw.buffer, 0, count));
    case 'F16':
    case 'BF16': {
      const halves = new Uint16Array(raw.buffer, 0, count);
      const out = new Float32Array(count);
      const outBits = new Uint32Array(out.buffer);
      if (dtype === 'F16') for (let i = 0; i < count; i++) outBits[i] = float16BitsToFloat32Bits(halves[i]);
      else for (let i = 0; i < count; i++) outBits[i] = halves[i] << 16; // bf16 is the top half of an f32
      return out;
    }
  }
}

function readExactly(fd: number, position: number, length: number, file: string, tensor?: string): Uint8Array {
  const out = new Uint8Array(length);
  for (let done = 0; done < length; ) {
    const chunk = Math.min(length - done, 1 << 30); // readSync takes at most 2 GiB per call
    const read = readSync(fd, out, done, chunk, position + done);
    if (read === 0) throw new FileFormatError(file, `file ended at byte ${position + done} while reading ${length} bytes`, tensor);
    done += read;
  }
  return out;
}

// ---- writing ----

export function encodeSafetensors(tensors: Map<string, HostTensor> | Record<string, HostTensor>, opts: SafetensorsWriteOptions = {}): Uint8Array {
  const dtype = opts.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16') throw new TypeError(`encodeSafetensors: cannot write dtype ${String(dtype)}`);
  const entries = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).sort(([a], [b]) => compareNames(a, b));

  // Built by hand: JSON.stringify of an object would move integer-like names to the front.
  const headerParts: string[] = [];
  if (opts.metadata) headerParts.push(`"__metadata__":${JSON.stringify(checkedMetadata(opts.metadata))}`);
  let dataLength = 0;
  for (const [name, tensor] of entries) {
    checkWritable(name, tensor);
    const begin = dataLength;
    dataLength += tensor.data.length * DTYPE_BYTES[dtype];
    headerParts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape: tensor.shape, data_offsets: [begin, dataLength] })}`);
  }
  const headerJson = new TextEncoder().encode(`{${headerParts.join(',')}}`);
  const headerLength = Math.ceil(headerJson.length / 8) * 8; // spaces pad the data to 8-byte alignment

  const out = new Uint8Array(LENGTH_PREFIX_BYTES + headerLength + dataLength);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(headerJson, LENGTH_PREFIX_BYTES);
  out.fill(0x20, LENGTH_PREFIX_BYTES + headerJson.length, LENGTH_PREFIX_BYTES + headerLength);
  let position = LENGTH_PREFIX_BYTES + headerLength;
  for (const [, { data }] of entries) {
    if (dtype === 'F32') {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
      position += data.byteLength;
    } else {
      const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
      for (let i = 0; i < bits.length; i++, position += 2) view.setUint16(position, float32BitsToFloat16Bits(bits[i]), true);
    }
  }
  return out;
}

export function writeSafetensors(
  path: string,
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  opts: SafetensorsWriteOptions = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, opts));
}

function checkWritable(name: string, tensor: HostTensor): void {
  if (name === '__metadata__') throw new TypeError('encodeSafetensors: "__metadata__" is reserved and cannot name a tensor');
  if (!(tensor?.data instanceof Float32Array)) throw new TypeError(`encodeSafetensors: tensor ${JSON.stringify(name)} data is not a Float32Array`);
  if (!Array.isArray(tensor.shape) || !tensor.shape.every(isNonNegativeInteger)) {
    throw new TypeError(`encodeSafetensors: tensor ${JSON.stringify(name)} has an invalid shape ${preview(tensor.shape)}`);
  }
  if (numel(tensor.shape) !== tensor.data.length) {
    throw new RangeError(`encodeSafetensors: tensor ${JSON.stringify(name)} has ${tensor.data.length} values but shape [${tensor.shape.join(', ')}]`);
  }
}

function checkedMetadata(metadata: Record<string, string>): Record<string, string> {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new TypeError(`encodeSafetensors: metadata value for ${JSON.stringify(key)} is not a string`);
  }
  return metadata;
}

// ---- float16 ----

/** IEEE half-precision bits to single-precision bits: exact, including subnormals, infinities and NaN payloads. */
export function float16BitsToFloat32Bits(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exponent = (half >> 10) & 0x1f;
  let mantissa = half & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0; // inf / nan
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0; // rebias 15 -> 127
  if (mantissa === 0) return sign >>> 0; // signed zero
  // Subnormal (mantissa * 2^-24): shift until the implicit bit appears, lowering the exponent as we go.
  let biased = 113; // 127 - 14
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    biased--;
  }
  return (sign | (biased << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

/** Single-precision bits to half-precision bits, rounding to nearest even; overflow gives infinity. */
export function float32BitsToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0); // keep NaN a NaN
  const halfExponent = exponent - 112; // rebias 127 -> 15
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign; // below half the smallest subnormal
    const shift = 14 - halfExponent; // subnormal: value = (mantissa | implicit bit) >> shift, in units of 2^-24
    return sign | roundShift(mantissa | 0x800000, shift); // a carry into 0x400 correctly yields the smallest normal
  }
  // A carry out of the mantissa bumps the exponent, up to infinity: both correct.
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return remainder > half || (remainder === half && (kept & 1) === 1) ? kept + 1 : kept;
}

const f32Scratch = new Float32Array(1);
const f32ScratchBits = new Uint32Array(f32Scratch.buffer);

/** A float16 bit pattern as a number. */
export function float16ToNumber(half: number): number {
  f32ScratchBits[0] = float16BitsToFloat32Bits(half);
  return f32Scratch[0];
}

// ---- helpers ----

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Untrusted values in messages: short and on one line. */
function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
