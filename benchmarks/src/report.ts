import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arrayImageSplit, describeBackend, type BackendInfo, type ImageSplit, type LoadedVit, type VisionTransformer } from '@vqt/core';
import os from 'node:os';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** Prints an aligned table and writes the same numbers (plus the machine) as JSON. */
export function report(name: string, backend: BackendInfo, rows: Record<string, string | number>[], extra: Record<string, unknown> = {}): string {
  const columns = Object.keys(rows[0] ?? {});
  const width = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(width[i])).join('  ');
  console.log(describeBackend(backend));
  console.log(line(columns));
  for (const row of rows) console.log(line(columns.map((c) => String(row[c]))));
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1), node: process.version };
  writeFileSync(file, `${JSON.stringify({ benchmark: name, date: new Date().toISOString(), backend, machine, rows, ...extra }, null, 2)}\n`);
  console.log(`wrote ${file}`);
  return file;
}

export function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** Seeded normal noise as a host array (tf.tidy must not return a typed array: it walks every element). */
export function randomImages(shape: number[], seed: number): Float32Array {
  const t = tf.randomNormal(shape, 0, 1, 'float32', seed);
  const values = t.dataSync().slice() as Float32Array;
  t.dispose();
  return values;
}

/** A random-weight ViT as the registry's methods take a backbone (no file behind it). */
export function asBackbone(vit: VisionTransformer, preset: string): LoadedVit {
  return { model: vit, sha256: '0'.repeat(64), name: preset, file: preset } as unknown as LoadedVit;
}

/** `count` seeded random images with the labels 0..9 in turn, as a split a method fits on. */
export function randomSplit(count: number, side: number): ImageSplit {
  return arrayImageSplit(randomImages([count, 3, side, side], 1), Int32Array.from({ length: count }, (_, i) => i % 10), side, { numClasses: 10 });
}
