/**
 * The browser build of the client: /assets/upload-hub.js imported by a page's
 * `<script type="module">` in real Chromium uploads a File to completion (pausing and resuming
 * on the way, remembering it in localStorage while it runs), and /assets/upload-hub.d.ts is
 * one declaration file that an app type-checks against and whose script an app's bundler takes.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_SKIP_REASON, BROWSER_TESTS_ENABLED, launchChromium, type ChromiumSession } from '../browserHelpers.js';
import { sha256File, startHub, tempDir, storedPath } from '../helpers.js';

const run = promisify(execFile);
const SIZE = 3 * 1024 * 1024 + 17;

if (!BROWSER_TESTS_ENABLED) console.warn(`browser tests skipped: ${BROWSER_SKIP_REASON}`);

/** The bytes the page uploads, made the same way here and there. */
function patternBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 131 + (i >>> 11)) & 255;
  return bytes;
}

/** A page of an app on the hub's origin that loads the library the way the README says. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>library</title>
<script type="module">
import { UploadClient, localStorageFingerprints } from '/assets/upload-hub.js';
const size = ${SIZE};
const bytes = new Uint8Array(size);
for (let i = 0; i < size; i++) bytes[i] = (i * 131 + (i >>> 11)) & 255;
const file = new File([bytes], 'browser.bin', { type: 'application/octet-stream', lastModified: 1700000000000 });
const store = localStorageFingerprints('test:');
const client = new UploadClient({ url: location.origin, fingerprints: store });
const report = { events: [] };
window.report = report;
try {
  const handle = client.upload(file, { chunkSize: 256 * 1024 });
  handle.on('paused', () => { report.events.push('paused'); handle.resume(); });
  handle.on('resumed', () => report.events.push('resumed'));
  // Remembered while it runs (an event from the hub comes after the store's write).
  handle.on('progress', async () => { report.remembered ??= (await store.list()).map((entry) => entry.uploadId); });
  handle.pause();
  const result = await handle.done;
  report.id = result.id;
  report.sha256 = result.sha256;
  report.after = (await store.list()).length;
} catch (error) {
  report.error = String(error && error.code || error); report.message = String(error && error.message);
} finally {
  client.close();
  report.done = true;
}
</script>
`;

describe('the client library served at /assets', () => {
  it('serves one declaration file an app type-checks against, and a script an app bundler takes', async () => {
    const hub = await startHub();
    const types = await fetch(`${hub.url}/assets/upload-hub.d.ts`);
    expect(types.status).toBe(200);
    expect(types.headers.get('content-type')).toContain('application/typescript');
    const declarations = await types.text();
    expect(declarations).toMatch(/export import UploadClient = /);
    expect(declarations).toMatch(/class UploadClient extends/);
    expect(declarations).not.toMatch(/from ['"]zod['"]|import\(/);

    const script = await fetch(`${hub.url}/assets/upload-hub.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toContain('text/javascript');
    expect(script.headers.get('access-control-allow-origin')).toBe('*');
    const code = await script.text();
    expect(code).not.toMatch(/from ?["']node:/);

    const app = await tempDir();
    await writeFile(join(app, 'upload-hub.d.ts'), declarations);
    await writeFile(join(app, 'upload-hub.js'), code);
    await writeFile(join(app, 'package.json'), '{"type":"module"}');
    await writeFile(join(app, 'app.ts'), [
      "import { UploadClient, localStorageFingerprints, UploadHubError, type UploadHandle } from './upload-hub.js';",
      "const client = new UploadClient({ url: 'http://hub', fingerprints: localStorageFingerprints(), token: async () => 't' });",
      "const handle: UploadHandle = client.upload(new Blob(['x']), { name: 'x.txt' });",
      "handle.on('event', (event) => { if (event.type === 'failed') console.log(event.error.code); });",
      'handle.pause();',
      "client.resumeUpload('id', new Blob(['x'])).done.catch((error: unknown) => console.log(error instanceof UploadHubError && error.code));",
      '',
    ].join('\n'));
    await writeFile(join(app, 'wrong.ts'), "import { UploadClient } from './upload-hub.js';\nnew UploadClient({ url: 1 }).upload(new Blob([])).on('nope', () => {});\n");
    // An app's strictest settings, its declaration files checked too, and nothing of Node's.
    const compilerOptions = {
      target: 'ES2022', module: 'ESNext', moduleResolution: 'bundler', strict: true, noEmit: true, skipLibCheck: false,
      verbatimModuleSyntax: true, isolatedModules: true, lib: ['ES2022', 'DOM'], types: [],
    };
    await writeFile(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['app.ts'] }));
    await writeFile(join(app, 'tsconfig.wrong.json'), JSON.stringify({ compilerOptions, files: ['wrong.ts'] }));
    const tsc = join(process.cwd(), 'node_modules/typescript/bin/tsc');
    const checked = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).then(() => 'ok', (error: { stdout: string }) => error.stdout);
    expect(checked).toBe('ok');
    const wrong = await run(process.execPath, [tsc, '-p', 'tsconfig.wrong.json'], { cwd: app }).then(() => '', (error: { stdout: string }) => error.stdout);
    expect(wrong).toContain("Type 'number' is not assignable to type 'string'");
    expect(wrong).toContain('nope');

    const { build } = await import('esbuild');
    const bundled = await build({ entryPoints: [join(app, 'app.ts')], bundle: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent' });
    expect(bundled.outputFiles[0]?.text).toContain('resumeUpload');
  });

  describe.runIf(BROWSER_TESTS_ENABLED)('in Chromium', () => {
    let chromium: ChromiumSession;
    beforeAll(async () => {
      chromium = await launchChromium();
    });
    afterAll(async () => {
      await chromium?.close();
    });

    it('a page importing UploadClient and localStorageFingerprints from /assets/upload-hub.js uploads a File to completion', async () => {
      const hub = await startHub();
      const { page, errors } = await chromium.newPage();
      // The app's page, served on the hub's origin (as an app behind the same host would be).
      hub.app.get('/app.html', (_req, res) => void res.type('html').send(PAGE));
      await page.goto(`${hub.url}/app.html`);
      await page.waitForFunction(() => (window as unknown as { report?: { done?: boolean } }).report?.done === true, undefined, { timeout: 60_000 });
      const report = await page.evaluate(() => (window as unknown as { report: Record<string, unknown> }).report);
      expect(errors).toEqual([]);
      expect(report.message).toBeUndefined();
      const expected = createHash('sha256').update(patternBytes(SIZE)).digest('hex');
      expect(report).toMatchObject({ sha256: expected, after: 0, events: ['paused', 'resumed'], remembered: [report.id] });
      const id = report.id as string;
      expect(await hub.hub.status({ id: 'anonymous' }, id)).toMatchObject({ state: 'completed', name: 'browser.bin', bytes: SIZE });
      expect(await sha256File(storedPath(hub, id))).toBe(expected);
      await page.close();
    });
  });
});
