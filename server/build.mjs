#!/usr/bin/env node
// `npm run build` (npm install runs it; server/bin.mjs runs it when dist/ is stale): compiles
// to dist/ with tsc, bundles the pages into dist/web and the client library with its types into
// dist/web/assets, then stamps the build. The stamp carries the time the build started, so a
// source saved while tsc ran still counts as newer.
import { spawnSync } from 'node:child_process';
import { rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stamp = fileURLToPath(new URL('../dist/.build-stamp', import.meta.url));
const started = new Date();

// A build that fails halfway must not leave the previous stamp claiming it is fresh.
rmSync(stamp, { force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (compiled.status !== 0) {
  process.stderr.write(`build: tsc failed (${compiled.error?.message ?? `exit ${compiled.status ?? compiled.signal}`})\n`);
  process.exit(1);
}
const { writePageBundles, writeLibraryBundle } = await import(new URL('../dist/server/transports/pages.js', import.meta.url).href);
// The pages, and the client library for browsers (dist/web/assets/upload-hub.js and its .d.ts).
await Promise.all([writePageBundles(), writeLibraryBundle()]);
writeFileSync(stamp, `${started.toISOString()}\n`);
utimesSync(stamp, started, started);
