/**
 * For the CLI tests: `upload-hub` as a child process whose output can be waited on line by line,
 * and a TCP proxy that holds what the CLI sends after a number of bytes, so an upload is provably
 * still running (and a cancel provably not yet delivered) when a test acts on it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from '../helpers.js';

export const repo = new URL('../..', import.meta.url).pathname;
/** Far above anything a CLI run here takes: one that hangs is killed and fails its test. */
export const KILL_AFTER_MS = 60_000;
/** How long a test waits for one line of output. */
export const LINE_TIMEOUT_MS = 30_000;

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first complete line on the stream that passes `test` (lines already printed count). */
  line(stream: 'stdout' | 'stderr', test: (line: string) => boolean): Promise<string>;
  exited: Promise<Exited>;
}

let runs = 0;

/**
 * `upload-hub ARGS...` from the sources, as the tests always ran it. `env` is added to the
 * test's environment, minus the CLI's own variables, so a developer's UPLOAD_HUB_URL does not
 * leak in; send's fingerprint store is a file of the run's own (removed after the test) unless
 * `env` or `--fingerprints` names one, so no test reads or writes ~/.upload-hub.
 */
export function startCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('UPLOAD_HUB_')));
  const fingerprints = join(tmpdir(), `upload-hub-cli-${process.pid}-${++runs}.json`);
  onCleanup(() => rm(fingerprints, { force: true }));
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', ...args], {
    cwd: repo,
    env: { ...base, UPLOAD_HUB_FINGERPRINTS: fingerprints, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return watchChild(child);
}

/** Output and exit of a child, with line waiting. Killed after the test if still running. */
export function watchChild(child: ChildProcessWithoutNullStreams): RunningCli {
  const output = { stdout: '', stderr: '' };
  const waiters = new Set<() => void>();
  for (const name of ['stdout', 'stderr'] as const) {
    child[name].on('data', (data: Buffer) => {
      output[name] += data.toString();
      for (const waiter of [...waiters]) waiter();
    });
  }
  const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
  let closed = false;
  const exited = (once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>).then(([code, signal]) => {
    clearTimeout(killer);
    closed = true;
    for (const waiter of [...waiters]) waiter();
    return { code, signal, stdout: output.stdout, stderr: output.stderr };
  });
  onCleanup(async () => {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return {
    child,
    exited,
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    line(stream, test) {
      return new Promise((resolve, reject) => {
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        const check = () => {
          const text = output[stream];
          // A line is complete once its newline came, or once the process closed.
          const found = (closed ? text.split('\n') : text.split('\n').slice(0, -1)).find(test);
          if (found !== undefined) finish(() => resolve(found));
          else if (closed) finish(() => reject(new Error(`exited (${child.exitCode ?? child.signalCode}) without the line on ${stream}:\n${output.stdout}\n${output.stderr}`)));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no such line on ${stream} within ${LINE_TIMEOUT_MS} ms:\n${output.stdout}\n${output.stderr}`))), LINE_TIMEOUT_MS);
        waiters.add(check);
        check();
      });
    },
  };
}

/** Every stdout line of an NDJSON run, parsed: a line that is not JSON fails the test here. */
export function ndjson(stdout: string): Array<Record<string, unknown> & { type: string }> {
  return stdout.split('\n').filter((line) => line !== '').map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown> & { type: string };
    } catch {
      throw new Error(`not a JSON line: ${JSON.stringify(line)}`);
    }
  });
}

export interface GateProxy {
  url: string;
  /** Bytes each connection sent towards the hub (forwarded or held), in connection order. */
  sent: number[];
  /** Resolves once a connection has reached the hold point and is being held. */
  holding: Promise<void>;
  /** Forwards what was held and lets everything through from now on, on every connection. */
  release(): void;
}

/**
 * A TCP proxy to `targetUrl` that forwards each connection's bytes towards the target until
 * `holdAfter` of them went through, then holds the rest in memory (the hub's answers still flow
 * back). A connection whose client goes away while held is cut without delivering what was held,
 * as a link that died would be. After release(), new connections pass freely.
 */
export async function startGateProxy(targetUrl: string, holdAfter: number): Promise<GateProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let released = false;
  const releases = new Set<() => void>();
  let heldOnce: () => void = () => {};
  const holding = new Promise<void>((resolve) => (heldOnce = resolve));
  const sent: number[] = [];

  const server = createServer((client) => {
    const index = sent.push(0) - 1;
    const upstream = connect({ host: target.hostname, port: Number(target.port) });
    sockets.add(client);
    sockets.add(upstream);
    const held: Buffer[] = [];
    let forwarded = 0;
    const flush = () => {
      for (const piece of held.splice(0)) upstream.write(piece);
    };
    releases.add(flush);
    client.on('data', (data: Buffer) => {
      sent[index] = (sent[index] as number) + data.byteLength;
      if (released) return void upstream.write(data);
      const room = Math.max(0, holdAfter - forwarded);
      if (room > 0) upstream.write(data.subarray(0, room));
      forwarded += Math.min(room, data.byteLength);
      if (data.byteLength > room) {
        held.push(data.subarray(room));
        heldOnce();
      }
    });
    upstream.on('data', (data: Buffer) => client.write(data));
    const closeBoth = () => {
      releases.delete(flush);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', closeBoth);
      socket.on('close', closeBoth);
    }
  });
  server.on('error', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  onCleanup(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  });
  return {
    url: `http://127.0.0.1:${port}`,
    sent,
    holding,
    release() {
      released = true;
      for (const flush of releases) flush();
    },
  };
}

/** Whether `script` (util-linux) is there to give the CLI a pseudo-terminal. */
export async function hasScript(): Promise<boolean> {
  const probe = spawn('script', ['--version'], { stdio: 'ignore' });
  const [code] = (await Promise.race([once(probe, 'exit'), once(probe, 'error').then(() => [null])])) as [number | null];
  return code === 0;
}
