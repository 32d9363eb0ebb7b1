import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { availableParallelism } from 'node:os';
import { shareWasmIdentityBuffers } from './backend-wasm-identity.js';
import { enableWasmThreads } from './backend-wasm-threads.js';

/** Where the math runs, best first. The node bindings are optional: never a hard dependency. */
export type BackendKind = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';

/** The backend `initBackend` chose: `describeBackend` prints it as one line. */
export interface BackendInfo {
  kind: BackendKind;
  /** tfjs's own name for the registered backend ('tensorflow', 'wasm', 'cpu'). */
  tfBackend: string;
  threads: number;
  simd: boolean;
  /** Why better backends were skipped, one line each. */
  skipped: string[];
}

/** Options of `initBackend`; each also has an environment variable. */
export interface BackendOptions {
  /** Force one backend; defaults to $VQT_BACKEND, else the first that works. */
  backend?: BackendKind | 'auto';
  /**
   * Threads for wasm; defaults to $VQT_THREADS, else min(2, available CPUs). More than 1 starts
   * tfjs's threaded SIMD build (see backend-wasm-threads.ts) and falls back to 1 thread, noting why
   * in `skipped`, if it cannot. The pool's workers do not keep Node alive.
   */
  threads?: number;
}

const ORDER: BackendKind[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];
const ALIASES: Record<string, BackendKind | 'auto'> = {
  auto: 'auto',
  'node-gpu': 'tfjs-node-gpu',
  'tfjs-node-gpu': 'tfjs-node-gpu',
  gpu: 'tfjs-node-gpu',
  node: 'tfjs-node',
  'tfjs-node': 'tfjs-node',
  tensorflow: 'tfjs-node',
  wasm: 'wasm',
  cpu: 'cpu',
};

/** A --backend / $VQT_BACKEND value ('node-gpu', 'node', 'wasm', 'cpu', 'auto', and aliases) as a BackendKind. */
export function parseBackendName(name: string): BackendKind | 'auto' {
  const kind = ALIASES[name.trim().toLowerCase()];
  if (!kind) throw new Error(`unknown backend "${name}"; use one of auto, node-gpu, node, wasm, cpu`);
  return kind;
}

let active: BackendInfo | undefined;

/** The backend chosen by initBackend, if any. */
export function currentBackend(): BackendInfo | undefined {
  return active;
}

/**
 * Picks and initialises the compute backend: @tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node
 * (both loaded only if installed), then wasm with SIMD, then cpu. Idempotent.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const requested = options.backend ?? (process.env.VQT_BACKEND ? parseBackendName(process.env.VQT_BACKEND) : 'auto');
  requestedThreads(options); // a bad thread count is an error, not a reason to skip wasm
  if (active && (requested === 'auto' || requested === active.kind)) return active;
  const candidates = requested === 'auto' ? ORDER : [requested];
  const skipped: string[] = [];
  for (const kind of candidates) {
    try {
      const info = await tryBackend(kind, options, skipped);
      if (info) {
        active = info;
        return info;
      }
    } catch (error) {
      skipped.push(`${kind}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start (${skipped.join('; ')})`);
}

async function tryBackend(kind: BackendKind, options: BackendOptions, skipped: string[]): Promise<BackendInfo | undefined> {
  if (kind === 'tfjs-node-gpu' || kind === 'tfjs-node') {
    const moduleName = kind === 'tfjs-node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
    try {
      await import(/* @vite-ignore */ moduleName);
    } catch {
      skipped.push(`${kind}: ${moduleName} is not installed`);
      return undefined;
    }
    if (!(await tf.setBackend('tensorflow'))) throw new Error(`${moduleName} loaded but the tensorflow backend did not start`);
    await tf.ready();
    return { kind, tfBackend: 'tensorflow', threads: 0, simd: false, skipped };
  }
  if (kind === 'wasm') {
    const threads = requestedThreads(options);
    if (threads > 1) {
      const result = await enableWasmThreads(threads);
      if (result.reason) skipped.push(`wasm threads: ${result.reason}`);
    }
    // Threaded: already active (setBackend is a no-op); otherwise tfjs's own single-threaded build.
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not start');
    await tf.ready();
    shareWasmIdentityBuffers();
    const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    return { kind, tfBackend: 'wasm', threads: getThreadsCount(), simd, skipped };
  }
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not start');
  await tf.ready();
  return { kind: 'cpu', tfBackend: 'cpu', threads: 1, simd: false, skipped };
}

function requestedThreads(options: BackendOptions): number {
  if (options.threads !== undefined) return checkThreads(options.threads, String(options.threads), 'threads');
  const fromEnv = process.env.VQT_THREADS?.trim();
  if (fromEnv) return checkThreads(Number(fromEnv), JSON.stringify(fromEnv), 'VQT_THREADS');
  // 2 threads gave ~2x on large matmuls (ENGINE.md); more is untested here, so not a default.
  return Math.max(1, Math.min(2, availableParallelism()));
}

function checkThreads(threads: number, shown: string, name: string): number {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`${name} must be a positive integer (got ${shown})`);
  return threads;
}

/** One line for logs: "backend: wasm (SIMD, 1 thread)". */
export function describeBackend(info: BackendInfo): string {
  const details = info.kind === 'wasm' ? ` (${info.simd ? 'SIMD' : 'no SIMD'}, ${info.threads} thread${info.threads === 1 ? '' : 's'})` : '';
  return `backend: ${info.kind}${details}`;
}
