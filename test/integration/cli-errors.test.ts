/**
 * `upload-hub` refuses what cannot work with one line and its exit code: a usage error (a URL
 * without scheme, an unknown transport, command or flag, a missing file) is 2, a hub that cannot
 * be reached or refuses the token is 3.
 */
import { describe, expect, it } from 'vitest';
import { randomFile, startHub } from '../helpers.js';
import { freePort } from '../protocolHelpers.js';
import { startCli } from './cli-helpers.js';

interface Exited {
  code: number | string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A run to its end; one that hangs is killed after KILL_AFTER_MS (far above the CLI's 10 s connect timeout) and fails. */
async function cli(args: string[]): Promise<Exited> {
  const started = Date.now();
  const exited = await startCli(args).exited;
  return { code: exited.code ?? exited.signal, stdout: exited.stdout, stderr: exited.stderr, ms: Date.now() - started };
}

function expectOneLine(exited: Exited, code: number): string {
  expect(exited.code, exited.stderr).toBe(code);
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
    const line = expectOneLine(exited, 2);
    expect(line).toContain(`--url "${url}"`);
    expect(line).toContain('http://');
  });

  it.each(['send', 'watch'])('%s --transport carrier-pigeon is refused in one line', async (command) => {
    const file = await randomFile(10);
    const args = command === 'send' ? ['send', file.path] : ['watch'];
    const exited = await cli([...args, '--url', 'http://127.0.0.1:3000', '--transport', 'carrier-pigeon']);
    const line = expectOneLine(exited, 2);
    expect(line).toContain('--transport "carrier-pigeon"');
    expect(line).toContain('ws or socket.io');
  });

  it.each([
    ['send', 'ws'],
    ['send', 'socket.io'],
    ['watch', 'ws'],
    ['watch', 'socket.io'],
  ])('%s over %s to an unreachable hub exits 3 with one line naming ERR_CONNECTION_LOST', async (command, transport) => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const file = await randomFile(10);
    const args = command === 'send' ? ['send', file.path] : ['watch'];
    const exited = await cli([...args, '--url', url, '--transport', transport]);
    const line = expectOneLine(exited, 3);
    expect(line).toContain(`cannot reach the hub at ${url}`);
    expect(line).toContain('ERR_CONNECTION_LOST');
    expect(exited.stdout).toBe('');
  });

  it.each(['status', 'ls', 'cancel'])('%s to an unreachable hub exits 3 with one line', async (command) => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const exited = await cli([command, ...(command === 'ls' ? [] : ['SomeUploadId1']), '--url', url]);
    const line = expectOneLine(exited, 3);
    expect(line).toContain(`cannot reach the hub at ${url} (http)`);
    expect(line).toContain('ECONNREFUSED');
  });

  it.each([
    ['send', 'ws'],
    ['send', 'socket.io'],
    ['watch', 'ws'],
    ['ls', 'http'],
    ['status', 'http'],
  ])('%s (%s) with a token the hub refuses exits 3 naming ERR_UNAUTHORIZED; the right token works', async (command, transport) => {
    const hub = await startHub({ authenticate: (token) => (token === 'right' ? { id: 'alice' } : null) });
    const file = await randomFile(10);
    const args = command === 'send' ? ['send', file.path, '--transport', transport] : command === 'watch' ? ['watch', '--transport', transport] : command === 'status' ? ['status', 'SomeUploadId1'] : [command];
    const line = expectOneLine(await cli([...args, '--url', hub.url, '--token', 'wrong']), 3);
    expect(line).toContain(`the hub refused the token at ${hub.url}`);
    expect(line).toContain('ERR_UNAUTHORIZED');
    if (command === 'send' || command === 'ls') expect((await cli([...args, '--url', hub.url, '--token', 'right'])).code).toBe(0);
  });

  it('an unknown command, an unknown flag, a bad value, a missing argument or file: one line each, exit 2', async () => {
    expect(expectOneLine(await cli(['frob']), 2)).toContain('unknown command "frob"');
    expect(expectOneLine(await cli(['send', 'x', '--bogus']), 2)).toContain("'--bogus'");
    expect(expectOneLine(await cli(['send']), 2)).toContain("missing required argument 'files'");
    expect(expectOneLine(await cli(['send', 'x', '--concurrency', '0']), 2)).toContain('--concurrency');
    expect(expectOneLine(await cli(['send', 'x', '--metadata', 'novalue']), 2)).toContain('key=value');
    expect(expectOneLine(await cli(['ls', '--state', 'sleeping']), 2)).toContain('"sleeping" is not a state');
    expect(expectOneLine(await cli(['send', '/no/such/file.bin']), 2)).toContain('/no/such/file.bin: no such file');
    expect(expectOneLine(await cli(['serve', '--port', 'abc']), 2)).toContain('--port "abc": expected an integer');
  });
});
