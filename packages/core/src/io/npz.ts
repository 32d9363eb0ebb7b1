import { readFileSync } from 'node:fs';
import { unzipSync, zipSync, type UnzipFileInfo, type Zippable } from 'fflate';
import { writeFileAtomic } from './atomic.js';
import { FileFormatError, withFile } from './errors.js';
import { encodeNpy, parseNpy, type NpyArray } from './npy.js';
import type { HostTensor } from './types.js';

/** Deflate cannot expand data by more than about 1032:1; a larger claim is corrupt (or a zip bomb). */
const MAX_DEFLATE_RATIO = 1032;

/**
 * Parses an .npz (a zip of .npy members, stored or deflated). Keys are the member names with
 * their '.npy' suffix removed, exactly as np.load exposes them.
 */
export function parseNpz(bytes: Uint8Array, file: string): Map<string, NpyArray> {
  // Pass 1 reads only the central directory: a failure here is the archive's, not a member's.
  const members: UnzipFileInfo[] = [];
  try {
    unzipSync(bytes, {
      filter: (info) => {
        members.push(info);
        return false;
      },
    });
  } catch (error) {
    throw new FileFormatError(file, `not a valid zip archive (${messageOf(error)})`);
  }
  for (const member of members) checkMemberSizes(member, bytes.length, file);

  // Pass 2 extracts; the filter runs just before each member is inflated, so we know whose data broke.
  let current: string | undefined;
  let contents: Record<string, Uint8Array>;
  try {
    contents = unzipSync(bytes, {
      filter: (info) => {
        current = info.name;
        return !info.name.endsWith('/');
      },
    });
  } catch (error) {
    throw new FileFormatError(file, `cannot extract member (${messageOf(error)})`, current === undefined ? undefined : keyOf(current));
  }

  const arrays = new Map<string, NpyArray>();
  for (const member of members) {
    if (member.name.endsWith('/')) continue; // directory entry
    const data = contents[member.name];
    const key = keyOf(member.name);
    if (!(data instanceof Uint8Array)) throw new FileFormatError(file, 'member could not be extracted', key);
    if (data.length !== member.originalSize) {
      throw new FileFormatError(file, `extracted ${data.length} bytes, the zip directory says ${member.originalSize}`, key);
    }
    if (arrays.has(key)) throw new FileFormatError(file, 'two zip members have this name', key);
    arrays.set(key, parseNpy(data, file, key));
  }
  return arrays;
}

/** Errors name an array as the caller knows it (the key), not as the zip member. */
function keyOf(memberName: string): string {
  return memberName.endsWith('.npy') ? memberName.slice(0, -'.npy'.length) : memberName;
}

/** Checked before fflate allocates an output buffer of the claimed size. */
function checkMemberSizes(member: UnzipFileInfo, fileSize: number, file: string): void {
  const fail = (reason: string) => new FileFormatError(file, reason, keyOf(member.name));
  if (member.compression !== 0 && member.compression !== 8) throw fail(`unsupported zip compression method ${member.compression}`);
  if (member.size > fileSize) throw fail(`compressed size ${member.size} exceeds the ${fileSize}-byte file`);
  if (member.compression === 0 && member.size !== member.originalSize) {
    throw fail(`stored member is ${member.size} bytes but claims ${member.originalSize} uncompressed`);
  }
  if (member.originalSize > member.size * MAX_DEFLATE_RATIO + 1024) {
    throw fail(`claims ${member.originalSize} uncompressed bytes from ${member.size} compressed`);
  }
}

export function readNpz(path: string): Map<string, NpyArray> {
  const buffer = withFile(path, () => readFileSync(path));
  return parseNpz(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), path);
}

/** Encodes float32 arrays as an .npz; member names get the '.npy' suffix. Deflated when `compress`. */
export function encodeNpz(arrays: Record<string, HostTensor>, opts: { compress?: boolean } = {}): Uint8Array {
  const level = opts.compress ? 6 : 0;
  const members: Zippable = {};
  for (const [name, array] of Object.entries(arrays)) members[`${name}.npy`] = [encodeNpy(array), { level }];
  return zipSync(members);
}

export function writeNpz(path: string, arrays: Record<string, HostTensor>, opts: { compress?: boolean } = {}): void {
  writeFileAtomic(path, encodeNpz(arrays, opts));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
