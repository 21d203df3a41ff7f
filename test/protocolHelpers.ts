/**
 * Helpers for tests that speak the protocol below UploadClient: a raw ClientConnection per
 * transport (to send crafted chunks), a hub in a child process (to SIGKILL it), and a stream
 * source the test releases in steps (to stop an upload at a known offset without sleeping).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { UploadHubError } from '../shared/errors.js';
import type { ErrorMessage, HubEvent } from '../shared/messages.js';
import type { ClientConnection } from '../client/connection/ClientConnection.js';
import { NODE_CONNECTIONS } from '../client/node.js';
import type { TransportName } from '../client/UploadClient.js';
import { onCleanup } from './helpers.js';

export const TRANSPORT_NAMES: readonly TransportName[] = ['ws', 'socket.io'];

export interface RawConnection {
  connection: ClientConnection;
  events: HubEvent[];
  errors: ErrorMessage[];
  /** Resolves when the hub closes the connection. */
  closed: Promise<UploadHubError>;
  /** Resolves with the first event passing `test` (already received or yet to come). */
  event(test: (event: HubEvent) => boolean): Promise<HubEvent>;
}

export async function openConnection(transport: TransportName, url: string, token?: string): Promise<RawConnection> {
  const factory = NODE_CONNECTIONS[transport];
  if (!factory) throw new Error(`No ${transport} connection in client/node.ts`);
  const events: HubEvent[] = [];
  const errors: ErrorMessage[] = [];
  const waiters: Array<{ test: (event: HubEvent) => boolean; resolve: (event: HubEvent) => void }> = [];
  let markClosed: (reason: UploadHubError) => void = () => {};
  const closed = new Promise<UploadHubError>((resolve) => (markClosed = resolve));
  const connection = factory({
    url,
    ...(token === undefined ? {} : { token }),
    requestTimeoutMs: 10_000,
    handlers: {
      event(event) {
        events.push(event);
        for (const waiter of [...waiters]) {
          if (waiter.test(event)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(event);
          }
        }
      },
      error: (message) => errors.push(message),
      closed: (reason) => markClosed(reason),
    },
  });
  await connection.open();
  onCleanup(() => connection.close());
  return {
    connection,
    events,
    errors,
    closed,
    event(test) {
      const seen = events.find(test);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ test, resolve }));
    },
  };
}

/** A port that was free a moment ago (for a child hub that must restart on the same port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ChildHub {
  process: ChildProcess;
  url: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** The last 64 KiB the hub wrote to stdout and stderr: what it said before it died. */
  output(): string;
}

export interface SpawnHubOptions {
  /** More environment variables: hub options (`MAX_MESSAGE_BYTES`), LOG_LEVEL. */
  env?: Record<string, string>;
  /** Run the default processing stages. Default false (`--no-processing`). */
  processing?: boolean;
}

const CHILD_OUTPUT_BYTES = 64 * 1024;

/** `upload-hub serve` in a child process; resolves once it logs that it listens. */
export async function spawnHub(dataDir: string, port: number, options: SpawnHubOptions = {}): Promise<ChildHub> {
  const args = ['--import', 'tsx', 'server/main.ts', 'serve', '--port', String(port), '--data-dir', dataDir];
  if (options.processing !== true) args.push('--no-processing');
  const child = spawn(process.execPath, args, {
    cwd: new URL('..', import.meta.url).pathname,
    env: { ...process.env, LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit');
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  onCleanup(() => kill());
  let output = '';
  const keep = (data: Buffer) => {
    output += data.toString();
    if (output.length > CHILD_OUTPUT_BYTES) output = output.slice(-CHILD_OUTPUT_BYTES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  await new Promise<void>((resolve, reject) => {
    const listening = () => {
      if (!output.includes('"port"')) return;
      child.stdout?.off('data', listening);
      resolve();
    };
    child.stdout?.on('data', listening);
    child.once('exit', (code) => reject(new Error(`hub exited (${code}) before listening:\n${output}`)));
  });
  return { process: child, url: `http://127.0.0.1:${port}`, kill, output: () => output };
}

/**
 * A readable over `bytes` that stops after `pauseAt` bytes until `release()` is called, so a
 * test can act on an upload that is provably incomplete.
 */
export function gatedStream(bytes: Buffer, pauseAt: number, pieceSize = 256 * 1024): { stream: Readable; release: () => void } {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  async function* slices(from: number, to: number): AsyncGenerator<Buffer> {
    for (let at = from; at < to; at += pieceSize) yield bytes.subarray(at, Math.min(at + pieceSize, to));
  }
  async function* pieces(): AsyncGenerator<Buffer> {
    yield* slices(0, pauseAt);
    await gate;
    yield* slices(pauseAt, bytes.byteLength);
  }
  return { stream: Readable.from(pieces(), { objectMode: false }), release };
}
