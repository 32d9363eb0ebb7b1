/**
 * Every error this package throws for bad input is a VtabDataError with a one-line message that
 * names the offending file (and the list line when there is one), so a log line is enough to fix it.
 */
export class VtabDataError extends Error {
  override name = 'VtabDataError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(oneLine(message), options);
  }
}

/** The task name is neither a VTAB-1k task nor a mini-suite task, and no class count was given. */
export class UnknownTaskError extends VtabDataError {
  override name = 'UnknownTaskError';
  constructor(readonly task: string, detail: string) {
    super(`unknown task "${task}"${detail}`);
  }
}

/** `<task>/<split>.txt` (or the task directory itself) does not exist. */
export class SplitFileMissingError extends VtabDataError {
  override name = 'SplitFileMissingError';
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
  }
}

/** A line of a split list that is not `<path> <integer label>`. */
export class ListLineError extends VtabDataError {
  override name = 'ListLineError';
  constructor(readonly file: string, readonly line: number, detail: string) {
    super(`${file}:${line}: ${detail}`);
  }
}

/** A label that is not in [0, numClasses). */
export class LabelOutOfRangeError extends VtabDataError {
  override name = 'LabelOutOfRangeError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly label: number,
    readonly numClasses: number,
    task: string,
  ) {
    super(`${file}:${line}: label ${label} is outside [0, ${numClasses - 1}] for task "${task}" (${numClasses} classes)`);
  }
}

/** A listed image file that does not exist. */
export class ImageMissingError extends VtabDataError {
  override name = 'ImageMissingError';
  constructor(readonly file: string, readonly line: number, readonly imagePath: string) {
    super(`${file}:${line}: image not found: ${imagePath}`);
  }
}

/** A listed image that exists but is not a decodable JPEG or PNG. */
export class ImageDecodeError extends VtabDataError {
  override name = 'ImageDecodeError';
  constructor(readonly file: string, readonly line: number, readonly imagePath: string, reason: string) {
    super(`${file}:${line}: cannot decode image ${imagePath}: ${reason}`);
  }
}

/** Collapses whitespace runs (including newlines from third-party messages) so messages stay on one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
