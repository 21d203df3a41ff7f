/**
 * Test helpers, one file: hubs on port 0 in temp dirs, random files, hashes, event waiting.
 * Everything started here is registered for clean-up with `afterEach`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { pino, type Logger } from 'pino';
import { Writable } from 'node:stream';
import { createHubServer, type HubServer, type HubServerInit } from '../server/app.js';
import { UploadClient } from '../client/node.js';
import type { UploadHub, Writer } from '../server/core/UploadHub.js';
import type { UploadHubError } from '../shared/errors.js';
import type { HubEvent } from '../shared/messages.js';
import type { DiskStore } from '../server/store/DiskStore.js';
import type { UploadClientOptions } from '../client/UploadClient.js';

const cleanups: Array<() => Promise<void> | void> = [];

/** Runs `fn` after the current test, last registered first. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
});

export async function tempDir(prefix = 'upload-hub-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const silentLogger = pino({ level: 'silent' });

/** A hub on 127.0.0.1:0 with its own data directory, closed after the test. */
export async function startHub(init: HubServerInit = {}): Promise<HubServer & { dataDir: string }> {
  const dataDir = init.options?.dataDir ?? (await tempDir());
  const hub = await createHubServer({ logger: silentLogger, ...init, options: { port: 0, host: '127.0.0.1', ...init.options, dataDir } });
  onCleanup(() => hub.close());
  return Object.assign(hub, { dataDir });
}

/**
 * Where a hub keeps an upload's bytes on disk (its store is a DiskStore, the default): the core
 * reaches bytes only through store streams, so tests that check the file ask the store.
 */
export function storedPath(hub: HubServer | UploadHub, id: string): string {
  const core = 'hub' in hub ? hub.hub : hub;
  return (core.store as DiskStore).dataPath(id);
}

export function startClient(options: UploadClientOptions): UploadClient {
  const client = new UploadClient(options);
  onCleanup(() => client.close());
  return client;
}

/** A file of `size` random bytes, written in 1 MiB pieces; returns its path and sha256. */
export async function randomFile(size: number, dir?: string): Promise<{ path: string; sha256: string; size: number }> {
  const path = join(dir ?? (await tempDir()), `random-${size}.bin`);
  const handle = await open(path, 'w');
  const hash = createHash('sha256');
  try {
    for (let written = 0; written < size; ) {
      const piece = randomBytes(Math.min(1024 * 1024, size - written));
      hash.update(piece);
      await handle.write(piece);
      written += piece.byteLength;
    }
  } finally {
    await handle.close();
  }
  return { path, sha256: hash.digest('hex'), size };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Resolves with the first value `subscribe` reports that passes `test`. */
export function waitFor<T>(subscribe: (listener: (value: T) => void) => () => void, test: (value: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const off = subscribe((value) => {
      if (!test(value)) return;
      off();
      resolve(value);
    });
  });
}

/**
 * A real tmpfs of `sizeBytes` mounted on a new temp dir (unmounted after the test), for tests
 * of a full disk. Undefined where mounting is impossible (not root, no tmpfs); under CI=true
 * that is an error, since CI runs as root.
 */
export async function mountTmpfs(sizeBytes: number): Promise<string | undefined> {
  const { execFileSync } = await import('node:child_process');
  const dir = await mkdtemp(join(tmpdir(), 'upload-hub-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    if (process.env.CI === 'true') throw new Error(`Cannot mount a tmpfs under CI: ${(error as Error).message}`);
    console.warn(`Skipping the real full-disk part: cannot mount a tmpfs here (${(error as Error).message.split('\n')[0]})`);
    return undefined;
  }
  onCleanup(async () => {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A pino logger whose JSON lines the test can read and wait on. */
export function capturedLogger(): {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  /** The next line with this `msg` (and passing `test`), from now on. */
  next(msg: string, test?: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
} {
  type Line = Record<string, unknown>;
  const lines: Line[] = [];
  const waiters: Array<{ msg: string; test: (line: Line) => boolean; resolve: (line: Line) => void }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n').filter(Boolean)) {
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const waiter of [...waiters]) {
          if (line.msg !== waiter.msg || !waiter.test(line)) continue;
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines, next: (msg, test = () => true) => new Promise((resolve) => waiters.push({ msg, test, resolve })) };
}

/** The next event of `type` the hub publishes for `uploadId` (tests that drive the core directly). */
export function hubEvent(hub: UploadHub, uploadId: string, type: HubEvent['type']): Promise<HubEvent> {
  return new Promise((resolve) => {
    const subscription = hub.events.subscribe({
      deliver: (event) => {
        if (event.type !== type) return;
        subscription.close();
        resolve(event);
      },
    });
    subscription.add(uploadId);
  });
}

/** A writer for tests that drive the core directly: it records why the hub took its upload away. */
export function recordingWriter(): Writer & { reasons: Array<UploadHubError | undefined> } {
  const reasons: Array<UploadHubError | undefined> = [];
  return { reasons, detached: (_id, reason) => void reasons.push(reason) };
}
