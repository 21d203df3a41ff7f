#!/usr/bin/env node
// The `upload-hub` command: the build in dist/ when there is one (npm install builds it),
// otherwise the TypeScript entry through tsx.
import { existsSync } from 'node:fs';

const built = new URL('../dist/server/main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./main.ts');
}
