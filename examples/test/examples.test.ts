import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The examples run as a user runs them (node <file>), on small settings.
const root = mkdtempSync(join(tmpdir(), 'vqt-examples-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function run(file: string, args: string[] = []) {
  const result = spawnSync(process.execPath, [join(__dirname, '..', file), ...args], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, VQT_CACHE_DIR: join(root, 'cache'), VQT_THREADS: '2' },
    timeout: 300_000,
  });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

describe('examples', () => {
  it('vqt-on-a-task: trains, evaluates, saves and reloads an adapter that reproduces the accuracy', () => {
    const out = run('vqt-on-a-task.mjs', ['--train', '128', '--epochs', '2', '--out', 'adapter']);
    expect(out).toMatch(/^backend: /);
    expect(out).toMatch(/dsprites_loc: final train loss \d+\.\d+, test top-1 \d+\.\d\d% on 1000 images/);
    const [, trained] = out.match(/test top-1 (\d+\.\d\d)% on/)!;
    expect(out).toContain(`reloaded adapter from adapter: test top-1 ${trained}%`);
    expect(out).toContain('tensors still alive: 0');
    const config = JSON.parse(readFileSync(join(root, 'adapter', 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ method: 'vqt', numClasses: 16, training: { task: 'dsprites_loc' } });
  });

  it('compose-hooks: VQT on a frozen adapter reads adapted tokens and only its queries get gradients', () => {
    const out = run('compose-hooks.mjs');
    const difference = Number(out.match(/max \|difference\| (\S+)/)![1]);
    expect(difference).toBeGreaterThan(1e-4);
    expect(out).toMatch(/gradients for 6 variables \(VQT's 6 query blocks\)/);
    expect(out).toContain('tensors still alive: 0');
  });
});
