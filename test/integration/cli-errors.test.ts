/**
 * `upload-hub send` and `watch` refuse what cannot work with one line and a non-zero exit: a URL
 * without scheme, an unknown transport, a hub that cannot be reached.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { randomFile } from '../helpers.js';
import { freePort } from '../protocolHelpers.js';

const repo = new URL('../..', import.meta.url).pathname;
/** Far above the CLI's own connect timeout (10 s): a CLI that hangs is killed and fails. */
const KILL_AFTER_MS = 40_000;

interface Exited {
  code: number | string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function cli(args: string[]): Promise<Exited> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'server/main.ts', ...args], { cwd: repo, timeout: KILL_AFTER_MS, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number | string }).code ?? (error as { signal?: string }).signal ?? null) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

function expectOneLine(exited: Exited): string {
  expect(exited.code, exited.stderr).toBe(1);
  const lines = exited.stderr.trim().split('\n');
  expect(lines, exited.stderr).toHaveLength(1);
  expect(exited.stderr).not.toMatch(/^\s+at /m);
  return lines[0] as string;
}

describe('upload-hub CLI errors', () => {
  it.each([
    ['send', 'localhost:3000'],
    ['send', '127.0.0.1:3000'],
    ['watch', '127.0.0.1:3000'],
  ])('%s --url %s (no scheme) is refused in one line', async (command, url) => {
    const file = await randomFile(10);
    const exited = await cli(command === 'send' ? ['send', file.path, '--url', url] : ['watch', '--url', url]);
    const line = expectOneLine(exited);
    expect(line).toContain(`--url "${url}"`);
    expect(line).toContain('http://');
  });

  it.each(['send', 'watch'])('%s --transport carrier-pigeon is refused in one line', async (command) => {
    const file = await randomFile(10);
    const args = command === 'send' ? ['send', file.path] : ['watch'];
    const exited = await cli([...args, '--url', 'http://127.0.0.1:3000', '--transport', 'carrier-pigeon']);
    const line = expectOneLine(exited);
    expect(line).toContain('--transport "carrier-pigeon"');
    expect(line).toContain('ws or socket.io');
  });

  it.each([
    ['send', 'ws'],
    ['send', 'socket.io'],
    ['watch', 'ws'],
    ['watch', 'socket.io'],
  ])('%s over %s to an unreachable hub exits 1 with one line naming ERR_CONNECTION_LOST', async (command, transport) => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const file = await randomFile(10);
    const args = command === 'send' ? ['send', file.path] : ['watch'];
    const exited = await cli([...args, '--url', url, '--transport', transport]);
    const line = expectOneLine(exited);
    expect(line).toContain(`cannot reach the hub at ${url}`);
    expect(line).toContain('ERR_CONNECTION_LOST');
    expect(exited.stdout).toBe('');
  });

  it('an unknown command and an unknown flag are one line each', async () => {
    expect(expectOneLine(await cli(['frob']))).toContain('unknown command "frob"');
    expect(expectOneLine(await cli(['send', 'x', '--bogus']))).toContain("'--bogus'");
  });
});
