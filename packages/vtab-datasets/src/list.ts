import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ListLineError, SplitFileMissingError } from './errors.js';

export const VTAB_SPLITS = ['train800', 'val200', 'train800val200', 'test'] as const;
export type VtabSplitName = (typeof VTAB_SPLITS)[number];

export interface ListEntry {
  /** The path exactly as written in the list, relative to the task directory. */
  readonly path: string;
  readonly label: number;
  /** 1-based line number in the list file, for error messages. */
  readonly line: number;
}

const LINE_SHAPE = 'expected "<path> <label>"';

/**
 * Parses the text of a split list. Each non-blank line is `<path> <integer label>`; the label is the
 * last whitespace-separated token so paths containing spaces still work. Range checks happen later,
 * once the task's class count is known.
 */
export function parseSplitList(text: string, file: string): ListEntry[] {
  const entries: ListEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '') continue;
    const match = /^(.+?)\s+(\S+)$/.exec(raw);
    if (!match) throw new ListLineError(file, i + 1, `${LINE_SHAPE}, got ${quote(raw)}`);
    const [, path, labelText] = match;
    if (!/^[+-]?\d+$/.test(labelText)) {
      throw new ListLineError(file, i + 1, `${LINE_SHAPE}, label ${quote(labelText)} is not an integer`);
    }
    entries.push({ path, label: Number(labelText), line: i + 1 });
  }
  if (entries.length === 0) throw new ListLineError(file, 1, `${LINE_SHAPE}, the list is empty`);
  return entries;
}

/** Reads `<taskDir>/<split>.txt`; a missing directory or file raises SplitFileMissingError. */
export async function readSplitList(taskDir: string, split: string): Promise<{ file: string; entries: ListEntry[] }> {
  const file = join(taskDir, `${split}.txt`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (!isNotFound(error)) throw error;
    const dirExists = await stat(taskDir).then((s) => s.isDirectory(), () => false);
    const detail = dirExists
      ? `split file not found (a VTAB-1k task folder holds ${VTAB_SPLITS.map((s) => `${s}.txt`).join(', ')})`
      : `split file not found: task directory ${taskDir} does not exist`;
    throw new SplitFileMissingError(file, detail);
  }
  return { file, entries: parseSplitList(text, file) };
}

export function isNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}
