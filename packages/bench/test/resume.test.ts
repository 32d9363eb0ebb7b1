import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURE, tinySettings, tinyTasks } from './helpers.js';

const cellFiles = (out: string) => (existsSync(join(out, 'cells')) ? readdirSync(join(out, 'cells')).filter((f) => f.endsWith('.json')).sort() : []);

function runBenchProcess(options: object, killWhen?: (out: string) => boolean): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, 'bench', JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (d) => (stderr += d));
    const timer = killWhen
      ? setInterval(() => {
          if (killWhen((options as { out: string }).out)) child.kill('SIGKILL');
        }, 50)
      : undefined;
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearInterval(timer);
      if (code !== 0 && !signal) reject(new Error(`bench process exited ${code}: ${stderr}`));
      else resolve({ code, signal, stderr });
    });
  });
}

describe('a killed run resumes', () => {
  it('keeps the finished cells, never recomputes them, and runs only the rest', async () => {
    const tasks = await tinyTasks();
    const out = mkdtempSync(join(tmpdir(), 'vqt-bench-resume-'));
    const options = { request: { methods: ['linear', 'not-a-method'], tasks: ['blob_patch', 'dsprites_loc'], seeds: 2 }, settings: tinySettings(tasks), out };

    // Killed (SIGKILL, no cleanup) as soon as the first cell's file exists.
    const first = await runBenchProcess(options, (dir) => cellFiles(dir).length >= 1);
    expect(first.signal).toBe('SIGKILL');
    const kept = cellFiles(out);
    expect(kept.length).toBeGreaterThanOrEqual(1);
    expect(kept.length).toBeLessThan(4);
    expect(readdirSync(join(out, 'cells')).every((f) => !f.endsWith('.tmp'))).toBe(true);
    const before = new Map(kept.map((f) => [f, readFileSync(join(out, 'cells', f), 'utf8')]));

    const second = await runBenchProcess(options);
    // Progress lines name each cell computed in this invocation: '[k/4] <id>: test top-1 ...'.
    const started = [...second.stderr.matchAll(/^\[\d+\/4\] (\S+): test top-1/gm)].map((m) => m[1]);
    expect(cellFiles(out)).toEqual(['blob_patch--linear--s0.json', 'blob_patch--linear--s1.json', 'dsprites_loc--linear--s0.json', 'dsprites_loc--linear--s1.json']);
    // The finished cells were neither rerun nor rewritten; exactly the others ran.
    for (const [file, text] of before) {
      expect(started).not.toContain(file.slice(0, -5));
      expect(readFileSync(join(out, 'cells', file), 'utf8')).toBe(text);
    }
    expect(started.length).toBe(4 - kept.length);

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.cells.map((c: { id: string }) => c.id).sort()).toEqual(cellFiles(out).map((f) => f.slice(0, -5)));
    expect(results.skipped).toEqual([expect.objectContaining({ method: 'not-a-method' })]);
    expect(results.missingCells).toEqual([]);
    const linear = results.variants.find((v: { label: string }) => v.label === 'linear');
    expect(linear.tasks.blob_patch.n).toBe(2);
    expect(linear.peakStepBytes).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'table.md'), 'utf8')).toContain('| linear |');
  });
});
