import { getMiniTask } from '../registry.js';
import type { Rng } from '../rng.js';
import { Canvas, setRgba } from './canvas.js';
import { proceduralTask, type SuiteImage } from './task.js';

const SIZE = 64;
const BINS = 16;

export const SPRITE_SHAPES = ['square', 'ellipse', 'heart'] as const;

export interface SpriteLatents {
  readonly shape: (typeof SPRITE_SHAPES)[number];
  /** 0.5-1, as dSprites' six scales. */
  readonly scale: number;
  /** Radians in [0, 2π). */
  readonly orientation: number;
  /** Positions in [0, 1): 0 is left/top, 1 right/bottom. */
  readonly x: number;
  readonly y: number;
}

/**
 * dSprites-style image: one white sprite (square, ellipse or heart) on black, 64x64, at the given
 * position, scale and orientation. Stored as RGB with three equal channels.
 */
export function renderSprite(latents: SpriteLatents): SuiteImage {
  const canvas = new Canvas(SIZE, SIZE);
  const half = 9 * latents.scale;
  // keep a full-scale sprite inside the frame: centres span [12, 52]
  const cx = 12 + latents.x * 40;
  const cy = 12 + latents.y * 40;
  const cos = Math.cos(latents.orientation);
  const sin = Math.sin(latents.orientation);
  const inside = SHAPE_TESTS[latents.shape];
  const reach = half * 1.5;
  canvas.paint(cx - reach, cy - reach, cx + reach, cy + reach, (x, y, rgba) => {
    // rotate the sample back into the sprite's own frame (y grows downwards on screen)
    const dx = x - cx;
    const dy = y - cy;
    const u = (cos * dx + sin * dy) / half;
    const v = (-sin * dx + cos * dy) / half;
    if (!inside(u, v)) return false;
    setRgba(rgba, [1, 1, 1]);
    return true;
  }, 4);
  return { width: SIZE, height: SIZE, channels: 3, data: canvas.toRgbBytes() };
}

const SHAPE_TESTS: Record<SpriteLatents['shape'], (u: number, v: number) => boolean> = {
  square: (u, v) => Math.abs(u) <= 0.8 && Math.abs(v) <= 0.8,
  ellipse: (u, v) => u * u + (v * v) / 0.36 <= 1,
  // the implicit heart (x² + y² - 1)³ - x² y³ <= 0, point down, scaled to about the same extent
  heart: (u, v) => {
    const x = u * 1.25;
    const y = -v * 1.25 + 0.15;
    const a = x * x + y * y - 1;
    return a * a * a - x * x * y * y * y <= 0;
  },
};

function randomLatents(rng: Rng): SpriteLatents {
  return {
    shape: rng.pick(SPRITE_SHAPES),
    scale: 0.5 + 0.1 * rng.int(6),
    orientation: rng.uniform(0, 2 * Math.PI),
    x: rng.next(),
    y: rng.next(),
  };
}

/** dsprites_loc: label = x position quantised into 16 bins; the position is drawn uniformly inside the bin. */
export const dspritesLocTask = proceduralTask(getMiniTask('dsprites_loc'), (rng, label) =>
  renderSprite({ ...randomLatents(rng), x: (label + rng.next()) / BINS }),
);

/** dsprites_ori: label = orientation in [0, 2π) quantised into 16 bins (squares and ellipses are symmetric, as in dSprites). */
export const dspritesOriTask = proceduralTask(getMiniTask('dsprites_ori'), (rng, label) =>
  renderSprite({ ...randomLatents(rng), orientation: ((label + rng.next()) * 2 * Math.PI) / BINS }),
);
