import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ImageLoadFailure } from './image-file.js';
import type { PreprocessParams } from './preprocess.js';

export interface DecodeRequest {
  readonly id: number;
  readonly path: string;
  readonly params: PreprocessParams;
}

export interface DecodeResponse {
  readonly id: number;
  readonly pixels?: Float32Array;
  readonly failure?: { readonly kind: 'missing' | 'decode' | 'other'; readonly reason: string };
}

interface PendingRequest {
  readonly resolve: (pixels: Float32Array) => void;
  readonly reject: (error: Error) => void;
  readonly slot: WorkerSlot;
}

interface WorkerSlot {
  readonly worker: Worker;
  inFlight: number;
}

/**
 * The compiled worker entry next to this module (dist/decode-worker.js). When running from sources
 * (e.g. under vitest) it does not exist and decoding falls back to the main thread.
 */
export function defaultWorkerScript(): string | undefined {
  try {
    const path = fileURLToPath(new URL('./decode-worker.js', import.meta.url));
    return existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/** 'auto': one worker per spare core, at most 4, and none when the worker script is unavailable. */
export function resolveWorkerCount(option: number | 'auto' | undefined, script: string | undefined): number {
  if (option === undefined || option === 'auto') {
    return script ? Math.min(4, Math.max(0, availableParallelism() - 1)) : 0;
  }
  if (!Number.isInteger(option) || option < 0) throw new RangeError(`decodeWorkers must be a non-negative integer or 'auto', got ${option}`);
  if (option > 0 && !script) {
    throw new Error('decodeWorkers > 0 needs the compiled decode-worker.js (pass workerScript, or use the built package)');
  }
  return option;
}

/**
 * A fixed set of decode workers. Each request goes to the least-busy worker; idle workers are
 * unref'd so an abandoned pool never keeps the process alive, and busy ones are ref'd so pending
 * work is not cut short.
 */
export class DecodePool {
  private readonly slots: WorkerSlot[] = [];
  private readonly pending = new Map<number, PendingRequest>();
  private nextId = 0;
  private broken: Error | undefined;

  constructor(script: string | URL, count: number) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(script);
      const slot: WorkerSlot = { worker, inFlight: 0 };
      worker.unref();
      worker.on('message', (response: DecodeResponse) => this.settle(response));
      worker.on('error', (error) => this.fail(new Error(`decode worker failed: ${error.message}`)));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`decode worker exited with code ${code}`));
      });
      this.slots.push(slot);
    }
  }

  load(path: string, params: PreprocessParams): Promise<Float32Array> {
    if (this.broken) return Promise.reject(this.broken);
    const slot = this.slots.reduce((best, s) => (s.inFlight < best.inFlight ? s : best));
    const id = this.nextId++;
    return new Promise<Float32Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      if (slot.inFlight++ === 0) slot.worker.ref();
      slot.worker.postMessage({ id, path, params } satisfies DecodeRequest);
    });
  }

  async close(): Promise<void> {
    this.fail(new Error('decode pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private settle(response: DecodeResponse): void {
    const request = this.pending.get(response.id);
    if (!request) return;
    this.pending.delete(response.id);
    if (--request.slot.inFlight === 0) request.slot.worker.unref();
    if (response.pixels) request.resolve(response.pixels);
    else if (response.failure && response.failure.kind !== 'other') {
      request.reject(new ImageLoadFailure(response.failure.kind, response.failure.reason));
    } else request.reject(new Error(response.failure?.reason ?? 'decode worker returned nothing'));
  }

  private fail(error: Error): void {
    this.broken ??= error;
    for (const request of this.pending.values()) request.reject(error);
    this.pending.clear();
    for (const slot of this.slots) {
      slot.inFlight = 0;
      slot.worker.unref();
    }
  }
}
