import { getMiniTask } from '../registry.js';
import type { Rng } from '../rng.js';
import { Canvas, clamp01, hsv, luminance, ValueNoise, type Color } from './canvas.js';
import { proceduralTask, type SuiteImage } from './task.js';

const SIZE = 64;

export const TEXTURE_FAMILIES = ['stripes', 'checks', 'dots', 'waves', 'blobs', 'grid', 'zigzag', 'rings'] as const;

/** A pattern in rotated coordinates (u, v), returning foreground weight in [0, 1]. */
type Pattern = (u: number, v: number) => number;

/**
 * Procedural analogue of DTD: 8 texture families, each with random period, phase, rotation, duty
 * and a random pair of contrasting colours, under a smooth illumination gradient and sensor noise.
 * The class is the family, never the colour or scale.
 */
export function renderTexture(rng: Rng, label: number): SuiteImage {
  const period = rng.uniform(6, 16);
  const angle = rng.uniform(0, Math.PI);
  const offsetU = rng.uniform(0, 100);
  const offsetV = rng.uniform(0, 100);
  const pattern = makePattern(TEXTURE_FAMILIES[label], rng, period, offsetU, offsetV);
  const [background, foreground] = contrastingColors(rng);
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const lightAngle = rng.uniform(0, 2 * Math.PI);
  const lightStrength = rng.uniform(0, 0.25);
  const canvas = new Canvas(SIZE, SIZE);
  const ss = 2; // 2x2 supersampling against aliasing of fine patterns
  canvas.fillWith((x, y, rgb) => {
    let weight = 0;
    for (let sy = 0; sy < ss; sy++) {
      for (let sx = 0; sx < ss; sx++) {
        const px = x - 0.5 + (sx + 0.5) / ss - SIZE / 2;
        const py = y - 0.5 + (sy + 0.5) / ss - SIZE / 2;
        weight += pattern(cos * px + sin * py + offsetU, -sin * px + cos * py + offsetV);
      }
    }
    weight /= ss * ss;
    const light = 1 + lightStrength * (((x - SIZE / 2) * Math.cos(lightAngle) + (y - SIZE / 2) * Math.sin(lightAngle)) / SIZE);
    for (let c = 0; c < 3; c++) rgb[c] = clamp01((background[c] + (foreground[c] - background[c]) * weight) * light);
  });
  canvas.addNoise(rng, 0.03);
  return { width: SIZE, height: SIZE, channels: 3, data: canvas.toRgbBytes() };
}

/** (centreU, centreV) is where the image centre lands in pattern coordinates. */
function makePattern(family: (typeof TEXTURE_FAMILIES)[number], rng: Rng, period: number, centreU: number, centreV: number): Pattern {
  const omega = (2 * Math.PI) / period;
  switch (family) {
    case 'stripes': {
      const duty = rng.uniform(0.3, 0.6);
      return (u) => (frac(u / period) < duty ? 1 : 0);
    }
    case 'checks':
      return (u, v) => ((Math.floor(u / period) + Math.floor(v / period)) & 1 ? 1 : 0);
    case 'dots': {
      const radius = period * rng.uniform(0.18, 0.32);
      const hexRows = rng.bool();
      return (u, v) => {
        const row = Math.floor(v / period);
        const shift = hexRows && row & 1 ? 0.5 : 0;
        const du = (frac(u / period + shift) - 0.5) * period;
        const dv = (frac(v / period) - 0.5) * period;
        return du * du + dv * dv < radius * radius ? 1 : 0;
      };
    }
    case 'waves': {
      const amplitude = rng.uniform(1.2, 2.5);
      const waveOmega = omega * rng.uniform(0.4, 0.8);
      const phase = rng.uniform(0, 2 * Math.PI);
      return (u, v) => (Math.sin(omega * u + amplitude * Math.sin(waveOmega * v + phase)) > 0 ? 1 : 0);
    }
    case 'blobs': {
      const noise = new ValueNoise(rng, 48, period * 0.8);
      const threshold = rng.uniform(0.45, 0.6);
      return (u, v) => (noise.at(u, v) > threshold ? 1 : 0);
    }
    case 'grid': {
      const line = rng.uniform(0.12, 0.22);
      return (u, v) => (frac(u / period) < line || frac(v / period) < line ? 1 : 0);
    }
    case 'zigzag': {
      const amplitude = period * rng.uniform(0.5, 1.0);
      const zigPeriod = period * rng.uniform(0.8, 1.6);
      return (u, v) => (frac((u + amplitude * triangle(v / zigPeriod)) / period) < 0.5 ? 1 : 0);
    }
    case 'rings': {
      // centre somewhere in or near the image, so some images show full rings and others arcs
      const cu = centreU + rng.uniform(-40, 40);
      const cv = centreV + rng.uniform(-40, 40);
      return (u, v) => {
        const r = Math.hypot(u - cu, v - cv);
        return frac(r / period) < 0.5 ? 1 : 0;
      };
    }
  }
}

/** Two random colours whose luminance differs enough for the pattern to be visible. */
function contrastingColors(rng: Rng): [Color, Color] {
  for (;;) {
    const a = hsv(rng.next(), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.95));
    const b = hsv(rng.next(), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.95));
    if (Math.abs(luminance(a) - luminance(b)) > 0.25) return rng.bool() ? [a, b] : [b, a];
  }
}

function frac(x: number): number {
  return x - Math.floor(x);
}

/** Triangle wave with period 1 and range [0, 1]. */
function triangle(x: number): number {
  const f = frac(x);
  return f < 0.5 ? 2 * f : 2 - 2 * f;
}

export const texturesTask = proceduralTask(getMiniTask('textures'), renderTexture);
