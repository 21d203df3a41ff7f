/**
 * `upload-hub serve` start-up, in child processes: every option from its environment variable
 * or flag, strict values, one line naming what is wrong, no stack trace, a non-zero exit; one
 * hub per data directory (hub.lock).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiskStore } from '../../server/store/DiskStore.js';
import { onCleanup, startClient, startHub, tempDir } from '../helpers.js';

const repo = new URL('../..', import.meta.url).pathname;
const EXIT_TIMEOUT_MS = 30_000;

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  pid: number;
  url: string;
  output: () => string;
  stop(): Promise<number | null>;
}

/** `upload-hub serve` with only `env` set among the hub's variables (the test runner's own are dropped). */
function spawnServe(args: string[], env: Record<string, string>) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'PORT' && name !== 'HOST' && name !== 'DATA_DIR' && name !== 'LOG_LEVEL'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', 'serve', '--no-processing', ...args], {
    cwd: repo,
    env: { ...base, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** A start that must fail: resolves once the process exits (a hub that starts anyway is killed and fails the test). */
async function failedStart(args: string[], env: Record<string, string>): Promise<Exited> {
  const run = spawnServe(args, env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
  const [code] = await run.exited;
  clearTimeout(timer);
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** A start that must succeed: resolves once the hub logs that it listens. */
async function startServe(args: string[], env: Record<string, string> = {}): Promise<Running> {
  const run = spawnServe(args, env);
  const port = await new Promise<number>((resolve, reject) => {
    const onData = () => {
      const match = /"port":(\d+)/.exec(run.stdout());
      if (match) resolve(Number(match[1]));
    };
    run.child.stdout.on('data', onData);
    run.child.once('exit', (code) => reject(new Error(`hub exited (${code}) before listening:\n${run.stdout()}${run.stderr()}`)));
  });
  return {
    pid: run.child.pid as number,
    url: `http://127.0.0.1:${port}`,
    output: () => run.stdout() + run.stderr(),
    async stop() {
      run.child.kill('SIGTERM');
      const [code] = await run.exited;
      return code;
    },
  };
}

/** One line (or one per problem) naming what is wrong, and nothing that looks like a stack trace. */
function expectProblems(exited: Exited, lines: number): string[] {
  expect(exited.code, exited.stderr).not.toBe(0);
  expect(exited.code).not.toBeNull();
  const printed = exited.stderr.trim().split('\n');
  expect(printed, exited.stderr).toHaveLength(lines);
  expect(exited.stderr).not.toMatch(/^\s+at /m);
  expect(exited.stdout).not.toContain('listening');
  return printed;
}

describe('start-up errors name what is wrong', () => {
  it.each(['abc', '1.5', '3000x', '-1'])('PORT=%s is refused, naming PORT', async (value) => {
    const exited = await failedStart(['--data-dir', await tempDir()], { PORT: value });
    const [line] = expectProblems(exited, 1);
    expect(line).toContain(`PORT="${value}"`);
  });

  it('an empty PORT is refused, not taken as a random port', async () => {
    const exited = await failedStart(['--data-dir', await tempDir()], { PORT: '' });
    const [line] = expectProblems(exited, 1);
    expect(line).toContain('PORT=""');
    expect(line).toContain('empty');
  });

  it('a bad LOG_LEVEL is named with the levels there are', async () => {
    const exited = await failedStart(['--port', '0', '--data-dir', await tempDir()], { LOG_LEVEL: 'loud' });
    const [line] = expectProblems(exited, 1);
    expect(line).toContain('LOG_LEVEL="loud"');
    expect(line).toContain('info');
  });

  it('several bad variables and flags: one line each', async () => {
    const exited = await failedStart(['--data-dir', await tempDir(), '--max-chunk-size', 'big'], { PORT: 'abc', LOG_LEVEL: 'loud', HEARTBEAT_MS: '1s' });
    const lines = expectProblems(exited, 4);
    for (const name of ['PORT="abc"', 'LOG_LEVEL="loud"', 'HEARTBEAT_MS="1s"', '--max-chunk-size "big"']) {
      expect(lines.filter((line) => line.includes(name)), name).toHaveLength(1);
    }
  });

  it('a REDIS_URL that is not a Redis URL is named', async () => {
    const exited = await failedStart(['--port', '0', '--data-dir', await tempDir()], { REDIS_URL: 'localhost:6379' });
    const [line] = expectProblems(exited, 1);
    expect(line).toContain('REDIS_URL="localhost:6379"');
    expect(line).toContain('redis://');
  });

  it('a Redis that cannot be reached: one line naming REDIS_URL and the cause, not a node running alone', async () => {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    const exited = await failedStart(['--port', '0', '--data-dir', await tempDir()], { REDIS_URL: 'redis://127.0.0.1:1' });
    const [line] = expectProblems(exited, 1);
    expect(line).toContain('REDIS_URL=redis://127.0.0.1:1: cannot connect to Redis');
    expect(line).toContain('ECONNREFUSED');
  });

  it('an unwritable DATA_DIR says so in one line', async () => {
    // Tests run as root, which chmod does not stop: a path under a regular file cannot be made.
    const dir = await tempDir();
    await writeFile(join(dir, 'file.txt'), 'not a directory');
    const dataDir = join(dir, 'file.txt', 'data');
    const exited = await failedStart(['--port', '0'], { DATA_DIR: dataDir });
    const [line] = expectProblems(exited, 1);
    expect(line).toContain(`data directory ${dataDir} is not writable`);
  });
});

describe('a port in use', () => {
  it('is one line naming the address; the lock the failed start took is removed at exit', async () => {
    const first = await startServe(['--port', '0', '--data-dir', await tempDir()]);
    const port = new URL(first.url).port;
    const dataDir = await tempDir();
    const exited = await failedStart(['--data-dir', dataDir], { PORT: port });
    const [line] = expectProblems(exited, 1);
    expect(line).toContain(`cannot listen on 127.0.0.1:${port}`);
    expect(line).toContain('EADDRINUSE');
    expect(existsSync(join(dataDir, 'hub.lock'))).toBe(false);
  });
});

describe('options from environment variables and flags', () => {
  it('every option has a variable and a flag: --max-file-size 5 is honoured over MAX_FILE_SIZE, CHUNK_SIZE reaches clients', async () => {
    const hub = await startServe(['--port', '0', '--data-dir', await tempDir(), '--max-file-size', '5'], { MAX_FILE_SIZE: '1000000', CHUNK_SIZE: '65536' });
    const create = (size: number) =>
      fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'a.bin', size }) });
    const refused = await create(6);
    expect(refused.status).toBe(413);
    expect(await refused.json()).toMatchObject({ error: { code: 'ERR_FILE_TOO_LARGE' } });
    expect((await create(5)).status).toBe(201);
    const client = startClient({ url: hub.url });
    await client.ping();
    expect(client.hubChunkSize).toBe(65536);
  });
});

describe('one hub per data directory (hub.lock)', () => {
  it('a second hub on the same directory refuses to start, naming the holder pid; close releases the lock', async () => {
    const dataDir = await tempDir();
    const first = await startServe(['--port', '0', '--data-dir', dataDir]);
    expect((await readFile(join(dataDir, 'hub.lock'), 'utf8')).split('\n')[0]).toBe(String(first.pid));

    const second = await failedStart(['--port', '0', '--data-dir', dataDir], {});
    const [line] = expectProblems(second, 1);
    expect(line).toContain(`in use by another hub (pid ${first.pid})`);
    expect(line).toContain(dataDir);

    expect(await first.stop()).toBe(0);
    expect(existsSync(join(dataDir, 'hub.lock'))).toBe(false);
    const third = await startServe(['--port', '0', '--data-dir', dataDir]);
    expect(third.output()).toContain('listening');
  });

  it('a stale lock (its pid is gone: a hub killed with SIGKILL) is taken over', async () => {
    const dataDir = await tempDir();
    const gone = spawn(process.execPath, ['-e', '']);
    await once(gone, 'exit');
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, 'hub.lock'), `${gone.pid}\n${hostname()}\nfeedfacefeedface\n`);
    const hub = await startServe(['--port', '0', '--data-dir', dataDir]);
    expect((await readFile(join(dataDir, 'hub.lock'), 'utf8')).split('\n')[0]).toBe(String(hub.pid));
  });

  it('in one process: a second store on a held directory is refused, close() releases it, a lock of an earlier process with our pid is stale', async () => {
    const dataDir = await tempDir();
    const first = new DiskStore(dataDir);
    await first.init();
    await first.init(); // a store that holds the lock may init again
    await expect(new DiskStore(dataDir).init()).rejects.toMatchObject({ code: 'ERR_DATA_DIR_LOCKED', message: expect.stringContaining(`pid ${process.pid}, this process`) });
    await first.close();
    expect(existsSync(join(dataDir, 'hub.lock'))).toBe(false);

    // A container restarted after SIGKILL: the lock names our pid, but no store here took it.
    await writeFile(join(dataDir, 'hub.lock'), `${process.pid}\n${hostname()}\nfeedfacefeedface\n`);
    const again = new DiskStore(dataDir);
    await again.init();
    onCleanup(() => again.close());
    expect(await readFile(join(dataDir, 'hub.lock'), 'utf8')).not.toContain('feedfacefeedface');
  });

  it('hubs restarted on one directory in one process each get the lock once the previous one closed', async () => {
    const dataDir = await tempDir();
    const first = await startHub({ options: { dataDir } });
    await expect(startHub({ options: { dataDir } })).rejects.toMatchObject({ code: 'ERR_DATA_DIR_LOCKED' });
    await first.close();
    const second = await startHub({ options: { dataDir } });
    expect((await fetch(`${second.url}/healthz`)).status).toBe(200);
  });
});
