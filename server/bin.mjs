#!/usr/bin/env node
// The `upload-hub` command, and `npm start`: runs the build in dist/ (npm install builds it).
// A build that is missing or older than the sources is rebuilt first (server/build.mjs, once,
// ~20 s); a fresh one starts at once. Without TypeScript (installed without dev dependencies)
// a build cannot be made, and the TypeScript sources run through tsx instead.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
/** What the build is made from: HTML and CSS are read from client/web at run time, so they are not. */
const SOURCES = ['shared', 'server', 'client', 'tsconfig.json', 'tsconfig.build.json'];
const SOURCE_EXTENSIONS = new Set(['.ts', '.mts', '.mjs', '.json']);

function mtimeMs(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The newest modification time among the sources under `path`. */
function newestSource(path) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(path, { withFileTypes: true });
  } catch {
    return SOURCE_EXTENSIONS.has(extname(path)) ? (mtimeMs(path) ?? 0) : 0;
  }
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(child));
    else if (SOURCE_EXTENSIONS.has(extname(entry.name))) newest = Math.max(newest, mtimeMs(child) ?? 0);
  }
  return newest;
}

/** 'fresh', 'missing' or 'stale', by the stamp server/build.mjs writes last. */
function buildState() {
  const built = mtimeMs(join(root, 'dist', '.build-stamp'));
  if (built === undefined) return 'missing';
  return SOURCES.some((source) => newestSource(join(root, source)) > built) ? 'stale' : 'fresh';
}

function canBuild() {
  try {
    createRequire(import.meta.url).resolve('typescript/bin/tsc');
    return true;
  } catch {
    return false;
  }
}

let state = buildState();
if (state !== 'fresh' && canBuild()) {
  process.stderr.write(`upload-hub: the build in dist/ is ${state}; building it (npm run build)\n`);
  // The build's output goes to stderr: stdout belongs to the command (send prints JSON there).
  const build = spawnSync(process.execPath, [fileURLToPath(new URL('build.mjs', import.meta.url))], { cwd: root, stdio: ['ignore', 2, 2] });
  if (build.status !== 0) {
    process.stderr.write('upload-hub: the build failed (see above)\n');
    process.exit(1);
  }
  state = 'fresh';
}
if (state === 'fresh') {
  await import(new URL('../dist/server/main.js', import.meta.url).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./main.ts');
}
