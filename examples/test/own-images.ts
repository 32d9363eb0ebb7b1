import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';

/** The three classes of a made-up data set of one's own: grey stripes one way or the other, or a disc. */
export const OWN_CLASSES = ['disc', 'horizontal', 'vertical'] as const;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One PNG of a class, `size` pixels square (not the backbone's size, so the resize is exercised), with noise. */
export function ownImage(kind: (typeof OWN_CLASSES)[number], size: number, seed: number): Buffer {
  const random = mulberry32(seed);
  const png = new PNG({ width: size, height: size });
  const period = 6 + Math.floor(random() * 6);
  const phase = random() * period;
  const [cx, cy, r] = [size * (0.3 + 0.4 * random()), size * (0.3 + 0.4 * random()), size * (0.15 + 0.15 * random())];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const on = kind === 'disc' ? (x - cx) ** 2 + (y - cy) ** 2 < r * r : ((kind === 'horizontal' ? y : x) + phase) % period < period / 2;
      const value = Math.max(0, Math.min(255, (on ? 200 : 40) + (random() - 0.5) * 60));
      const i = 4 * (y * size + x);
      png.data[i] = png.data[i + 1] = png.data[i + 2] = value;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

/** `<root>/<class>/<n>.png`, perClass images of each class; returns root. */
export function writeOwnFolder(root: string, perClass: number, seed: number, size = 56): string {
  OWN_CLASSES.forEach((kind, c) => {
    mkdirSync(join(root, kind), { recursive: true });
    for (let i = 0; i < perClass; i++) writeFileSync(join(root, kind, `${i}.png`), ownImage(kind, size, seed + 1000 * c + i));
  });
  return root;
}
