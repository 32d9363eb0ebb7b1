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

/** An image file that does not exist; `file` and `line` name the list line, when there is one. */
export class ImageMissingError extends VtabDataError {
  override name = 'ImageMissingError';
  constructor(readonly file: string | undefined, readonly line: number | undefined, readonly imagePath: string) {
    super(file === undefined ? `${imagePath}: image not found` : `${file}:${line}: image not found: ${imagePath}`);
  }
}

/**
 * An image that exists but is not a decodable JPEG or PNG. `file` and `line` name the list line
 * that refers to it (VTAB lists); they are undefined for an image-folder tree or a loose file.
 */
export class ImageDecodeError extends VtabDataError {
  override name = 'ImageDecodeError';
  constructor(readonly file: string | undefined, readonly line: number | undefined, readonly imagePath: string, reason: string) {
    super(file === undefined ? `${imagePath}: cannot decode image: ${reason}` : `${file}:${line}: cannot decode image ${imagePath}: ${reason}`);
  }
}

/**
 * A data folder whose structure is not one this package reads: neither a VTAB-1k list folder nor
 * an image-folder tree, a class folder without images, a file that is not an image, a labels.txt
 * that does not fit the labels. `path` is the offending file or folder.
 */
export class DatasetLayoutError extends VtabDataError {
  override name = 'DatasetLayoutError';
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
  }
}

/** Collapses whitespace runs (including newlines from third-party messages) so messages stay on one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
