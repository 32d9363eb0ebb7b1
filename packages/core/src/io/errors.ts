/**
 * A file that cannot be read as the format it claims to be. The message is one line,
 * `<file>: <tensor>: <reason>`, so a CLI can print it as is.
 */
export class FileFormatError extends Error {
  readonly file: string;
  readonly tensor?: string;
  readonly reason: string;

  constructor(file: string, reason: string, tensor?: string) {
    const parts = tensor === undefined ? [file, reason] : [file, tensor, reason];
    super(parts.map(oneLine).join(': '));
    this.name = 'FileFormatError';
    this.file = file;
    this.tensor = tensor;
    this.reason = reason;
  }
}

/** Tensor names and wrapped parser messages come from untrusted files; keep them on one line. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

/** Runs a file-system call; a failure becomes a one-line FileFormatError naming the file. */
export function withFile<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reasons: Record<string, string> = { ENOENT: 'no such file', EISDIR: 'is a directory', EACCES: 'permission denied' };
    throw new FileFormatError(file, `cannot read: ${(code && reasons[code]) ?? (error as Error).message}`);
  }
}
