/** Seeded data for the tests: plain host arrays, so every backend sees exactly the same numbers. */

export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gaussian(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export function shuffled(count: number, random: () => number): Int32Array {
  const order = Int32Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

export interface SyntheticOptions {
  numTrain: number;
  numTest: number;
  numFeatures: number;
  numInformative: number;
  numClasses: number;
  /** Scale of the true logits; the label is sampled from softmax(signal * x_inf B). */
  signal: number;
  seed: number;
}

export interface SyntheticSplit {
  features: Float32Array;
  labels: Int32Array;
}

export interface SyntheticData {
  train: SyntheticSplit;
  test: SyntheticSplit;
  /** Ascending indices of the informative features. */
  informative: Int32Array;
}

/** Unit-norm, zero-sum class direction per informative feature, so every one of them matters about equally. */
function classDirections(numInformative: number, numClasses: number, random: () => number): Float64Array {
  const directions = new Float64Array(numInformative * numClasses);
  for (let j = 0; j < numInformative; j++) {
    const row = Array.from({ length: numClasses }, () => gaussian(random));
    const mean = row.reduce((a, b) => a + b, 0) / numClasses;
    const centred = row.map((v) => v - mean);
    const norm = Math.sqrt(centred.reduce((a, b) => a + b * b, 0));
    for (let c = 0; c < numClasses; c++) directions[j * numClasses + c] = centred[c] / norm;
  }
  return directions;
}

function sampleSplit(count: number, informative: Int32Array, directions: Float64Array, options: SyntheticOptions, random: () => number): SyntheticSplit {
  const { numFeatures, numClasses, signal } = options;
  const features = new Float32Array(count * numFeatures);
  const labels = new Int32Array(count);
  const logits = new Float64Array(numClasses);
  for (let i = 0; i < count; i++) {
    for (let f = 0; f < numFeatures; f++) features[i * numFeatures + f] = gaussian(random);
    logits.fill(0);
    for (let j = 0; j < informative.length; j++) {
      const x = features[i * numFeatures + informative[j]];
      for (let c = 0; c < numClasses; c++) logits[c] += signal * x * directions[j * numClasses + c];
    }
    // Gumbel-max: an exact sample from softmax(logits), i.e. label noise of the logistic model.
    let best = 0;
    let bestValue = -Infinity;
    for (let c = 0; c < numClasses; c++) {
      const value = logits[c] - Math.log(-Math.log(1 - random()));
      if (value > bestValue) [best, bestValue] = [c, value];
    }
    labels[i] = best;
  }
  return { features, labels };
}

export function makeSynthetic(options: SyntheticOptions): SyntheticData {
  const random = mulberry32(options.seed);
  const informative = shuffled(options.numFeatures, random).slice(0, options.numInformative).sort();
  const directions = classDirections(options.numInformative, options.numClasses, random);
  const train = sampleSplit(options.numTrain, informative, directions, options, random);
  const test = sampleSplit(options.numTest, informative, directions, options, random);
  return { train, test, informative };
}

/** Fraction of `selected` that are in `informative`. */
export function precision(selected: ArrayLike<number>, informative: ArrayLike<number>): number {
  const truth = new Set(Array.from(informative));
  let hits = 0;
  for (let i = 0; i < selected.length; i++) if (truth.has(selected[i])) hits++;
  return selected.length > 0 ? hits / selected.length : 0;
}
