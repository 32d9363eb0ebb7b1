import type { MiniTaskSpec } from '../registry.js';
import { deriveSeed, Rng } from '../rng.js';

/** The splits that have their own images; train800val200 is written as the union of train800 and val200. */
export const STORED_SPLITS = ['train800', 'val200', 'test'] as const;
export type StoredSplit = (typeof STORED_SPLITS)[number];
export type SplitCounts = Readonly<Record<StoredSplit, number>>;

export const MINI_SUITE_COUNTS: SplitCounts = { train800: 800, val200: 200, test: 1000 };

/** An 8-bit image, row-major, channels interleaved. */
export interface SuiteImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3;
  readonly data: Uint8Array;
}

export interface LabelledImage {
  readonly label: number;
  readonly image: SuiteImage;
}

export interface TaskGenerator {
  readonly spec: MiniTaskSpec;
  /** The examples of one stored split, deterministic in (seed, split, count). */
  examples(seed: number, split: StoredSplit, count: number): Iterable<LabelledImage>;
}

/**
 * A task rendered from a per-example seed. Labels are balanced (every class ⌊n/K⌋ or ⌈n/K⌉ times)
 * and shuffled, and each image is drawn conditioned on its label, so even a reduced split has every class.
 */
export function proceduralTask(spec: MiniTaskSpec, render: (rng: Rng, label: number) => SuiteImage): TaskGenerator {
  return {
    spec,
    *examples(seed, split, count) {
      const labels = balancedLabels(count, spec.numClasses, new Rng(deriveSeed(seed, spec.name, split, 'labels')));
      for (let i = 0; i < count; i++) {
        const label = labels[i];
        yield { label, image: render(new Rng(deriveSeed(seed, spec.name, split, i)), label) };
      }
    },
  };
}

export function balancedLabels(count: number, numClasses: number, rng: Rng): Int32Array {
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) labels[i] = i % numClasses;
  return rng.shuffle(labels);
}
