import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBench } from '../src/suite.js';
import { FIXTURE, tinySettings, tinyTasks } from './helpers.js';

const SLOW_WORKER = new URL('./fixtures/slow-ipc-worker.mjs', import.meta.url).pathname;

describe('local worker pool', () => {
  it('runs cells on worker processes and hands a dead worker\'s cell to a new one', async () => {
    const tasks = await tinyTasks();
    const out = mkdtempSync(join(tmpdir(), 'vqt-bench-pool-'));
    const workers: ChildProcess[] = [];
    const starts: string[] = [];
    let killed: string | undefined;
    const spawnWorker = () => {
      const child = fork(FIXTURE, ['ipc'], { stdio: ['ignore', 'pipe', 'ignore', 'ipc'] });
      workers.push(child);
      child.stdout!.on('data', (d: Buffer) => {
        for (const line of String(d).split('\n').filter((l) => l.startsWith('start '))) {
          starts.push(line.slice(6));
          // The first worker dies at its first cell.
          if (child === workers[0] && !killed) {
            killed = line.slice(6);
            child.kill('SIGKILL');
          }
        }
      });
      return child;
    };
    const log: string[] = [];
    const outcome = await runBench({
      request: { methods: ['linear'], tasks: ['blob_patch', 'dsprites_loc'], seeds: 1 },
      settings: tinySettings(tasks),
      out,
      execution: { kind: 'pool', workers: 2, spawn: spawnWorker },
      command: 'test',
      log: (line) => log.push(line),
    });
    expect(outcome.failures).toEqual([]);
    expect(readdirSync(join(out, 'cells')).sort()).toEqual(['blob_patch--linear--s0.json', 'dsprites_loc--linear--s0.json']);
    expect(killed).toBeDefined();
    expect(workers.length).toBe(3);
    expect(starts.filter((id) => id === killed).length).toBe(2);
    expect(log.some((l) => l.includes(`died (SIGKILL) during ${killed}`))).toBe(true);
    expect(workers.every((w) => w.exitCode !== null || w.signalCode !== null)).toBe(true);
  });

  it('a worker whose parent goes away mid-cell exits at once instead of finishing the cell', async () => {
    const child = fork(SLOW_WORKER, [], { stdio: ['ignore', 'pipe', 'ignore', 'ipc'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => child.once('message', () => resolve())); // ready
    child.send({ type: 'cell', cell: { id: 'slow' }, settings: {} });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => String(d).includes('start slow') && resolve()));
    const disconnected = Date.now();
    child.disconnect();
    expect(await exited).toBe(1);
    expect(Date.now() - disconnected).toBeLessThan(10_000);
  }, 30_000);
});
