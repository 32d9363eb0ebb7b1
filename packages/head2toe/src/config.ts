/**
 * Head2Toe options and their defaults.
 *
 * Default target size 2048: for ViT-B/16 at 224 px (L = 197 tokens) the D = 768 wide taps (embed, ln1,
 * attn, mlpOut) pool to floor(2048 / 768) = 2 token groups (1536 values) and the 3072 wide MLP hidden
 * tap to 1 group (3072 values), so F = 12 * (3 * 1536 + 3072) + 1536 + 768 = 94,464 features:
 * 378 MB per 1000 images in float32, which the group-lasso solve can hold in the 4 GiB wasm heap.
 * The reference's 8192 (10 groups) gives F = 358,656 (1.4 GB per 1000 images): too big for wasm.
 */
export const DEFAULT_TARGET_SIZE = 2048;
/** Fraction of features kept after the group-lasso ranking. */
export const DEFAULT_KEEP = 0.2;
/** Group-lasso strength as a fraction of lambdaMax (the smallest lambda that zeroes every group). */
export const DEFAULT_LAMBDA_RATIO = 0.1;

export interface Head2ToeOptions {
  /** Values per token tap after pooling, roughly: g = min(L, max(1, floor(S / C))) token groups. */
  targetSize: number;
  /** Fraction of features kept, in (0, 1]. */
  keep: number;
  /** Absolute group-lasso lambda; when set it wins over lambdaRatio. */
  lambda?: number;
  /** Group-lasso lambda as a fraction of lambdaMax (used when lambda is not given). */
  lambdaRatio: number;
}

export const DEFAULT_HEAD2TOE_OPTIONS: Head2ToeOptions = {
  targetSize: DEFAULT_TARGET_SIZE,
  keep: DEFAULT_KEEP,
  lambdaRatio: DEFAULT_LAMBDA_RATIO,
};

/** Fills defaults and rejects values that would fail later with a less helpful message. */
export function resolveHead2ToeOptions(partial: Partial<Head2ToeOptions> = {}): Head2ToeOptions {
  const options: Head2ToeOptions = { ...DEFAULT_HEAD2TOE_OPTIONS, ...stripUndefined(partial) };
  validateTargetSize(options.targetSize);
  if (!(options.keep > 0 && options.keep <= 1)) throw new Error(`head2toe: keep must be in (0, 1] (got ${options.keep})`);
  if (options.lambda !== undefined && !(options.lambda >= 0 && Number.isFinite(options.lambda))) {
    throw new Error(`head2toe: lambda must be finite and >= 0 (got ${options.lambda})`);
  }
  if (!(options.lambdaRatio >= 0 && Number.isFinite(options.lambdaRatio))) {
    throw new Error(`head2toe: lambdaRatio must be finite and >= 0 (got ${options.lambdaRatio})`);
  }
  return options;
}

export function validateTargetSize(targetSize: number): void {
  if (!Number.isInteger(targetSize) || targetSize < 1) throw new Error(`head2toe: targetSize must be a positive integer (got ${targetSize})`);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
