/**
 * `npm start` starts from the build made at install (dist/, with the page bundles in dist/web)
 * without building again, and rebuilds only a build that is missing or older than the sources.
 * Runs on a copy of the project (with a real build, once), so the checkout's own dist/ is never
 * touched.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { appendFile, cp, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onCleanup, tempDir } from '../helpers.js';

const run = promisify(execFile);
const repo = new URL('../..', import.meta.url).pathname;
/** What the build is made of (and all `npm start` needs besides node_modules). */
const PROJECT = ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'shared', 'server', 'client'];
/** tsc alone takes ~20 s on an idle machine; the bound is for a loaded one. */
const BUILD_TIMEOUT_MS = 300_000;
/** `npm start` from a fresh build takes about a second; before, it ran tsc first (~20 s). */
const FRESH_START_BOUND_MS = 10_000;

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'upload-hub-npm-start-'));
  await Promise.all(PROJECT.map((path) => cp(join(repo, path), join(root, path), { recursive: true })));
  await symlink(join(repo, 'node_modules'), join(root, 'node_modules'), 'dir');
  await run('npm', ['run', 'build'], { cwd: root, timeout: BUILD_TIMEOUT_MS });
}, BUILD_TIMEOUT_MS + 30_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

interface Started {
  ms: number;
  url: string;
  output: string;
}

/** `npm start` in the copy; resolves once /healthz answers, stops the hub (the whole process group) after the test. */
async function npmStart(): Promise<Started> {
  const dataDir = await tempDir();
  const started = Date.now();
  const child = spawn('npm', ['start'], {
    cwd: root,
    env: { ...process.env, PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const exited = once(child, 'exit');
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(-(child.pid as number), 'SIGTERM');
    await exited;
  });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (data: Buffer) => {
      output += data.toString();
      const match = /"port":(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${output}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const health = await fetch(`${url}/healthz`);
  expect(health.status).toBe(200);
  return { ms: Date.now() - started, url, output };
}

describe('npm start', () => {
  it('npm run build writes dist/ with the page bundles and a build stamp', () => {
    for (const file of ['dist/server/main.js', 'dist/web/upload.js', 'dist/web/upload.js.map', 'dist/web/dashboard.js', 'dist/web/dashboard.js.map', 'dist/.build-stamp']) {
      expect(existsSync(join(root, file)), file).toBe(true);
    }
  });

  it('starts a fresh build without building: /healthz within seconds, pages served from dist/web', async () => {
    const hub = await npmStart();
    expect(hub.output).not.toMatch(/prestart|tsc|building/);
    expect(hub.ms).toBeLessThan(FRESH_START_BOUND_MS);
    // Marks the prebuilt bundle (read on the first request for it), to tell it from one bundled then.
    await appendFile(join(root, 'dist/web/upload.js'), '\n// prebuilt-marker\n');
    const bundle = await fetch(`${hub.url}/assets/upload.js`);
    expect(bundle.status).toBe(200);
    expect(await bundle.text()).toContain('// prebuilt-marker');
  });

  it('rebuilds a build older than the sources, or missing, before starting; then not again', async () => {
    // A stand-in for the build that only counts its runs and stamps: the real one ran above.
    // Writing it makes server/ newer than the stamp, so the build is now stale.
    const calls = join(root, 'build-calls.txt');
    await writeFile(
      join(root, 'server/build.mjs'),
      `import { appendFileSync, writeFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(calls)}, 'built\\n');
writeFileSync(${JSON.stringify(join(root, 'dist/.build-stamp'))}, 'stub\\n');
`,
    );
    const count = async () => (existsSync(calls) ? (await readFile(calls, 'utf8')).split('\n').filter(Boolean).length : 0);

    const stale = await npmStart();
    expect(await count()).toBe(1);
    expect(stale.output).toContain('the build in dist/ is stale');

    await npmStart();
    expect(await count()).toBe(1);

    await unlink(join(root, 'dist/.build-stamp'));
    const missing = await npmStart();
    expect(await count()).toBe(2);
    expect(missing.output).toContain('the build in dist/ is missing');
  });
});
