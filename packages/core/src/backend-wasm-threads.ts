/**
 * Multi-threaded wasm under Node (tfjs issue 3830).
 *
 * tfjs-backend-wasm 4.22.0 never starts its threaded SIMD build under Node: the flag
 * WASM_HAS_MULTITHREAD_SUPPORT is hard-wired to false there, and its init() hands emscripten a
 * blob: URL for the pthread worker, which Node's Worker rejects. So we build the backend ourselves
 * from the package's own files: the emscripten glue in wasm-out/ (a real file, usable as the
 * workers' main script), the worker script written to a real file in a cache dir, and the exported
 * BackendWasm class; then we register that instance under the name 'wasm', so the wasm kernels apply.
 *
 * The thread count is capped by the C++ side at emscripten_num_logical_cores() / 2, i.e. half of
 * os.cpus().length, computed once by a static initialiser while the module starts. To get N threads
 * on a machine with fewer than 2N CPUs, os.cpus is padded for exactly that synchronous step (preRun
 * to onRuntimeInitialized) and restored right after.
 *
 * This relies on tfjs internals (the glue's file names, Module.PThread, the C exports BackendWasm
 * wraps), which is why the tfjs version is pinned. Any failure leaves tfjs's own single-threaded
 * wasm factory registered, as before, and reports why.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendWasm, getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';

export interface WasmThreadsResult {
  /** Threads the wasm backend really runs (XNNPACK's pool size, caller included); 1 on fallback. */
  threads: number;
  /** Set when the threaded build could not start, or gave fewer threads than requested. */
  reason?: string;
}

export interface WasmThreadsOptions {
  /** Give up on a start that takes longer than this. Default 60 s. */
  timeoutMs?: number;
  /**
   * For tests only: make the threaded path fail, to exercise the fallback. 'worker': the pthread
   * workers crash on load; 'check': the post-start matMul check reports a mismatch.
   * Default: $VQT_WASM_THREADS_FAIL ('1' means 'worker').
   */
  fail?: 'worker' | 'check';
}

/** The most threads tfjs's C++ side accepts (its pthread pool has 8 workers). */
export const MAX_WASM_THREADS = 8;

const WASM_PRIORITY = 2; // what tfjs-backend-wasm registers itself with
const GLUE = '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js';
const WORKER_SOURCE = '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js';

// The default import is the very object the glue asks for the CPU count (`require("os").cpus()`).
const osModule = os as { cpus: typeof os.cpus };
/** Process-wide handlers each emscripten module installs (and its dispose() clears), per backend. */
const listenersAtCreation = new WeakMap<BackendWasm, ProcessListeners>();

/** The parts of the emscripten module this file touches. */
interface PThreadApi {
  unusedWorkers: Worker[];
  runningWorkers: Worker[];
  loadWasmModuleToWorker(worker: Worker, onFinishedLoading?: (worker: Worker) => void): void;
}
interface ThreadedModule {
  PThread?: PThreadApi;
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  tfjs?: unknown;
}
interface FactoryConfig {
  locateFile(file: string, prefix: string): string;
  preRun: Array<() => void>;
  onRuntimeInitialized(): void;
  onAbort(what: unknown): void;
  PThread?: PThreadApi;
}
type ModuleFactory = (config: FactoryConfig) => Promise<ThreadedModule>;

/**
 * Makes 'wasm' the active tfjs backend running the threaded SIMD build with `threads` threads.
 * Must run before the wasm backend was initialised. On failure nothing is left behind: the 'wasm'
 * registration is tfjs's own again (single-threaded), no backend is set, and `reason` says why.
 */
export async function enableWasmThreads(threads: number, options: WasmThreadsOptions = {}): Promise<WasmThreadsResult> {
  if (!Number.isInteger(threads) || threads < 2) return { threads: 1, reason: `${threads} thread(s) requested` };
  const engine = tf.engine();
  const original = engine.registryFactory.wasm;
  if (!original) return { threads: 1, reason: 'the wasm backend is not registered' };
  if (engine.registry.wasm) return { threads: safeThreadsCount(), reason: 'the wasm backend was already initialised' };
  const fail = options.fail ?? failFromEnv();
  let backend: BackendWasm | undefined;
  try {
    if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))) throw new Error('this runtime has no wasm SIMD, which the threaded build needs');
    backend = await createThreadedBackend(Math.min(threads, MAX_WASM_THREADS), options.timeoutMs ?? 60_000, fail === 'worker');
    let prebuilt: BackendWasm | undefined = backend;
    tf.removeBackend('wasm');
    // First use takes the instance built above; a later re-initialisation builds a fresh one.
    tf.registerBackend('wasm', () => {
      const instance = prebuilt;
      prebuilt = undefined;
      return instance ?? createThreadedBackend(Math.min(threads, MAX_WASM_THREADS), options.timeoutMs ?? 60_000, false);
    }, original.priority ?? WASM_PRIORITY);
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") refused the threaded backend');
    await tf.ready();
    checkMatMul(fail === 'check');
  } catch (error) {
    restore(original, backend);
    return { threads: 1, reason: `threaded wasm did not start (${describeError(error)}); running 1 thread` };
  }
  const actual = safeThreadsCount();
  return actual < threads
    ? { threads: actual, reason: `${threads} threads requested, tfjs runs ${actual} (it allows at most ${MAX_WASM_THREADS})` }
    : { threads: actual };
}

/** Puts tfjs's own wasm factory back and drops the threaded module (its workers included). */
function restore(original: { factory: () => tf.KernelBackend | Promise<tf.KernelBackend>; priority: number }, backend: BackendWasm | undefined): void {
  const engine = tf.engine();
  const adopted = backend !== undefined && engine.registry.wasm === backend;
  // tfjs's module dispose() removes every process error handler, not only its own: put them back.
  const listeners = backend ? listenersAtCreation.get(backend) : undefined;
  if (engine.registryFactory.wasm && engine.registryFactory.wasm.factory !== original.factory) {
    tf.removeBackend('wasm'); // disposes the backend (and terminates its workers) if adopted
  }
  if (backend && !adopted) {
    try {
      backend.dispose();
    } catch {
      // already disposed
    }
  }
  if (listeners) restoreListeners(listeners);
  if (!engine.registryFactory.wasm) tf.registerBackend('wasm', original.factory, original.priority ?? WASM_PRIORITY);
  setThreadsCount(-1); // tfjs's default, so the single-threaded build is not asked for threads
}

/** Starts the threaded SIMD module and wraps it in tfjs's BackendWasm with `threads` threads. */
async function createThreadedBackend(threads: number, timeoutMs: number, brokenWorker: boolean): Promise<BackendWasm> {
  const factory = await loadFactory();
  const workerPath = brokenWorker ? writeCached('throw new Error("injected failure (VQT_WASM_THREADS_FAIL)");\n', '.fail.cjs') : await workerScript();
  const listenersBefore = processListeners();
  const realCpus = osModule.cpus;
  const restoreCpus = () => {
    osModule.cpus = realCpus;
  };
  let settled = false;
  let started = false;
  let config: FactoryConfig | undefined;
  const module = await new Promise<ThreadedModule>((resolve, reject) => {
    const failInit = (error: unknown) => {
      if (settled) return;
      settled = true;
      restoreCpus();
      reject(error instanceof Error ? error : new Error(describeError(error)));
    };
    const timer = setTimeout(() => failInit(new Error(`no start within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    // No mainScriptUrlOrBlob: the workers then importScripts() the glue's own file (its __filename),
    // a real file, where tfjs would hand them a blob: built from its bundle.
    config = {
      locateFile: (file, prefix) => (file.endsWith('.worker.js') ? workerPath : prefix + file),
      // The static initialiser that reads the CPU count runs between these two, synchronously.
      preRun: [() => padCpus(realCpus, 2 * threads)],
      onRuntimeInitialized: restoreCpus,
      onAbort: (what) => failInit(new Error(`aborted: ${describeError(what)}`)),
    };
    try {
      factory(config).then(
        (ready) => {
          clearTimeout(timer);
          if (settled) return;
          settled = started = true;
          restoreCpus();
          resolve(ready);
        },
        (error: unknown) => {
          clearTimeout(timer);
          failInit(error);
        },
      );
      guardWorkers(config, failInit, () => started);
    } catch (error) {
      clearTimeout(timer);
      failInit(error);
    }
  }).catch((error: unknown) => {
    terminateWorkers(config?.PThread);
    restoreListeners(listenersBefore);
    throw error;
  });
  try {
    // The C functions BackendWasm expects under module.tfjs, as tfjs's own init() wraps them.
    module.tfjs = {
      init: module.cwrap('init', null, []),
      initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
      getThreadsCount: module.cwrap('get_threads_count', 'number', []),
      registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
      disposeData: module.cwrap('dispose_data', null, ['number']),
      dispose: module.cwrap('dispose', null, []),
    };
    setThreadsCount(threads);
    const backend = new BackendWasm(module as unknown as ConstructorParameters<typeof BackendWasm>[0]);
    // XNNPACK's pool threads now idle for good, and emscripten ref()s a worker that runs a thread, so
    // Node would never exit by itself. The main thread only ever waits for them synchronously
    // (pthreadpool blocks in the caller), so nothing is lost by not holding the event loop open.
    for (const worker of module.PThread?.runningWorkers ?? []) worker.unref();
    listenersAtCreation.set(backend, listenersBefore);
    return backend;
  } catch (error) {
    terminateWorkers(module.PThread);
    restoreListeners(listenersBefore);
    throw error;
  } finally {
    setThreadsCount(-1);
  }
}

// Loaded by import(), which resolves from this file in both the ESM and the CJS build.
async function loadFactory(): Promise<ModuleFactory> {
  const loaded = (await import(GLUE)) as { default?: ModuleFactory } | ModuleFactory;
  const factory = typeof loaded === 'function' ? loaded : loaded.default;
  if (typeof factory !== 'function') throw new Error(`${GLUE} exports no module factory`);
  return factory;
}

/**
 * emscripten's worker error handler throws (an uncaught exception in the main thread) and a worker
 * that dies before it gets that handler has no 'error' listener at all: both would crash the
 * process. Until the module has started, route worker errors to the start's rejection instead
 * (failInit ignores all but the first); afterwards emscripten's handler applies, as in tfjs.
 */
function guardWorkers(config: FactoryConfig, failInit: (error: unknown) => void, started: () => boolean): void {
  const pthread = config.PThread;
  if (!pthread) throw new Error('the module has no PThread (not a pthreads build?)');
  const onError = (error: unknown) => failInit(new Error(`a pthread worker failed: ${describeError(error)}`));
  for (const worker of pthread.unusedWorkers) worker.on('error', onError);
  const load = pthread.loadWasmModuleToWorker.bind(pthread);
  pthread.loadWasmModuleToWorker = (worker, onFinishedLoading) => {
    load(worker, onFinishedLoading);
    const emscriptenOnError = (worker as Worker & { onerror?: (error: unknown) => void }).onerror;
    (worker as Worker & { onerror?: (error: unknown) => void }).onerror = (error: unknown) => {
      if (started() || !emscriptenOnError) emscriptenOnError?.call(worker, error);
      else onError(error);
    };
  };
}

function terminateWorkers(pthread: PThreadApi | undefined): void {
  if (!pthread) return;
  for (const worker of [...pthread.unusedWorkers, ...pthread.runningWorkers]) {
    worker.terminate().catch(() => undefined);
  }
  pthread.unusedWorkers = [];
  pthread.runningWorkers = [];
}

function padCpus(realCpus: typeof os.cpus, count: number): void {
  const cpus = realCpus.call(osModule);
  if (cpus.length >= count) return;
  const filler: os.CpuInfo = { model: 'unknown', speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } };
  const padded = Array.from({ length: count }, (_, i) => cpus[i % Math.max(1, cpus.length)] ?? filler);
  osModule.cpus = () => padded;
}

/** The pthread worker script, written once to a real file (Node's Worker takes no blob: URL). */
async function workerScript(): Promise<string> {
  const loaded = (await import(WORKER_SOURCE)) as { wasmWorkerContents?: unknown; default?: { wasmWorkerContents?: unknown } };
  const wasmWorkerContents = loaded.wasmWorkerContents ?? loaded.default?.wasmWorkerContents;
  if (typeof wasmWorkerContents !== 'string') throw new Error(`${WORKER_SOURCE} has no wasmWorkerContents`);
  // The string holds raw newlines inside JS string literals; tfjs escapes them the same way.
  return writeCached(wasmWorkerContents.replace(/\n/g, '\\n'), '.worker.cjs');
}

/** Writes `text` to a content-addressed file in the cache dir (else the temp dir) and returns its path. */
function writeCached(text: string, suffix: string): string {
  const name = `tfjs-backend-wasm-threaded-simd.${createHash('sha256').update(text).digest('hex').slice(0, 16)}${suffix}`;
  let lastError: unknown;
  for (const dir of [cacheDir(), path.join(os.tmpdir(), 'vqt-ts-tfjs-wasm')]) {
    const file = path.join(dir, name);
    try {
      if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text) return file;
      fs.mkdirSync(dir, { recursive: true });
      // Write then rename, so a concurrent process never runs a half-written file.
      const partial = `${file}.${process.pid}.partial`;
      fs.writeFileSync(partial, text);
      fs.renameSync(partial, file);
      return file;
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(`cannot write the pthread worker script: ${describeError(lastError)}`);
}

/** `$VQT_CACHE_DIR/tfjs-wasm`, else `$XDG_CACHE_HOME/vqt-ts/tfjs-wasm`, else `~/.cache/vqt-ts/tfjs-wasm`. */
function cacheDir(): string {
  if (process.env.VQT_CACHE_DIR) return path.join(path.resolve(process.env.VQT_CACHE_DIR), 'tfjs-wasm');
  const xdg = process.env.XDG_CACHE_HOME ? path.resolve(process.env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(xdg, 'vqt-ts', 'tfjs-wasm');
}

/**
 * A small matMul against a plain JS product: a broken threaded build shows up here rather than in
 * a training run. Shapes large enough for XNNPACK to split the work across threads.
 */
function checkMatMul(injectMismatch: boolean): void {
  const [m, k, n] = [96, 80, 112];
  const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37));
  const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.11));
  const tensors = [tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])];
  tensors.push(tf.matMul(tensors[0], tensors[1]));
  const got = tensors[2].dataSync(); // not returned from tf.tidy, which scans typed arrays element by element
  tf.dispose(tensors);
  if (injectMismatch) got[0] += 1;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let want = 0;
      for (let p = 0; p < k; p++) want += a[i * k + p] * b[p * n + j];
      if (Math.abs(got[i * n + j] - want) > 1e-3 * (1 + Math.abs(want))) {
        throw new Error(`matMul check failed at [${i},${j}]: ${got[i * n + j]} vs ${want}`);
      }
    }
  }
}

function safeThreadsCount(): number {
  try {
    return getThreadsCount();
  } catch {
    return 1;
  }
}

function failFromEnv(): WasmThreadsOptions['fail'] {
  const value = process.env.VQT_WASM_THREADS_FAIL?.trim().toLowerCase();
  if (!value || value === '0') return undefined;
  return value === 'check' ? 'check' : 'worker';
}

type ProcessListeners = Record<ErrorEvent, Function[]>;
type ErrorEvent = 'uncaughtException' | 'unhandledRejection';
const ERROR_EVENTS: ErrorEvent[] = ['uncaughtException', 'unhandledRejection'];
const processEvents: NodeJS.EventEmitter = process; // the generic signatures, not the per-event ones

function processListeners(): ProcessListeners {
  return { uncaughtException: processEvents.listeners('uncaughtException'), unhandledRejection: processEvents.listeners('unhandledRejection') };
}

/**
 * Makes the process error handlers what they were before a module was created: the glue adds
 * rethrowing ones, and its dispose() removes all of them, including other code's.
 */
function restoreListeners(before: ProcessListeners): void {
  for (const event of ERROR_EVENTS) {
    for (const listener of processEvents.listeners(event)) {
      if (!before[event].includes(listener)) processEvents.removeListener(event, listener as (...args: unknown[]) => void);
    }
    const present = processEvents.listeners(event);
    for (const listener of before[event]) {
      if (!present.includes(listener)) processEvents.on(event, listener as (...args: unknown[]) => void);
    }
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message.split('\n')[0];
  if (error && typeof error === 'object' && 'message' in error) return String((error as { message: unknown }).message).split('\n')[0];
  return String(error);
}
