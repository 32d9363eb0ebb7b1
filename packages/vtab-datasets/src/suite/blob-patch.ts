import { getMiniTask } from '../registry.js';
import type { Rng } from '../rng.js';
import { Canvas, clamp01, ValueNoise, type Color } from './canvas.js';
import { proceduralTask, type SuiteImage } from './task.js';

const SIZE = 64;

/**
 * Procedural analogue of patch_camelyon: an H&E-like tissue patch (pink stroma, pale gaps,
 * scattered small purple nuclei, sometimes a clump of small dark lymphocyte-like nuclei as a
 * distractor). Label 1 patches also hold an irregular cluster of crowded, larger, darker nuclei on a
 * darker ground, centred in the middle 32x32 region (PCam labels by the centre region); a random
 * severity sets how large and dark the cluster is, down to faint ones.
 */
export function renderTissuePatch(rng: Rng, label: number): SuiteImage {
  const canvas = new Canvas(SIZE, SIZE);
  const stroma: Color = [rng.uniform(0.85, 0.95), rng.uniform(0.6, 0.75), rng.uniform(0.75, 0.88)];
  const texture = new ValueNoise(rng, 10, 7);
  const gaps = new ValueNoise(rng, 8, 12);
  const gapThreshold = rng.uniform(0.7, 0.85);
  // how conspicuous the cluster is: faint small ones make the task non-trivial, as in PCam
  const severity = rng.uniform(0.25, 1);
  const cluster = label === 1 ? irregularRegion(rng, severity) : undefined;
  canvas.fillWith((x, y, rgb) => {
    const shade = 0.85 + 0.25 * texture.at(x, y);
    const inCluster = cluster ? cluster.weight(x, y) : 0;
    // soft-edged pale gaps (fat, lumen), kept out of the cluster
    const gap = clamp01((gaps.at(x, y) - gapThreshold) / 0.04) * (1 - inCluster);
    for (let c = 0; c < 3; c++) {
      const tissue = stroma[c] * shade * (1 - 0.22 * severity * inCluster);
      rgb[c] = clamp01(tissue + gap * (0.96 - tissue));
    }
  });

  const nuclei = rng.intBetween(35, 75);
  for (let i = 0; i < nuclei; i++) {
    const tint = rng.uniform(-0.06, 0.06);
    drawNucleus(canvas, rng, rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(0.9, 1.7), [0.5 + tint, 0.3 + tint, 0.62 + tint]);
  }
  if (rng.bool(0.5)) {
    // lymphocyte clump: dense but small and round, present in both classes so density alone does not decide
    const lx = rng.uniform(8, 56);
    const ly = rng.uniform(8, 56);
    const count = rng.intBetween(8, 18);
    for (let i = 0; i < count; i++) {
      canvas.disc(lx + 5 * rng.normal(), ly + 5 * rng.normal(), rng.uniform(0.8, 1.2), [0.25, 0.12, 0.38], 0.95);
    }
  }
  if (cluster) {
    const count = Math.round(6 + 26 * severity * rng.uniform(0.8, 1.2));
    let placed = 0;
    for (let attempt = 0; placed < count && attempt < 400; attempt++) {
      const x = cluster.x + cluster.extent * rng.uniform(-1, 1);
      const y = cluster.y + cluster.extent * rng.uniform(-1, 1);
      if (cluster.weight(x, y) < 0.5) continue;
      // between an ordinary nucleus (severity 0) and a large, very dark atypical one (severity 1)
      const tint = rng.uniform(-0.05, 0.05);
      const darkness = severity * rng.uniform(0.7, 1);
      const color: Color = [0.5 - 0.2 * darkness + tint, 0.3 - 0.18 * darkness + tint, 0.62 - 0.2 * darkness + tint];
      drawNucleus(canvas, rng, x, y, rng.uniform(1.3, 1.8) + 0.9 * severity * rng.next(), color);
      placed++;
    }
  }
  canvas.addNoise(rng, 0.02);
  return { width: SIZE, height: SIZE, channels: 3, data: canvas.toRgbBytes() };
}

/** An ellipse at a random angle and aspect ratio. */
function drawNucleus(canvas: Canvas, rng: Rng, cx: number, cy: number, radius: number, color: Color): void {
  const angle = rng.uniform(0, Math.PI);
  const aspect = rng.uniform(0.6, 1);
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  canvas.paint(cx - radius, cy - radius, cx + radius, cy + radius, (x, y, rgba) => {
    const u = ((x - cx) * cos + (y - cy) * sin) / radius;
    const v = (-(x - cx) * sin + (y - cy) * cos) / (radius * aspect);
    if (u * u + v * v > 1) return false;
    rgba[0] = color[0];
    rgba[1] = color[1];
    rgba[2] = color[2];
    rgba[3] = 0.9;
    return true;
  });
}

/** A blobby region: the union of a few overlapping soft discs around a centre near the middle. */
function irregularRegion(rng: Rng, severity: number): { x: number; y: number; extent: number; weight: (x: number, y: number) => number } {
  const x = rng.uniform(SIZE / 2 - 12, SIZE / 2 + 12);
  const y = rng.uniform(SIZE / 2 - 12, SIZE / 2 + 12);
  const lobes = Array.from({ length: rng.intBetween(3, 6) }, () => ({
    x: x + rng.uniform(-7, 7),
    y: y + rng.uniform(-7, 7),
    r: rng.uniform(3, 5 + 3 * severity),
  }));
  return {
    x,
    y,
    extent: 16,
    weight: (px, py) => {
      let best = 0;
      for (const lobe of lobes) {
        const d = Math.hypot(px - lobe.x, py - lobe.y) / lobe.r;
        best = Math.max(best, clamp01((1.2 - d) / 0.4));
      }
      return best;
    },
  };
}

export const blobPatchTask = proceduralTask(getMiniTask('blob_patch'), renderTissuePatch);
