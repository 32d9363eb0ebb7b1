/**
 * How taps are chosen and pooled over tokens:
 * - 'official': google-research/head2toe's rule (models/finetune.py flatten_and_concat, taps of
 *   configs_eval/finetune_h2t.py): pool size int(L / (S / C)), 'valid' average pooling (consecutive
 *   groups, remainder tokens dropped), the token mean when C >= S; whole-model taps
 *   root_output_with_cls, position_embedded_input, encoded_sequence and cls_embedded.
 * - 'adaptive': this package's earlier rule, kept so that adapters and feature caches written before
 *   'pooling' existed still load: g = floor(S / C) overlapping groups over all tokens, taps embed,
 *   per-block taps and the final CLS.
 */
export type Head2ToePooling = 'official' | 'adaptive';
export const HEAD2TOE_POOLINGS: readonly Head2ToePooling[] = ['official', 'adaptive'];
export const DEFAULT_POOLING: Head2ToePooling = 'official';
/** What files written before 'pooling' existed used. */
export const LEGACY_POOLING: Head2ToePooling = 'adaptive';

/**
 * Head2Toe options and their defaults.
 *
 * Default target size 2048. For ViT-B/16 at 224 px (L = 197 tokens), official pooling: the D = 768 wide
 * token taps pool with pool size int(197 / (2048 / 768)) = 73 to 2 groups (tokens 0-72, 73-145; 1536
 * values) and the 3072 wide MLP hidden tap (C >= S) to its token mean, so
 * F = 3 * 1536 (root, embedded, encoded sequence) + 12 * (3 * 1536 + 3072) + 768 (CLS) = 97,536 features:
 * 390 MB per 1000 images in float32, which the group-lasso solve can hold in the 4 GiB wasm heap.
 * 8192 (10 groups of 18 tokens; MLP hidden 2 groups of 73) gives F = 374,016 (1.5 GB per 1000 images):
 * too big for wasm.
 */
export const DEFAULT_TARGET_SIZE = 2048;
/** Fraction of features kept after the group-lasso ranking. */
export const DEFAULT_KEEP = 0.2;
/** Group-lasso strength as a fraction of lambdaMax (the smallest lambda that zeroes every group). */
export const DEFAULT_LAMBDA_RATIO = 0.1;

export interface Head2ToeOptions {
  /** Values per token tap after pooling, roughly (see Head2ToePooling for the exact rule). */
  targetSize: number;
  /** Taps and pooling rule (default 'official'). */
  pooling: Head2ToePooling;
  /** Fraction of features kept, in (0, 1]. */
  keep: number;
  /** Absolute group-lasso lambda; when set it wins over lambdaRatio. */
  lambda?: number;
  /** Group-lasso lambda as a fraction of lambdaMax (used when lambda is not given). */
  lambdaRatio: number;
}

export const DEFAULT_HEAD2TOE_OPTIONS: Head2ToeOptions = {
  targetSize: DEFAULT_TARGET_SIZE,
  pooling: DEFAULT_POOLING,
  keep: DEFAULT_KEEP,
  lambdaRatio: DEFAULT_LAMBDA_RATIO,
};

/** Fills defaults and rejects values that would fail later with a less helpful message. */
export function resolveHead2ToeOptions(partial: Partial<Head2ToeOptions> = {}): Head2ToeOptions {
  const options: Head2ToeOptions = { ...DEFAULT_HEAD2TOE_OPTIONS, ...stripUndefined(partial) };
  validateTargetSize(options.targetSize);
  validatePooling(options.pooling);
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

export function validatePooling(pooling: unknown, where = 'head2toe'): asserts pooling is Head2ToePooling {
  if (!HEAD2TOE_POOLINGS.includes(pooling as Head2ToePooling)) {
    throw new Error(`${where}: unknown pooling ${JSON.stringify(pooling)} (expected ${HEAD2TOE_POOLINGS.map((p) => `'${p}'`).join(' or ')})`);
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
