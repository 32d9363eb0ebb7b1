import type { ChildProcess } from 'node:child_process';
import type { CellResult } from './cell.js';
import type { BenchCell, BenchSettings } from './plan.js';

/** Parent -> worker: run this cell. Worker -> parent: ready, a result, or the cell's error. */
export type PoolRequest = { type: 'cell'; cell: BenchCell; settings: BenchSettings };
export type PoolReply = { type: 'ready' } | { type: 'result'; id: string; result: CellResult } | { type: 'error'; id: string; message: string };

export interface PoolOptions {
  workers: number;
  /** Starts one worker process with an IPC channel that runs serveIpcWorker (the CLI forks `vqt worker --ipc`). */
  spawn: () => ChildProcess;
  onResult: (result: CellResult) => void;
  onError: (cell: BenchCell, message: string) => void;
  log: (line: string) => void;
  /** A cell whose worker died is retried on a new worker this many times (default 1). */
  retries?: number;
}

/**
 * Runs cells on a pool of worker processes on this machine, one cell per worker at a time. A worker
 * that dies mid-cell is replaced and its cell handed to another worker (once, by default); a cell
 * that throws is reported and not retried (the same input would throw again).
 */
export async function runCellsInPool(cells: BenchCell[], settings: BenchSettings, options: PoolOptions): Promise<void> {
  const queue = [...cells];
  const attempts = new Map<string, number>();
  const retries = options.retries ?? 1;
  let active = 0;
  await new Promise<void>((resolveAll, rejectAll) => {
    const finishIfDone = () => {
      if (queue.length === 0 && active === 0) resolveAll();
    };
    const start = () => {
      const child = options.spawn();
      active++;
      let current: BenchCell | undefined;
      let exited = false;
      const next = () => {
        current = queue.shift();
        if (!current) {
          child.disconnect?.();
          return;
        }
        attempts.set(current.id, (attempts.get(current.id) ?? 0) + 1);
        child.send({ type: 'cell', cell: current, settings } satisfies PoolRequest);
      };
      child.on('message', (message: PoolReply) => {
        if (message.type === 'ready') next();
        else if (message.type === 'result') {
          options.onResult(message.result);
          next();
        } else if (message.type === 'error') {
          options.onError(current!, message.message);
          next();
        }
      });
      child.on('error', (error) => {
        if (!exited) rejectAll(new Error(`bench worker process: ${error.message}`));
      });
      child.on('exit', (code, signal) => {
        exited = true;
        active--;
        if (current) {
          const cell = current;
          current = undefined;
          const tried = attempts.get(cell.id) ?? 1;
          options.log(`worker ${child.pid} died (${signal ?? `exit ${code}`}) during ${cell.id}`);
          if (tried <= retries) {
            queue.unshift(cell);
            start();
          } else {
            options.onError(cell, `its worker died ${tried} times (${signal ?? `exit ${code}`})`);
          }
        } else if (code !== 0 && code !== null && queue.length > 0) {
          rejectAll(new Error(`bench worker ${child.pid} exited with code ${code} before taking a cell`));
          return;
        }
        finishIfDone();
      });
    };
    const count = Math.max(1, Math.min(options.workers, cells.length));
    if (cells.length === 0) return resolveAll();
    for (let i = 0; i < count; i++) start();
  });
}

/**
 * The worker side of runCellsInPool: runs each cell it is sent, one at a time. When the parent
 * disconnects it finishes (idle) or exits at once (mid-cell: nobody is left to store the result).
 */
export function serveIpcWorker(run: (cell: BenchCell, settings: BenchSettings) => Promise<CellResult>, onDisconnect?: () => void): void {
  if (!process.send) throw new Error('serveIpcWorker: this process has no IPC channel (start it with child_process.fork)');
  const send = (reply: PoolReply) => process.send!(reply);
  let chain = Promise.resolve();
  process.on('message', (message: PoolRequest) => {
    if (message?.type !== 'cell') return;
    chain = chain.then(async () => {
      busy = true;
      try {
        send({ type: 'result', id: message.cell.id, result: await run(message.cell, message.settings) });
      } catch (error) {
        send({ type: 'error', id: message.cell.id, message: (error as Error).stack ?? String(error) });
      } finally {
        busy = false;
      }
    });
  });
  let busy = false;
  process.on('disconnect', () => {
    // A parent that is gone cannot receive the running cell's result (a killed `vqt bench`):
    // stop now rather than spend the cores on it. Cells are only stored by the parent.
    if (busy) process.exit(1);
    void chain.then(() => onDisconnect?.());
  });
  send({ type: 'ready' });
}
