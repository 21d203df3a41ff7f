// Temp dirs for bench servers. The `bench-` prefix is what proc.ts checks before it deletes
// a dir a child announced, so servers must create theirs through here.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export function makeBenchTempDir(label: string): string {
  return mkdtempSync(path.join(tmpdir(), `bench-${label}-`));
}

export function removeBenchTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
