import { getMiniTask } from '../registry.js';
import type { Rng } from '../rng.js';
import { Canvas, clamp01, setRgba, ValueNoise, type Color } from './canvas.js';
import { proceduralTask, type SuiteImage } from './task.js';

const SIZE = 64;

/** Inclusive lesion-count range per grade 0-4 (no, mild, moderate, severe, proliferative). */
export const LESIONS_PER_GRADE: readonly (readonly [number, number])[] = [
  [0, 0],
  [1, 3],
  [4, 7],
  [8, 12],
  [13, 20],
];

const HAEMORRHAGE: Color = [0.42, 0.04, 0.04];
const EXUDATE: Color = [0.98, 0.9, 0.45];
const VESSEL: Color = [0.5, 0.1, 0.07];
const BACKGROUND = 0.02;

/**
 * Procedural analogue of diabetic_retinopathy: a fundus-like disc (orange-red, vignetted, with an
 * optic disc, a darker macula and vessels) sprinkled with small lesions — dark red dots
 * (haemorrhages) and yellow dots (exudates). The grade is set only by the number of lesions.
 */
export function renderFundus(rng: Rng, grade: number): SuiteImage {
  const canvas = new Canvas(SIZE, SIZE);
  const cx = SIZE / 2 + rng.uniform(-2, 2);
  const cy = SIZE / 2 + rng.uniform(-2, 2);
  const radius = rng.uniform(27, 30);
  const base: Color = [rng.uniform(0.68, 0.85), rng.uniform(0.28, 0.4), rng.uniform(0.1, 0.18)];
  const brightness = rng.uniform(0.8, 1.1);
  const mottling = new ValueNoise(rng, 12, 6);
  // optic disc on the nasal side (left or right eye), macula on the other side
  const side = rng.bool() ? 1 : -1;
  const discX = cx + side * rng.uniform(10, 14);
  const discY = cy + rng.uniform(-3, 3);
  const maculaX = cx - side * rng.uniform(7, 10);
  const maculaY = cy + rng.uniform(-2, 2);

  // one shading sample per pixel; only the rim needs antialiasing, done analytically from the distance
  canvas.fillWith((x, y, rgb) => {
    const distance = Math.hypot(x - cx, y - cy);
    const coverage = clamp01(radius - distance + 0.5);
    if (coverage === 0) {
      rgb[0] = rgb[1] = rgb[2] = BACKGROUND;
      return;
    }
    const r = distance / radius;
    const vignette = brightness * (1 - 0.45 * r * r) * (0.9 + 0.2 * mottling.at(x, y));
    const macula = 1 - 0.3 * Math.exp(-((x - maculaX) ** 2 + (y - maculaY) ** 2) / 18);
    for (let c = 0; c < 3; c++) rgb[c] = BACKGROUND + (clamp01(base[c] * vignette * macula) - BACKGROUND) * coverage;
  });

  drawVessels(canvas, rng, discX, discY, cx, cy, radius);
  const discRadius = rng.uniform(3.5, 5);
  canvas.paint(discX - discRadius, discY - discRadius, discX + discRadius, discY + discRadius, (x, y, rgba) => {
    const r = Math.hypot(x - discX, y - discY) / discRadius;
    if (r > 1) return false;
    setRgba(rgba, [0.97, 0.85, 0.55], 1 - r * r * 0.6);
    return true;
  });

  const [low, high] = LESIONS_PER_GRADE[grade];
  const lesions = rng.intBetween(low, high);
  for (let i = 0; i < lesions; i++) {
    // uniform in the disc (away from the rim and the optic disc)
    let x = 0, y = 0;
    do {
      const angle = rng.uniform(0, 2 * Math.PI);
      const distance = radius * 0.85 * Math.sqrt(rng.next());
      x = cx + distance * Math.cos(angle);
      y = cy + distance * Math.sin(angle);
    } while (Math.hypot(x - discX, y - discY) < discRadius + 2);
    if (rng.bool(0.7)) canvas.disc(x, y, rng.uniform(0.8, 1.5), HAEMORRHAGE, 0.95, 4);
    else canvas.disc(x, y, rng.uniform(0.7, 1.2), EXUDATE, 0.9, 4);
  }
  canvas.addNoise(rng, 0.015);
  return { width: SIZE, height: SIZE, channels: 3, data: canvas.toRgbBytes() };
}

/** A few wandering vessels from the optic disc towards the rim, drawn as thin capsules. */
function drawVessels(canvas: Canvas, rng: Rng, fromX: number, fromY: number, cx: number, cy: number, radius: number): void {
  const count = rng.intBetween(4, 6);
  for (let v = 0; v < count; v++) {
    let heading = (2 * Math.PI * (v + rng.uniform(-0.3, 0.3))) / count;
    let x = fromX;
    let y = fromY;
    let width = rng.uniform(0.55, 0.8);
    for (let step = 0; step < 14; step++) {
      const nx = x + 3 * Math.cos(heading);
      const ny = y + 3 * Math.sin(heading);
      if (Math.hypot(nx - cx, ny - cy) > radius * 0.97) break;
      canvas.segment(x, y, nx, ny, width, VESSEL, 0.75);
      x = nx;
      y = ny;
      heading += rng.uniform(-0.35, 0.35);
      width = Math.max(0.35, width * 0.95);
    }
  }
}

export const lesionGradeTask = proceduralTask(getMiniTask('lesion_grade'), renderFundus);
