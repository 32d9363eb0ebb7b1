import { Queue } from 'bullmq';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { redisConnection } from '../src/queue.js';
import { runBench } from '../src/suite.js';
import { FIXTURE, tinySettings, tinyTasks } from './helpers.js';

// Debian's redis-server (apt-get install redis-server; .ci/run installs it).
const REDIS = '/usr/bin/redis-server';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (data: Buffer) => {
      text += data;
      const match = text.match(pattern);
      if (match) {
        child.stdout!.off('data', onData);
        resolve(match);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before printing ${pattern}`)));
  });
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe.skipIf(!existsSync(REDIS))('BullMQ queue across workers', () => {
  it('runs every cell exactly once when a worker is killed mid-cell', async () => {
    const port = await freePort();
    const redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(redis);
    await waitForLine(redis, /Ready to accept connections/, 'redis-server');
    const url = `redis://127.0.0.1:${port}`;
    const queueName = `test-${process.pid}`;

    const startWorker = async () => {
      const child = spawn(process.execPath, [FIXTURE, 'queue-worker', url, queueName], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stderr!.resume();
      children.push(child);
      const lines: string[] = [];
      child.stdout!.on('data', (d: Buffer) => lines.push(...String(d).split('\n').filter(Boolean)));
      await waitForLine(child, /ready/, 'queue worker');
      return { child, lines };
    };
    const doomed = await startWorker();
    const survivor = await startWorker();

    // The first cell the doomed worker takes: kill it there (SIGKILL, so it cannot release its lock).
    const killed = waitForLine(doomed.child, /start (\S+)/, 'doomed worker').then((match) => {
      doomed.child.kill('SIGKILL');
      return match[1];
    });

    const tasks = await tinyTasks();
    const out = mkdtempSync(join(tmpdir(), 'vqt-bench-queue-'));
    const outcome = await runBench({
      request: { methods: ['linear'], tasks: ['blob_patch', 'dsprites_loc'], seeds: 2 },
      settings: { ...tinySettings(tasks), epochs: 2 },
      out,
      execution: { kind: 'queue', url, queueName },
      command: 'test',
      log: () => {},
    });
    const killedCell = await killed;

    const ids = ['blob_patch--linear--s0', 'blob_patch--linear--s1', 'dsprites_loc--linear--s0', 'dsprites_loc--linear--s1'];
    expect(outcome.failures).toEqual([]);
    expect(readdirSync(join(out, 'cells')).filter((f) => f.endsWith('.json')).sort()).toEqual(ids.map((id) => `${id}.json`));
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.cells.map((c: { id: string }) => c.id).sort()).toEqual(ids);
    // The killed cell was finished by the survivor, after BullMQ found it stalled.
    const result = results.cells.find((c: { id: string }) => c.id === killedCell);
    expect(result.worker.pid).toBe(survivor.child.pid);
    expect(doomed.lines.filter((l) => l.startsWith('start '))).toEqual([`start ${killedCell}`]);
    // The survivor started each cell exactly once.
    expect(survivor.lines.filter((l) => l.startsWith('start ')).sort()).toEqual(ids.map((id) => `start ${id}`));

    const queue = new Queue(queueName, { connection: redisConnection(url) });
    expect(await queue.getJobCounts('completed', 'failed', 'active', 'wait')).toEqual({ completed: 4, failed: 0, active: 0, wait: 0 });
    await queue.close();

    // Enqueuing the same run again finds the finished jobs: nothing is recomputed.
    const again = await runBench({
      request: { methods: ['linear'], tasks: ['blob_patch', 'dsprites_loc'], seeds: 2 },
      settings: { ...tinySettings(tasks), epochs: 2 },
      out: mkdtempSync(join(tmpdir(), 'vqt-bench-queue-again-')),
      execution: { kind: 'queue', url, queueName },
      command: 'test',
      log: () => {},
    });
    expect(again.results.cells.length).toBe(4);
    expect(survivor.lines.filter((l) => l.startsWith('start ')).length).toBe(4);

    survivor.child.kill('SIGTERM');
    redis.kill('SIGTERM');
  });
});
