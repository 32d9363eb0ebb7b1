import type { Rng } from '../rng.js';

export type Color = readonly [number, number, number];

/**
 * Writes the colour and coverage of continuous point (x, y) into `rgba` and returns true when the
 * point is inside the shape. Coordinates are in pixels; pixel (i, j) spans [i, i+1) x [j, j+1).
 */
export type Shader = (x: number, y: number, rgba: Float64Array) => boolean;

/** A small float RGB raster in [0, 1] for procedural images, with supersampled antialiasing. */
export class Canvas {
  readonly data: Float32Array;

  constructor(readonly width: number, readonly height: number) {
    this.data = new Float32Array(width * height * 3);
  }

  fill(color: Color): void {
    for (let i = 0; i < this.data.length; i += 3) {
      this.data[i] = color[0];
      this.data[i + 1] = color[1];
      this.data[i + 2] = color[2];
    }
  }

  /** Sets every pixel from a function of its centre (no supersampling). */
  fillWith(shade: (x: number, y: number, rgb: Float64Array) => void): void {
    const rgb = new Float64Array(3);
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        shade(x + 0.5, y + 0.5, rgb);
        const i = (y * this.width + x) * 3;
        this.data[i] = rgb[0];
        this.data[i + 1] = rgb[1];
        this.data[i + 2] = rgb[2];
      }
    }
  }

  /**
   * Composites a shape over the canvas inside the box [x0, x1) x [y0, y1), averaging `samples`^2
   * sub-pixel evaluations of the shader per pixel so edges are antialiased.
   */
  paint(x0: number, y0: number, x1: number, y1: number, shader: Shader, samples = 3): void {
    const left = Math.max(0, Math.floor(x0));
    const top = Math.max(0, Math.floor(y0));
    const right = Math.min(this.width, Math.ceil(x1));
    const bottom = Math.min(this.height, Math.ceil(y1));
    const rgba = new Float64Array(4);
    const perPixel = samples * samples;
    for (let py = top; py < bottom; py++) {
      for (let px = left; px < right; px++) {
        let r = 0, g = 0, b = 0, a = 0;
        for (let sy = 0; sy < samples; sy++) {
          for (let sx = 0; sx < samples; sx++) {
            if (!shader(px + (sx + 0.5) / samples, py + (sy + 0.5) / samples, rgba)) continue;
            const alpha = rgba[3];
            r += rgba[0] * alpha;
            g += rgba[1] * alpha;
            b += rgba[2] * alpha;
            a += alpha;
          }
        }
        if (a === 0) continue;
        const i = (py * this.width + px) * 3;
        const keep = 1 - a / perPixel;
        this.data[i] = this.data[i] * keep + r / perPixel;
        this.data[i + 1] = this.data[i + 1] * keep + g / perPixel;
        this.data[i + 2] = this.data[i + 2] * keep + b / perPixel;
      }
    }
  }

  /** A filled disc of one colour. */
  disc(cx: number, cy: number, radius: number, color: Color, alpha = 1, samples = 3): void {
    const r2 = radius * radius;
    this.paint(cx - radius, cy - radius, cx + radius, cy + radius, (x, y, rgba) => {
      const dx = x - cx;
      const dy = y - cy;
      if (dx * dx + dy * dy > r2) return false;
      setRgba(rgba, color, alpha);
      return true;
    }, samples);
  }

  /** A capsule (thick line segment) of one colour. */
  segment(ax: number, ay: number, bx: number, by: number, halfWidth: number, color: Color, alpha = 1): void {
    const dx = bx - ax;
    const dy = by - ay;
    const length2 = dx * dx + dy * dy || 1;
    const w2 = halfWidth * halfWidth;
    this.paint(
      Math.min(ax, bx) - halfWidth, Math.min(ay, by) - halfWidth,
      Math.max(ax, bx) + halfWidth, Math.max(ay, by) + halfWidth,
      (x, y, rgba) => {
        const t = Math.min(1, Math.max(0, ((x - ax) * dx + (y - ay) * dy) / length2));
        const ex = x - (ax + t * dx);
        const ey = y - (ay + t * dy);
        if (ex * ex + ey * ey > w2) return false;
        setRgba(rgba, color, alpha);
        return true;
      },
    );
  }

  /** Adds independent zero-mean noise of standard deviation sigma to every channel value (uniform: cheaper than Gaussian, looks the same). */
  addNoise(rng: Rng, sigma: number): void {
    const width = sigma * Math.sqrt(12);
    for (let i = 0; i < this.data.length; i++) this.data[i] += width * (rng.next() - 0.5);
  }

  /** 8-bit RGB (HWC), clamped and rounded. */
  toRgbBytes(): Uint8Array {
    const out = new Uint8Array(this.data.length);
    for (let i = 0; i < this.data.length; i++) out[i] = toByte(this.data[i]);
    return out;
  }
}

export function setRgba(rgba: Float64Array, color: Color, alpha = 1): void {
  rgba[0] = color[0];
  rgba[1] = color[1];
  rgba[2] = color[2];
  rgba[3] = alpha;
}

export function toByte(value: number): number {
  return value <= 0 ? 0 : value >= 1 ? 255 : Math.round(value * 255);
}

export function clamp01(value: number): number {
  return value < 0 ? 0 : value > 1 ? 1 : value;
}

/** Smooth random field in about [0, 1]: bilinear-smoothstep interpolation of a random lattice (value noise). */
export class ValueNoise {
  private readonly lattice: Float64Array;

  constructor(rng: Rng, private readonly cells: number, private readonly cellSize: number) {
    this.lattice = new Float64Array((cells + 1) * (cells + 1));
    for (let i = 0; i < this.lattice.length; i++) this.lattice[i] = rng.next();
  }

  at(x: number, y: number): number {
    const n = this.cells;
    const gx = (((x / this.cellSize) % n) + n) % n;
    const gy = (((y / this.cellSize) % n) + n) % n;
    const ix = Math.floor(gx);
    const iy = Math.floor(gy);
    const fx = smoothstep(gx - ix);
    const fy = smoothstep(gy - iy);
    const row = n + 1;
    const v00 = this.lattice[iy * row + ix];
    const v10 = this.lattice[iy * row + ix + 1];
    const v01 = this.lattice[(iy + 1) * row + ix];
    const v11 = this.lattice[(iy + 1) * row + ix + 1];
    const top = v00 + (v10 - v00) * fx;
    const bottom = v01 + (v11 - v01) * fx;
    return top + (bottom - top) * fy;
  }
}

function smoothstep(t: number): number {
  return t * t * (3 - 2 * t);
}

/** HSV (all in [0, 1]) to RGB. */
export function hsv(h: number, s: number, v: number): Color {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  switch (((i % 6) + 6) % 6) {
    case 0: return [v, t, p];
    case 1: return [q, v, p];
    case 2: return [p, v, t];
    case 3: return [p, q, v];
    case 4: return [t, p, v];
    default: return [v, p, q];
  }
}

export function luminance(c: Color): number {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}
