import { writeFileAtomic } from '@vqt/core';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CellResult } from './cell.js';
import { cellKey, type BenchCell, type BenchSettings } from './plan.js';

/**
 * A run's results folder. Each finished cell is one file, cells/<id>.json, written atomically
 * (temporary file, then rename), so a killed run leaves only whole results and a resumed run never
 * recomputes them.
 */
export class ResultsFolder {
  readonly cellsDir: string;

  constructor(readonly dir: string) {
    this.cellsDir = join(dir, 'cells');
  }

  ensure(): void {
    mkdirSync(this.cellsDir, { recursive: true });
  }

  fileOf(id: string): string {
    return join(this.cellsDir, `${id}.json`);
  }

  /** Every cell result in the folder, by id. A file that is not a cell result is an error naming it. */
  readAll(): Map<string, CellResult> {
    const results = new Map<string, CellResult>();
    if (!existsSync(this.cellsDir)) return results;
    for (const name of readdirSync(this.cellsDir).sort()) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const file = join(this.cellsDir, name);
      let parsed: CellResult;
      try {
        parsed = JSON.parse(readFileSync(file, 'utf8')) as CellResult;
      } catch (error) {
        throw new Error(`${file}: not valid JSON (${(error as Error).message}); delete it to recompute that cell`);
      }
      if (typeof parsed.id !== 'string' || typeof parsed.key !== 'string' || typeof parsed.testTop1 !== 'number') {
        throw new Error(`${file}: not a cell result (needs id, key, testTop1); delete it to recompute that cell`);
      }
      if (`${parsed.id}.json` !== name) throw new Error(`${file}: holds cell "${parsed.id}", not "${name.slice(0, -5)}"`);
      results.set(parsed.id, parsed);
    }
    return results;
  }

  /** The stored result of this cell when it was computed with the same settings and options. */
  finished(cell: BenchCell, settings: BenchSettings, all: Map<string, CellResult>): CellResult | undefined {
    const result = all.get(cell.id);
    return result && result.key === cellKey(settings, cell) ? result : undefined;
  }

  write(result: CellResult): void {
    this.ensure();
    writeFileAtomic(this.fileOf(result.id), `${JSON.stringify(result, null, 2)}\n`);
  }

  writeText(name: string, text: string | Uint8Array): string {
    mkdirSync(this.dir, { recursive: true });
    const file = join(this.dir, name);
    writeFileAtomic(file, text);
    return file;
  }
}
