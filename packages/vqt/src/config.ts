/** How each piece of the head input is normalised (METHOD.md, "Head input"). */
export type FeatureNorm = 'l2' | 'none' | 'mean';

/** Precision of cached LN1 rows spilled to disk; float16 halves the disk traffic at ~1e-3 relative error. */
export type SpillDtype = 'float32' | 'float16';

export interface VqtConfig {
  /** Query tokens per block (T). */
  queries: number;
  /** Query dropout while training (inverted scaling, like torch's nn.Dropout). */
  dropout: number;
  /**
   * 'l2': [L2(CLS), L2(flatten Z'_1), ..., L2(flatten Z'_M)] (the reference default);
   * 'none': the same concatenation unnormalised; 'mean': Z'_m averaged over its T queries, then L2.
   */
  featureNorm: FeatureNorm;
  /** Queries start uniform in +-initRange; default sqrt(6 / (3 p^2 + D)) as in VPT. */
  initRange?: number;
  /** Seed of the query initialisation. */
  seed: number;
  /** Precision of a FeatureCache that spills to disk (default float32). */
  spillDtype: SpillDtype;
}

export const DEFAULT_VQT_CONFIG: VqtConfig = {
  queries: 1,
  dropout: 0.1,
  featureNorm: 'l2',
  seed: 0,
  spillDtype: 'float32',
};

/** VPT's uniform init bound: +-0.0625 for ViT-B/16. */
export function defaultInitRange(patchSize: number, dim: number): number {
  return Math.sqrt(6 / (3 * patchSize * patchSize + dim));
}

const FEATURE_NORMS: readonly FeatureNorm[] = ['l2', 'none', 'mean'];

/** Fills defaults and rejects values that would fail later with a less helpful message. */
export function resolveVqtConfig(partial: Partial<VqtConfig> = {}): VqtConfig {
  const config: VqtConfig = { ...DEFAULT_VQT_CONFIG, ...stripUndefined(partial) };
  if (!Number.isInteger(config.queries) || config.queries < 1) throw new Error(`vqt: queries must be a positive integer (got ${config.queries})`);
  if (!(config.dropout >= 0 && config.dropout < 1)) throw new Error(`vqt: dropout must be in [0, 1) (got ${config.dropout})`);
  if (!FEATURE_NORMS.includes(config.featureNorm)) {
    throw new Error(`vqt: featureNorm must be one of ${FEATURE_NORMS.join(', ')} (got ${String(config.featureNorm)})`);
  }
  if (config.initRange !== undefined && !(config.initRange > 0)) throw new Error(`vqt: initRange must be positive (got ${config.initRange})`);
  if (config.spillDtype !== 'float32' && config.spillDtype !== 'float16') {
    throw new Error(`vqt: spillDtype must be float32 or float16 (got ${String(config.spillDtype)})`);
  }
  return config;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
