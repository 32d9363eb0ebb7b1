import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A unique sibling of `path`: same directory, so the final rename cannot cross file systems. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === 'string') return new TextEncoder().encode(data);
  // Checked at run time: anything else would otherwise be written as an empty or garbled file.
  if (!(data instanceof Uint8Array)) throw new TypeError(`writeFileAtomic: expected a Uint8Array or string, got ${describe(data)}`);
  return data;
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
}

/** Makes the rename itself durable; some platforms cannot open a directory, which is harmless. */
function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes `data` to `path` so that readers see either the old file or the complete new one:
 * write a temp file next to it, fsync, rename over the target. On failure the temp file is
 * removed and an existing target is left untouched.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tempPath = tempPathFor(path);
  let fd: number | undefined = openSync(tempPath, 'wx');
  try {
    const bytes = toBytes(data);
    for (let written = 0; written < bytes.length; ) {
      written += writeSync(fd, bytes, written, bytes.length - written);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tempPath, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tempPath);
    } catch {
      // already gone
    }
    throw error;
  }
  fsyncDirectory(dirname(path));
}

/** Async variant of {@link writeFileAtomic}, with the same guarantees. */
export async function writeFileAtomicAsync(path: string, data: Uint8Array | string): Promise<void> {
  const tempPath = tempPathFor(path);
  const handle = await open(tempPath, 'wx');
  let closed = false;
  try {
    await handle.writeFile(toBytes(data));
    await handle.sync();
    await handle.close();
    closed = true;
    await rename(tempPath, path);
  } catch (error) {
    if (!closed) await handle.close().catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }
  fsyncDirectory(dirname(path));
}
