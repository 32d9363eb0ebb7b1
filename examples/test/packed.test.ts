import { execFile } from 'node:child_process';
import { builtinModules } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// What a user of the published packages gets: every non-private package under packages/ packed
// with `npm pack`, installed from the tarballs into an empty project together with only the peer
// dependencies the packages declare (from the npm registry, through the npm cache), then used
// there: ESM and CommonJS, types under both conditions, one short script per plugin, the bin.

const repo = join(__dirname, '..', '..');
const scripts = join(__dirname, '..', 'packed');

interface Manifest {
  name: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  bin?: Record<string, string>;
}

const packageDirs = readdirSync(join(repo, 'packages'))
  .map((name) => join(repo, 'packages', name))
  .filter((dir) => existsSync(join(dir, 'package.json')));
const manifests = packageDirs
  .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest }))
  .filter(({ manifest }) => !manifest.private);
const names = manifests.map(({ manifest }) => manifest.name);

const work = mkdtempSync(join(tmpdir(), 'vqt-packed-'));
const project = join(work, 'project');
afterAll(() => rm(work, { recursive: true, force: true }), 120_000);

// npm run from `npm test` passes npm_config_* settings down (workspace, prefix); the user's npm has none.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')));

/** Runs a command without blocking the test worker (a blocked worker misses vitest's heartbeats). */
function run(command: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, encoding: 'utf8', env: { ...cleanEnv, VQT_THREADS: '2' }, timeout, maxBuffer: 64 * 2 ** 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} (in ${cwd}) failed (${error.code ?? error.signal}):\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}
const node = (file: string, args: string[] = []) => run(process.execPath, [file, ...args], project);

/** Peer dependencies the packages document, minus optional ones and the packages themselves. */
function documentedPeers(): string[] {
  const peers = new Map<string, string>();
  for (const { manifest } of manifests) {
    for (const [name, range] of Object.entries(manifest.peerDependencies ?? {})) {
      if (names.includes(name) || manifest.peerDependenciesMeta?.[name]?.optional) continue;
      const seen = peers.get(name);
      if (seen && seen !== range) throw new Error(`${manifest.name} wants ${name}@${range}, another package ${name}@${seen}: keep the peer ranges in step`);
      peers.set(name, range);
    }
  }
  return [...peers].map(([name, range]) => `${name}@${range}`);
}

beforeAll(async () => {
  for (const { dir, manifest } of manifests) {
    if (!existsSync(join(dir, 'dist'))) throw new Error(`${manifest.name}: no dist/ to pack; run npm run build first`);
  }
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  const packed = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', tarballs, ...manifests.map(({ dir }) => dir)], repo)) as { filename: string }[];
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'packed-check', private: true, type: 'module' }));
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...packed.map((p) => join(tarballs, p.filename)), ...documentedPeers()],
    project,
    240_000,
  );
  for (const file of readdirSync(scripts)) copyFileSync(join(scripts, file), join(project, file));
}, 300_000);

describe('the packed packages, installed from their tarballs', () => {
  it('every installed package imports only what it declares (nothing works by hoisting alone)', () => {
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const problems: string[] = [];
    for (const name of names) {
      const dir = join(project, 'node_modules', name);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
      const declared = new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]);
      for (const file of readdirSync(join(dir, 'dist')).filter((f) => /\.(c|m)?js$/.test(f))) {
        const code = readFileSync(join(dir, 'dist', file), 'utf8');
        const specifiers = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^import\s+)["']([^"'./][^"']*)["']/gm)].map((m) => m[1]);
        for (const specifier of specifiers) {
          // Only what can be a package name: error messages may say "from '${pooling}'".
          if (builtins.has(specifier) || !/^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*(\/.*)?$/.test(specifier)) continue;
          const pkg = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
          if (!declared.has(pkg)) problems.push(`${name}/dist/${file} imports ${specifier}, not in its dependencies or peerDependencies`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('every package has the same exports from ESM import and CommonJS require', async () => {
    const out = await node('exports.mjs', names);
    for (const name of names) expect(out).toMatch(new RegExp(`${name}: \\d+ exports, same in ESM and CommonJS`));
    expect(out).toContain('embedded backbone found from CommonJS');
  });

  it('the types resolve and check under both the import and the require condition', async () => {
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'es2022',
          strict: true,
          noEmit: true,
          // tfjs-layers' own .d.ts files do not pass a library check; ours are still resolved and used.
          skipLibCheck: true,
          typeRoots: [join(repo, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['types.mts', 'types.cts'],
      }),
    );
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], project);
  });

  it('core alone: a random ViT runs forward and says which backend', async () => {
    const out = await node('core.mjs');
    expect(out).toMatch(/^backend: /);
    expect(out).toContain('core: cls 2x48, finite true');
  });

  for (const method of ['vqt', 'head2toe']) {
    it(`${method}: fit through the registry, save, reopen with the same logits, predict with label names`, async () => {
      const out = await node(`${method}.mjs`);
      expect(out).toMatch(/^backend: /);
      expect(out).toMatch(new RegExp(`${method}: method ${method}, reopened max \\|logit difference\\| 0, top-3 of image 0: [abc] [abc] [abc]`));
      const config = JSON.parse(readFileSync(join(project, `${method}-adapter`, 'adapter_config.json'), 'utf8'));
      expect(config).toMatchObject({ method, numClasses: 3, labelNames: ['a', 'b', 'c'] });
    });
  }

  it('the bins run', async () => {
    for (const { manifest } of manifests) {
      for (const bin of Object.keys(manifest.bin ?? {})) {
        expect(await run(join(project, 'node_modules', '.bin', bin), ['--help'], project)).toMatch(/Usage/i);
      }
    }
  });
});
