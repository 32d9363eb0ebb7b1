import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeBackend, parseBackendName, type BackendInfo } from '../src/index.js';

// The tfjs backend is process-global (and shared by every test file in this fork), so each case
// runs in its own Node process against the built package. Build first: `npx tsup`.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const SOURCES = ['../src/backend.ts', '../src/backend-wasm-threads.ts'].map((file) => fileURLToPath(new URL(file, import.meta.url)));

interface Outcome {
  info?: BackendInfo;
  line?: string;
  error?: string;
  /** Max |x - cpu| / max |cpu| over the whole product. */
  relErr?: number;
  /** Best of a few runs of the timed matMul, ms. */
  ms?: number;
}

/**
 * Runs `body` (ESM, top-level await; `initBackend`, `describeBackend`, `tf` and `result` in scope)
 * in a fresh process and returns what it put in `result`. With `exit` false the script does not
 * call process.exit, so it must end by itself.
 */
async function inFreshProcess(body: string, env: Record<string, string | undefined> = {}, exit = true): Promise<Outcome> {
  const script = `
    const { initBackend, describeBackend } = await import(${JSON.stringify(pathToFileURL(DIST).href)});
    const tf = await import('@tensorflow/tfjs');
    const result = {};
    try {
      ${body}
    } catch (error) {
      result.error = error instanceof Error ? error.message : String(error);
    }
    console.log('RESULT ' + JSON.stringify(result));
    ${exit ? 'process.exit(0);' : ''}
  `;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, VQT_BACKEND: undefined, VQT_THREADS: undefined, VQT_WASM_THREADS_FAIL: undefined, ...env };
  for (const key of Object.keys(childEnv)) if (childEnv[key] === undefined) delete childEnv[key];
  // Asynchronous, so this worker keeps answering vitest while the child computes.
  const child = await new Promise<{ stdout: string; stderr: string; failure?: Error }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: childEnv, timeout: exit ? 240_000 : 60_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (failure, stdout, stderr) =>
      resolve({ stdout, stderr, failure: failure ?? undefined }),
    );
  });
  if (child.failure) throw new Error(`child failed (${child.failure.message}):\n${child.stdout}\n${child.stderr}`);
  const line = child.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`child printed no result:\n${child.stdout}\n${child.stderr}`);
  return JSON.parse(line.slice('RESULT '.length)) as Outcome;
}

// Computes a [m,k]@[k,n] product of fixed pseudo-random data on the current backend and times it;
// with compare, recomputes it on the cpu backend and records the relative error.
const MATMUL_VS_CPU = (m: number, k: number, n: number, compare = true) => `
  const rand = (len, seed) => Float32Array.from({ length: len }, (_, i) => Math.sin(i * 12.9898 + seed) * 43758.5453 % 1);
  const a = rand(${m * k}, 1), b = rand(${k * n}, 2);
  // Not tf.tidy(() => ....dataSync()): tidy scans a returned typed array element by element.
  const product = () => {
    const x = tf.tensor2d(a, [${m}, ${k}]), y = tf.tensor2d(b, [${k}, ${n}]), z = tf.matMul(x, y);
    const values = z.dataSync();
    tf.dispose([x, y, z]);
    return values;
  };
  const got = product();
  let best = Infinity;
  for (let r = 0; r < 4; r++) {
    const start = performance.now();
    product();
    best = Math.min(best, performance.now() - start);
  }
  result.ms = best;
  if (${compare}) {
  await tf.setBackend('cpu');
  const want = product();
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  result.relErr = diff / scale;
  }
`;

beforeAll(() => {
  const built = statSync(DIST, { throwIfNoEntry: false });
  if (!built) throw new Error(`${DIST} is missing: run \`npx tsup\` in packages/core first`);
  const stale = SOURCES.filter((file) => statSync(file).mtimeMs > built.mtimeMs);
  if (stale.length > 0) throw new Error(`dist is older than ${stale.join(', ')}: run \`npx tsup\` in packages/core first`);
});

describe('wasm threads', () => {
  it('runs 2 threads, matches the cpu backend on a 1024x1024 matMul, and reports the speed-up', async () => {
    const two = await inFreshProcess(`
      const info = await initBackend({ backend: 'wasm', threads: 2 });
      result.info = info;
      result.line = describeBackend(info);
      ${MATMUL_VS_CPU(1024, 1024, 1024)}
    `);
    expect(two.error).toBeUndefined();
    expect(two.info).toMatchObject({ kind: 'wasm', tfBackend: 'wasm', threads: 2, simd: true, skipped: [] });
    expect(two.line).toBe('backend: wasm (SIMD, 2 threads)');
    expect(two.relErr).toBeLessThan(1e-3);

    const one = await inFreshProcess(`
      const info = await initBackend({ backend: 'wasm', threads: 1 });
      result.info = info;
      ${MATMUL_VS_CPU(1024, 1024, 1024, false)}
    `);
    expect(one.error).toBeUndefined();
    expect(one.info).toMatchObject({ kind: 'wasm', threads: 1, skipped: [] });
    const gflops = (ms: number) => ((2 * 1024 ** 3) / (ms / 1000) / 1e9).toFixed(1);
    console.log(
      `1024x1024 matMul: 1 thread ${one.ms!.toFixed(0)} ms (${gflops(one.ms!)} GFLOP/s), ` +
        `2 threads ${two.ms!.toFixed(0)} ms (${gflops(two.ms!)} GFLOP/s): ${(one.ms! / two.ms!).toFixed(2)}x`,
    );
  });

  it('defaults to min(2, CPUs) threads', async () => {
    const outcome = await inFreshProcess(`result.info = await initBackend({ backend: 'wasm' });`);
    expect(outcome.error).toBeUndefined();
    const expected = Math.max(1, Math.min(2, availableParallelism()));
    expect(outcome.info).toMatchObject({ kind: 'wasm', threads: expected, skipped: [] });
  });

  it('lets Node exit by itself with threads running', async () => {
    // 60 s timeout in execFile: a process kept alive by the pool threads fails here.
    const outcome = await inFreshProcess(
      `
      result.info = await initBackend({ backend: 'wasm', threads: 2 });
      await new Promise((resolve) => setTimeout(resolve, 200)); // idle between ops must not matter
      const c = tf.matMul(tf.ones([300, 200]), tf.ones([200, 100]));
      result.relErr = Math.abs((await c.data())[0] - 200) / 200;
    `,
      {},
      false,
    );
    expect(outcome.error).toBeUndefined();
    expect(outcome.info).toMatchObject({ kind: 'wasm', threads: 2 });
    expect(outcome.relErr).toBe(0);
  });

  it('honours VQT_THREADS', async () => {
    const outcome = await inFreshProcess(`result.info = await initBackend({ backend: 'wasm' });`, { VQT_THREADS: '1' });
    expect(outcome.info).toMatchObject({ kind: 'wasm', threads: 1, skipped: [] });
  });

  for (const [fail, cause] of [
    ['1', /a pthread worker failed: injected failure/],
    ['check', /matMul check failed/],
  ] as const) {
    it(`falls back to 1 thread when the threaded build fails (VQT_WASM_THREADS_FAIL=${fail})`, async () => {
      const outcome = await inFreshProcess(
        `
        const info = await initBackend({ backend: 'wasm', threads: 2 });
        result.info = info;
        result.line = describeBackend(info);
        ${MATMUL_VS_CPU(200, 160, 120)}
      `,
        { VQT_WASM_THREADS_FAIL: fail },
      );
      expect(outcome.error).toBeUndefined();
      expect(outcome.info).toMatchObject({ kind: 'wasm', tfBackend: 'wasm', threads: 1, simd: true });
      expect(outcome.info!.skipped).toHaveLength(1);
      expect(outcome.info!.skipped[0]).toMatch(/^wasm threads: threaded wasm did not start \(.*\); running 1 thread$/);
      expect(outcome.info!.skipped[0]).toMatch(cause);
      expect(outcome.line).toBe('backend: wasm (SIMD, 1 thread)');
      expect(outcome.relErr).toBeLessThan(1e-3);
    });
  }
});

describe('backend choice', () => {
  it('VQT_BACKEND=cpu selects cpu', async () => {
    const outcome = await inFreshProcess(`result.info = await initBackend(); result.line = describeBackend(result.info); result.active = tf.getBackend();`, { VQT_BACKEND: 'cpu' });
    expect(outcome.error).toBeUndefined();
    expect(outcome.info).toMatchObject({ kind: 'cpu', tfBackend: 'cpu', threads: 1, skipped: [] });
    expect(outcome.line).toBe('backend: cpu');
  });

  it('rejects unknown backend names and bad thread counts clearly', async () => {
    expect(() => parseBackendName('tpu')).toThrow('unknown backend "tpu"; use one of auto, node-gpu, node, wasm, cpu');
    expect(parseBackendName(' WASM ')).toBe('wasm');
    expect(parseBackendName('gpu')).toBe('tfjs-node-gpu');
    const unknown = await inFreshProcess(`await initBackend();`, { VQT_BACKEND: 'tpu' });
    expect(unknown.error).toBe('unknown backend "tpu"; use one of auto, node-gpu, node, wasm, cpu');
    const badThreads = await inFreshProcess(`await initBackend({ backend: 'wasm' });`, { VQT_THREADS: 'many' });
    expect(badThreads.error).toBe('VQT_THREADS must be a positive integer (got "many")');
  });

  it('describes backends in one line', () => {
    const info: BackendInfo = { kind: 'wasm', tfBackend: 'wasm', threads: 2, simd: true, skipped: [] };
    expect(describeBackend(info)).toBe('backend: wasm (SIMD, 2 threads)');
    expect(describeBackend({ ...info, threads: 1, simd: false })).toBe('backend: wasm (no SIMD, 1 thread)');
  });
});
