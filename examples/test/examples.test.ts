import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OWN_CLASSES, ownImage, writeOwnFolder } from './own-images.js';

// The examples run as a user runs them (node <file>), on small settings.
const root = mkdtempSync(join(tmpdir(), 'vqt-examples-'));
afterAll(() => rm(root, { recursive: true, force: true }), 120_000);

/** Runs an example without blocking the test worker (a worker blocked for minutes misses vitest's heartbeats). */
function run(file: string, args: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(__dirname, '..', file), ...args],
      { encoding: 'utf8', cwd: root, env: { ...process.env, VQT_CACHE_DIR: join(root, 'cache'), VQT_THREADS: '2' }, timeout: 300_000, maxBuffer: 64 * 2 ** 20 },
      (error, stdout, stderr) => (error ? reject(new Error(`${file} ${args.join(' ')} failed (${error.code ?? error.signal}):\n${stdout}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

describe('examples', () => {
  it('vqt-on-a-task: trains, evaluates, saves and reloads an adapter that reproduces the accuracy', async () => {
    const out = await run('vqt-on-a-task.mjs', ['--train', '128', '--epochs', '2', '--out', 'adapter']);
    expect(out).toMatch(/^backend: /);
    expect(out).toMatch(/dsprites_loc: final train loss \d+\.\d+, test top-1 \d+\.\d\d% on 1000 images/);
    const [, trained] = out.match(/test top-1 (\d+\.\d\d)% on/)!;
    expect(out).toContain(`reloaded adapter from adapter: test top-1 ${trained}%`);
    expect(out).toContain('tensors still alive: 0');
    const config = JSON.parse(readFileSync(join(root, 'adapter', 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ method: 'vqt', numClasses: 16, training: { task: 'dsprites_loc' } });
  });

  it('compose-hooks: VQT on a frozen adapter reads adapted tokens and only its queries get gradients', async () => {
    const out = await run('compose-hooks.mjs');
    const difference = Number(out.match(/max \|difference\| (\S+)/)![1]);
    expect(difference).toBeGreaterThan(1e-4);
    expect(out).toMatch(/gradients for 6 variables \(VQT's 6 query blocks\)/);
    expect(out).toContain('tensors still alive: 0');
  });

  it('readme-hook: the README hook example runs as written and frees every tensor', async () => {
    const out = await run('readme-hook.mjs');
    expect(out).toMatch(/^backend: /);
    expect(out).toContain('false [ 2, 64 ] [ 6, 2, 1, 64 ] [ 2, 65, 64 ]');
    expect(out).toContain('tensors still alive: 0');
  });

  describe("a new user's three tasks, on a folder of their own (three classes, eight 56 px PNGs each)", () => {
    const own = writeOwnFolder(join(root, 'own'), 8, 1);
    const fresh = join(root, 'new-images');
    mkdirSync(fresh);
    const freshImage = (kind: (typeof OWN_CLASSES)[number]) => {
      const file = join(fresh, `${kind}.png`);
      writeFileSync(file, ownImage(kind, 56, 5000 + kind.length));
      return file;
    };

    it('1. embed-images: the final CLS of each PNG from the embedded backbone', async () => {
      const files = OWN_CLASSES.map(freshImage);
      const out = await run('embed-images.mjs', files);
      expect(out).toMatch(/^backend: /);
      for (const file of files) expect(out).toMatch(new RegExp(`${file}: 64 values, first -?\\d\\.\\d{4} -?\\d\\.\\d{4} -?\\d\\.\\d{4}`));
    });

    it('2. train-own-classes, then classify a new image of each class in a new process', async () => {
      const out = await run('train-own-classes.mjs', [own, 'my-adapter', '12']);
      expect(out).toMatch(/24 images, 3 classes \(disc, horizontal, vertical\): train top-1 \d+\.\d%, adapter saved to my-adapter/);
      expect(JSON.parse(readFileSync(join(root, 'my-adapter', 'adapter_config.json'), 'utf8'))).toMatchObject({ method: 'vqt', numClasses: 3, labelNames: [...OWN_CLASSES] });
      for (const kind of OWN_CLASSES) {
        const file = freshImage(kind);
        const [first] = (await run('classify.mjs', ['my-adapter', file])).split('\n').filter((line) => line.startsWith(file));
        expect(first).toMatch(new RegExp(`: ${kind} \\d+\\.\\d%$`));
      }
    });

    it('3. stack-on-own-hook: VQT trained on a frozen hook of their own, no tensors left behind', async () => {
      const out = await run('stack-on-own-hook.mjs', [own, '12']);
      const top1 = Number(out.match(/train top-1 (\d+\.\d)%/)![1]);
      expect(top1).toBeGreaterThanOrEqual(90);
      expect(out).toContain('tensors still alive: 0');
    });
  });
});
