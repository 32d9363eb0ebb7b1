import { getMiniTask } from '../registry.js';
import type { Rng } from '../rng.js';
import { Canvas, clamp01, setRgba, ValueNoise, type Color } from './canvas.js';
import { proceduralTask, type SuiteImage } from './task.js';

const SIZE = 64;

/** CLEVR's eight colours. */
const PALETTE: readonly Color[] = [
  [87, 87, 87], [173, 35, 35], [42, 75, 215], [29, 105, 20],
  [129, 74, 25], [129, 38, 192], [41, 208, 208], [255, 238, 51],
].map((c) => [c[0] / 255, c[1] / 255, c[2] / 255] as const);

/**
 * Pinhole camera over a ground plane: an object at depth z touches the floor at screen row
 * HORIZON + FLOOR_FOCAL / z and has radius SIZE_FOCAL * size / z, so further objects sit higher
 * in the image and are smaller.
 */
const HORIZON = 8;
const FLOOR_FOCAL = 162;
const SIZE_FOCAL = 16;
/** Object sizes, like CLEVR's small and large. */
const OBJECT_SIZES = [1.05, 1.5] as const;

export const NEAREST_DEPTH = 3;
export const FARTHEST_DEPTH = 11;
/** clevr_dist bin edges on the depth of the closest object: 6 bins of width 1 over [3, 9]. */
export const DISTANCE_BIN_EDGES = [3, 4, 5, 6, 7, 8, 9] as const;

export interface SceneObject {
  readonly kind: 'sphere' | 'cube';
  readonly color: Color;
  readonly depth: number;
  /** Screen x of the centre. */
  readonly x: number;
  readonly radius: number;
}

export function floorRow(depth: number): number {
  return HORIZON + FLOOR_FOCAL / depth;
}

export function depthOfRow(row: number): number {
  return FLOOR_FOCAL / (row - HORIZON);
}

/**
 * Places objects with the given depths at random x, rejecting placements whose screen discs
 * overlap by more than a little (occlusion allowed but limited). Returns undefined when it cannot fit them.
 */
function placeObjects(rng: Rng, depths: readonly number[]): SceneObject[] | undefined {
  const placed: SceneObject[] = [];
  for (const depth of depths) {
    const radius = (SIZE_FOCAL * rng.pick(OBJECT_SIZES)) / depth;
    let ok = false;
    for (let attempt = 0; attempt < 60 && !ok; attempt++) {
      const x = rng.uniform(radius + 1, SIZE - radius - 1);
      const y = floorRow(depth) - radius;
      ok = placed.every((o) => Math.hypot(o.x - x, floorRow(o.depth) - o.radius - y) >= 0.8 * (o.radius + radius));
      if (ok) placed.push({ kind: rng.bool() ? 'sphere' : 'cube', color: rng.pick(PALETTE), depth, x, radius });
    }
    if (!ok) return undefined;
  }
  return placed;
}

/** Renders floor, soft shadows and shaded objects, far to near. */
export function renderScene(rng: Rng, objects: readonly SceneObject[]): SuiteImage {
  const canvas = new Canvas(SIZE, SIZE);
  const floorTone = rng.uniform(0.4, 0.52);
  const floorNoise = new ValueNoise(rng, 8, 10);
  canvas.fillWith((x, y, rgb) => {
    // the floor brightens towards the camera, with faint unevenness
    const tone = floorTone * (0.8 + 0.35 * (y / SIZE)) * (0.96 + 0.08 * floorNoise.at(x, y));
    rgb[0] = rgb[1] = rgb[2] = clamp01(tone);
  });
  const ordered = [...objects].sort((a, b) => b.depth - a.depth);
  for (const o of ordered) {
    // shadow: light comes from the upper left, so shadows fall right
    const base = floorRow(o.depth);
    canvas.paint(o.x - o.radius, base - o.radius, o.x + 2.2 * o.radius, base + 0.5 * o.radius, (x, y, rgba) => {
      const u = (x - o.x - 0.5 * o.radius) / (1.3 * o.radius);
      const v = (y - base + 0.1 * o.radius) / (0.4 * o.radius);
      const d = u * u + v * v;
      if (d > 1) return false;
      setRgba(rgba, [0, 0, 0], 0.35 * (1 - d));
      return true;
    }, 2);
    if (o.kind === 'sphere') drawSphere(canvas, o, base);
    else drawCube(canvas, o, base);
  }
  canvas.addNoise(rng, 0.01);
  return { width: SIZE, height: SIZE, channels: 3, data: canvas.toRgbBytes() };
}

function drawSphere(canvas: Canvas, o: SceneObject, base: number): void {
  const cx = o.x;
  const cy = base - o.radius;
  const r = o.radius;
  canvas.paint(cx - r, cy - r, cx + r, cy + r, (x, y, rgba) => {
    const nx = (x - cx) / r;
    const ny = (y - cy) / r;
    const nn = nx * nx + ny * ny;
    if (nn > 1) return false;
    const nz = Math.sqrt(1 - nn);
    // Lambert shading from the upper left plus a small specular highlight
    const diffuse = Math.max(0, -0.5 * nx - 0.6 * ny + 0.62 * nz);
    const specular = Math.pow(Math.max(0, -0.35 * nx - 0.45 * ny + 0.82 * nz), 24) * 0.5;
    const light = 0.3 + 0.85 * diffuse;
    setRgba(rgba, [clamp01(o.color[0] * light + specular), clamp01(o.color[1] * light + specular), clamp01(o.color[2] * light + specular)]);
    return true;
  });
}

/** A cube seen slightly from above: a front face and a lighter, sheared top face. */
function drawCube(canvas: Canvas, o: SceneObject, base: number): void {
  const half = o.radius * 0.85;
  const top = o.radius * 0.55;
  const left = o.x - half;
  const right = o.x + half;
  const frontTop = base - 2 * half;
  const shade = (k: number): Color => [clamp01(o.color[0] * k), clamp01(o.color[1] * k), clamp01(o.color[2] * k)];
  const lid = shade(1.05);
  canvas.paint(left, frontTop - top, right + top * 0.6, base, (x, y, rgba) => {
    if (y >= frontTop && x >= left && x <= right) {
      // darken towards the right: light from the left
      setRgba(rgba, shade(0.85 - 0.25 * ((x - left) / (right - left))));
      return true;
    }
    const t = (frontTop - y) / top; // 0 at the front edge of the lid, 1 at its back edge
    if (t >= 0 && t <= 1 && x >= left + 0.6 * top * t && x <= right + 0.6 * top * t) {
      setRgba(rgba, lid);
      return true;
    }
    return false;
  });
}

/** Object depths drawn uniformly in screen row between the nearest and farthest depth. */
function depthUniformOnScreen(rng: Rng, nearest: number, farthest: number): number {
  return depthOfRow(rng.uniform(floorRow(farthest), floorRow(nearest)));
}

/** clevr_count: 3-10 objects, label = count - 3. */
export const clevrCountTask = proceduralTask(getMiniTask('clevr_count'), (rng, label) => {
  const count = label + 3;
  for (;;) {
    const depths = Array.from({ length: count }, () => depthUniformOnScreen(rng, NEAREST_DEPTH, FARTHEST_DEPTH - 1));
    const objects = placeObjects(rng, depths);
    if (objects) return renderScene(rng, objects);
  }
});

/**
 * clevr_dist: label = bin of the closest object's depth (DISTANCE_BIN_EDGES). The closest depth is
 * drawn inside the label's bin and the other 2-9 objects behind it; when they do not fit, fewer are used.
 */
export const clevrDistTask = proceduralTask(getMiniTask('clevr_dist'), (rng, label) => {
  const closest = rng.uniform(DISTANCE_BIN_EDGES[label], DISTANCE_BIN_EDGES[label + 1]);
  let count = rng.intBetween(3, 10);
  for (let attempt = 0; ; attempt++) {
    const others = Array.from({ length: count - 1 }, () => depthUniformOnScreen(rng, closest, FARTHEST_DEPTH));
    const objects = placeObjects(rng, [closest, ...others]);
    if (objects) return renderScene(rng, objects);
    if (attempt % 5 === 4 && count > 1) count--;
  }
});
