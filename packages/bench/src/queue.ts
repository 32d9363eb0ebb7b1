import { Job, Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { CellResult } from './cell.js';
import { cellKey, type BenchCell, type BenchSettings } from './plan.js';

/** BullMQ queue of benchmark cells. One queue serves every run; job ids keep runs apart. */
export const DEFAULT_QUEUE_NAME = 'vqt-bench';

export interface CellJobData {
  cell: BenchCell;
  settings: BenchSettings;
}

/** ioredis connection options from redis://[user:password@]host[:port][/db] (rediss:// for TLS). */
export function redisConnection(url: string): ConnectionOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--queue: "${url}" is not a URL; use redis://host:6379`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new Error(`--queue: "${url}" must start with redis:// or rediss://`);
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new Error(`--queue: database "${db}" in "${url}" must be a number`);
  return {
    host: parsed.hostname || 'localhost',
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    // BullMQ workers block on Redis; ioredis must not give up on those commands.
    maxRetriesPerRequest: null,
  };
}

/** A cell's job id: its result identity (settings, method options, task, seed), so reruns find finished jobs. */
export function jobIdOf(cell: BenchCell, settings: BenchSettings): string {
  return `cell-${cellKey(settings, cell)}`;
}

export interface QueueCoordinatorOptions {
  url: string;
  queueName?: string;
  onResult: (result: CellResult) => void;
  onError: (cell: BenchCell, message: string) => void;
  log: (line: string) => void;
  /** How often job states are read back (default 1000 ms). */
  pollMs?: number;
}

/**
 * Enqueues the cells as BullMQ jobs (one job per cell; adding an existing job id is a no-op, so a
 * rerun after a crash picks up finished jobs instead of recomputing them; failed ones are retried)
 * and collects each job's return value as it completes. Workers started anywhere with
 * `vqt worker --queue <url>` run them; a worker that dies mid-cell loses its lock and BullMQ's
 * stalled-job check hands the cell to another worker.
 */
export async function runCellsOnQueue(cells: BenchCell[], settings: BenchSettings, options: QueueCoordinatorOptions): Promise<void> {
  const queue = new Queue<CellJobData, CellResult>(options.queueName ?? DEFAULT_QUEUE_NAME, { connection: redisConnection(options.url) });
  try {
    const pending = new Map(cells.map((cell) => [jobIdOf(cell, settings), cell]));
    for (const [jobId, cell] of pending) {
      const existing = await Job.fromId<CellJobData, CellResult>(queue, jobId);
      if (existing && (await existing.isFailed())) {
        options.log(`${cell.id}: retrying its failed job (${existing.failedReason.split('\n')[0]})`);
        await existing.retry('failed');
      }
    }
    await queue.addBulk(
      cells.map((cell) => ({
        name: cell.id,
        data: { cell, settings },
        opts: { jobId: jobIdOf(cell, settings), removeOnComplete: false, removeOnFail: false },
      })),
    );
    options.log(`queued ${cells.length} cell${cells.length === 1 ? '' : 's'} on ${options.url} (queue ${queue.name}); start workers with: vqt worker --queue ${options.url}`);
    while (pending.size > 0) {
      for (const [jobId, cell] of [...pending]) {
        const job = await Job.fromId<CellJobData, CellResult>(queue, jobId);
        if (!job) throw new Error(`job ${jobId} (${cell.id}) vanished from queue ${queue.name}; was the queue obliterated?`);
        const state = await job.getState();
        if (state === 'completed') {
          pending.delete(jobId);
          options.onResult(job.returnvalue);
        } else if (state === 'failed') {
          pending.delete(jobId);
          options.onError(cell, job.failedReason);
        }
      }
      if (pending.size > 0) await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
    }
  } finally {
    await queue.close();
  }
}

export interface QueueWorkerOptions {
  url: string;
  queueName?: string;
  run: (cell: BenchCell, settings: BenchSettings) => Promise<CellResult>;
  log: (line: string) => void;
  /**
   * How long a cell's lock lasts without renewal (BullMQ renews it every half of this while the
   * cell runs). A worker that dies loses it after this long, and its cell goes to another worker.
   * Default 120 s: a long synchronous kernel on a big backbone must not look like a dead worker.
   */
  lockDurationMs?: number;
  /** How often this worker looks for stalled cells (default 30 s). */
  stalledIntervalMs?: number;
  /** A cell that stalls more often than this fails (default 2). */
  maxStalledCount?: number;
}

/** A BullMQ worker that runs one cell at a time and returns its result to the queue. */
export function startQueueWorker(options: QueueWorkerOptions): Worker<CellJobData, CellResult> {
  const worker = new Worker<CellJobData, CellResult>(
    options.queueName ?? DEFAULT_QUEUE_NAME,
    async (job) => {
      options.log(`cell ${job.data.cell.id}: started (job ${job.id})`);
      const result = await options.run(job.data.cell, job.data.settings);
      options.log(`cell ${job.data.cell.id}: done, test top-1 ${(100 * result.testTop1).toFixed(2)}%`);
      return result;
    },
    {
      connection: redisConnection(options.url),
      concurrency: 1,
      lockDuration: options.lockDurationMs ?? 120_000,
      stalledInterval: options.stalledIntervalMs ?? 30_000,
      maxStalledCount: options.maxStalledCount ?? 2,
    },
  );
  worker.on('failed', (job, error) => options.log(`cell ${job?.data.cell.id ?? '?'}: failed: ${error.message}`));
  worker.on('error', (error) => options.log(`queue worker: ${error.message}`));
  return worker;
}
