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
