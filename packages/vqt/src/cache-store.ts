import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { float16BitsToFloat32Bits, float32BitsToFloat16Bits } from '@vqt/core';
import type { SpillDtype } from './config.js';

export interface RowStoreOptions {
  /** Bytes of rows held in memory before everything moves to disk. */
  budgetBytes: number;
  /** Parent of the spill directory (default: the OS temp directory). */
  dir?: string;
  spillDtype: SpillDtype;
  /** Leave the spill files in place on close (default: remove them). */
  keepFiles?: boolean;
}

/**
 * Fixed-size float32 rows per block (one row = one image's LN1 output, L x D), appended chunk by
 * chunk. Held in memory up to a byte budget; past it every row moves to one file per block and is
 * read back row by row with positioned reads, so only a batch's rows are ever in memory.
 */
export class RowStore {
  private rowCount = 0;
  /** In memory: per block, the appended chunks; chunkStarts[i] is chunk i's first row. */
  private chunks: Float32Array[][];
  private chunkStarts: number[] = [];
  private spillDir?: string;
  private writeFds?: number[];
  private readHandles?: FileHandle[];
  private finished = false;

  /** float32 values per row of each block. */
  readonly blockFloats: readonly number[];
  private readonly floatsPerRow: number;

  constructor(
    readonly depth: number,
    /** float32 values per row: one for every block, or each block's (an adapted model may change a block's token count). */
    rowFloats: number | readonly number[],
    readonly options: RowStoreOptions,
  ) {
    this.blockFloats = typeof rowFloats === 'number' ? Array.from({ length: depth }, () => rowFloats) : [...rowFloats];
    if (this.blockFloats.length !== depth) throw new Error(`RowStore: ${this.blockFloats.length} row sizes for ${depth} blocks`);
    this.floatsPerRow = this.blockFloats.reduce((a, b) => a + b, 0);
    this.chunks = Array.from({ length: depth }, () => []);
  }

  get rows(): number {
    return this.rowCount;
  }

  get spilled(): boolean {
    return this.spillDir !== undefined;
  }

  /** The spill directory, once rows have moved to disk. */
  get directory(): string | undefined {
    return this.spillDir;
  }

  get bytesPerStoredValue(): number {
    return this.spilled && this.options.spillDtype === 'float16' ? 2 : 4;
  }

  get memoryBytes(): number {
    return this.spilled ? 0 : this.rowCount * this.floatsPerRow * 4;
  }

  get diskBytes(): number {
    return this.spilled ? this.rowCount * this.floatsPerRow * this.bytesPerStoredValue : 0;
  }

  /** Appends `rows` rows to every block (perBlock[m] holds rows x blockFloats[m] values). */
  append(perBlock: Float32Array[], rows: number): void {
    if (this.finished) throw new Error('RowStore: append after finish');
    if (perBlock.length !== this.depth || perBlock.some((d, m) => d.length !== rows * this.blockFloats[m])) {
      throw new Error(`RowStore: expected ${this.depth} blocks of ${rows} x [${this.blockFloats.join(', ')}] values`);
    }
    const incoming = rows * this.floatsPerRow * 4;
    if (!this.spilled && this.memoryBytes + incoming > this.options.budgetBytes) this.spill();
    if (this.writeFds) {
      perBlock.forEach((data, m) => writeAll(this.writeFds![m], this.encode(data)));
    } else {
      this.chunkStarts.push(this.rowCount);
      perBlock.forEach((data, m) => this.chunks[m].push(data));
    }
    this.rowCount += rows;
  }

  /** Ends appending; spilled files are fsynced and renamed into place, then opened for reading. */
  async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    if (!this.writeFds) return;
    const handles: FileHandle[] = [];
    for (let m = 0; m < this.depth; m++) {
      const fd = this.writeFds[m];
      fsyncSync(fd);
      closeSync(fd);
      renameSync(this.tempFile(m), this.blockFile(m));
      handles.push(await open(this.blockFile(m), 'r'));
    }
    this.writeFds = undefined;
    this.readHandles = handles;
  }

  /** Copies the rows at `indices` of block m, in that order, into `out` (indices.length x blockFloats[m]). */
  async read(block: number, indices: ArrayLike<number>, out: Float32Array): Promise<void> {
    if (!this.finished) throw new Error('RowStore: read before finish');
    const n = this.blockFloats[block];
    for (let i = 0; i < indices.length; i++) {
      const row = indices[i];
      if (!(row >= 0 && row < this.rowCount)) throw new RangeError(`RowStore: row ${row} out of range [0, ${this.rowCount})`);
    }
    if (!this.readHandles) {
      for (let i = 0; i < indices.length; i++) {
        const chunk = this.chunkOf(indices[i]);
        const offset = (indices[i] - this.chunkStarts[chunk]) * n;
        out.set(this.chunks[block][chunk].subarray(offset, offset + n), i * n);
      }
      return;
    }
    const handle = this.readHandles[block];
    const valueBytes = this.bytesPerStoredValue;
    const rowBytes = n * valueBytes;
    if (valueBytes === 4) {
      const bytes = new Uint8Array(out.buffer, out.byteOffset, indices.length * rowBytes);
      await Promise.all(Array.from(indices, (row, i) => readExactly(handle, bytes, i * rowBytes, rowBytes, row * rowBytes)));
      return;
    }
    const halves = new Uint16Array(indices.length * n);
    const bytes = new Uint8Array(halves.buffer);
    await Promise.all(Array.from(indices, (row, i) => readExactly(handle, bytes, i * rowBytes, rowBytes, row * rowBytes)));
    decodeFloat16(halves, out);
  }

  async close(): Promise<void> {
    const handles = this.readHandles ?? [];
    this.readHandles = undefined;
    await Promise.all(handles.map((h) => h.close()));
    for (const fd of this.writeFds ?? []) closeSync(fd);
    this.writeFds = undefined;
    this.chunks = this.chunks.map(() => []);
    if (this.spillDir && !this.options.keepFiles) rmSync(this.spillDir, { recursive: true, force: true });
  }

  /** Moves every row held so far to one temp file per block; later appends go there directly. */
  private spill(): void {
    const parent = this.options.dir ?? tmpdir();
    mkdirSync(parent, { recursive: true });
    this.spillDir = mkdtempSync(join(parent, 'vqt-cache-'));
    this.writeFds = Array.from({ length: this.depth }, (_, m) => openSync(this.tempFile(m), 'wx'));
    for (let m = 0; m < this.depth; m++) {
      for (const chunk of this.chunks[m]) writeAll(this.writeFds[m], this.encode(chunk));
      this.chunks[m] = [];
    }
    this.chunkStarts = [];
  }

  private encode(values: Float32Array): Uint8Array {
    if (this.options.spillDtype === 'float32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const halves = new Uint16Array(values.length);
    for (let i = 0; i < bits.length; i++) halves[i] = float32BitsToFloat16Bits(bits[i]);
    return new Uint8Array(halves.buffer);
  }

  private blockFile(m: number): string {
    const ext = this.options.spillDtype === 'float16' ? 'f16' : 'f32';
    return join(this.spillDir!, `ln1-block-${String(m).padStart(3, '0')}.${ext}`);
  }

  private tempFile(m: number): string {
    return `${this.blockFile(m)}.tmp`;
  }

  private chunkOf(row: number): number {
    let lo = 0;
    let hi = this.chunkStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunkStarts[mid] <= row) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written, bytes.length - written);
}

async function readExactly(handle: FileHandle, into: Uint8Array, offset: number, length: number, position: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await handle.read(into, offset + done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`feature cache: spill file ended early (wanted ${length} bytes at ${position})`);
    done += bytesRead;
  }
}

/** float16 bits to float32 values via a 64K lookup table: a per-value function call is ~10x slower. */
let halfTable: Uint32Array | undefined;
function decodeFloat16(halves: Uint16Array, out: Float32Array): void {
  if (!halfTable) {
    halfTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = float16BitsToFloat32Bits(h);
  }
  const table = halfTable;
  const bits = new Uint32Array(out.buffer, out.byteOffset, halves.length);
  for (let i = 0; i < halves.length; i++) bits[i] = table[halves[i]];
}
