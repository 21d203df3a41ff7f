/**
 * No request can crash the hub: multipart bodies that end inside a part, sent over raw TCP to a
 * hub in its own process, each get 400 with a coded error and leave no partial data behind; the
 * same process then completes a healthy upload.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MultipartResponse } from '../../server/transports/http/multipart.js';
import { onCleanup, sha256Of, tempDir } from '../helpers.js';

const repo = new URL('../..', import.meta.url).pathname;
const MiB = 1024 * 1024;
const BOUNDARY = 'UnterminatedBoundary42';

/** A hub in a child process; its exit (a crash) fails every later request of the test. */
async function spawnHub(dataDir: string, options: Record<string, unknown> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/http-hub.ts', dataDir, JSON.stringify(options)], {
    cwd: repo,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => (stderr += text));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  child.stdout.setEncoding('utf8');
  const [line] = (await Promise.race([
    once(child.stdout, 'data') as Promise<[string]>,
    exited.then(([code]) => { throw new Error(`hub exited with ${code} before listening:\n${stderr}`); }),
  ])) as [string];
  const { url } = JSON.parse(line) as { url: string };
  return {
    url,
    port: Number(new URL(url).port),
    alive: () => child.exitCode === null && child.signalCode === null,
    stderr: () => stderr,
  };
}

interface RawAnswer {
  status: number;
  body: MultipartResponse;
}

/** Sends a whole request over raw TCP, then half-closes: the client has finished its request. */
function rawPost(port: number, body: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (data: Buffer) => received.push(data));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(received).toString('utf8');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const split = text.indexOf('\r\n\r\n');
      if (!status || split < 0) {
        reject(new Error(`no HTTP answer: ${JSON.stringify(text)}`));
        return;
      }
      try {
        resolve({ status: Number(status[1]), body: JSON.parse(text.slice(split + 4)) as MultipartResponse });
      } catch {
        reject(new Error(`answer is not JSON: ${JSON.stringify(text.slice(0, 500))}`));
      }
    });
    socket.write(
      `POST /api/uploads/multipart HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\n` +
      `Content-Length: ${body.byteLength}\r\nConnection: close\r\n\r\n`,
    );
    socket.end(body);
  });
}

const fileHeaders = (field: string, filename: string): string =>
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
const field = (name: string, value: string): string => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;

/** Every way a body can end inside a part, with how many of its files are whole. */
const SHAPES: Array<{ name: string; body: Buffer; complete: number }> = [
  { name: 'a file part with no closing boundary', body: Buffer.concat([Buffer.from(fileHeaders('f', 'a.bin')), randomBytes(1000)]), complete: 0 },
  { name: 'a field, then an unterminated file part', body: Buffer.concat([Buffer.from(field('note', 'hello') + fileHeaders('f', 'a.bin')), randomBytes(5000)]), complete: 0 },
  {
    name: 'a complete file, then an unterminated one',
    body: Buffer.concat([Buffer.from(fileHeaders('f', 'a.bin')), randomBytes(3000), Buffer.from('\r\n' + fileHeaders('g', 'b.bin')), randomBytes(3000)]),
    complete: 1,
  },
  { name: 'part headers and nothing else', body: Buffer.from(fileHeaders('f', 'a.bin')), complete: 0 },
  { name: 'part headers cut in the middle', body: Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-da`), complete: 0 },
  { name: 'one byte of an unterminated part', body: Buffer.concat([Buffer.from(fileHeaders('f', 'a.bin')), randomBytes(1)]), complete: 0 },
  { name: 'an unterminated part of 3 MiB', body: Buffer.concat([Buffer.from(fileHeaders('f', 'a.bin')), randomBytes(3 * MiB)]), complete: 0 },
  { name: 'a file part ending at a delimiter without its closing dashes', body: Buffer.concat([Buffer.from(fileHeaders('f', 'a.bin')), randomBytes(2000), Buffer.from(`\r\n--${BOUNDARY}`)]), complete: 1 },
  { name: 'an empty-filename part, unterminated', body: Buffer.concat([Buffer.from(fileHeaders('f', '')), randomBytes(2000)]), complete: 0 },
  { name: 'an empty body', body: Buffer.alloc(0), complete: 0 },
];

async function dataFiles(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, 'uploads'))).filter((name) => name.endsWith('.data')).sort();
}

describe('multipart bodies that end inside a part', () => {
  it('answers each shape 400 ERR_BAD_MESSAGE, removes its partial data, and keeps serving', async () => {
    const dataDir = await tempDir();
    const hub = await spawnHub(dataDir);
    const kept: string[] = [];
    for (const shape of SHAPES) {
      const answer = await rawPost(hub.port, shape.body).catch((error: unknown) => {
        throw new Error(`${shape.name}: ${(error as Error).message}; hub alive: ${hub.alive()}\n${hub.stderr()}`);
      });
      expect(answer.status, shape.name).toBe(400);
      expect(answer.body.error, shape.name).toMatchObject({ code: 'ERR_BAD_MESSAGE', message: expect.stringContaining('closing boundary') });
      const whole = answer.body.uploads.filter((upload) => upload.state === 'completed');
      expect(whole, shape.name).toHaveLength(shape.complete);
      for (const upload of answer.body.uploads.filter((candidate) => candidate.state !== 'completed')) {
        expect(upload, shape.name).toMatchObject({ state: 'failed', error: { code: 'ERR_BAD_MESSAGE' } });
      }
      kept.push(...whole.map((upload) => `${upload.id}.data`));
      // The answer comes after the failed parts' bytes are removed: only whole files remain.
      expect(await dataFiles(dataDir), shape.name).toEqual([...kept].sort());
      expect(hub.alive(), shape.name).toBe(true);
    }

    const bytes = randomBytes(2 * MiB + 11);
    const form = new FormData();
    form.append('file', new Blob([bytes]), 'healthy.bin');
    const response = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', body: form });
    expect(response.status).toBe(200);
    const body = (await response.json()) as MultipartResponse;
    expect(body.uploads).toEqual([expect.objectContaining({ state: 'completed', size: bytes.byteLength, sha256: sha256Of(bytes) })]);
    expect(hub.alive()).toBe(true);
  });
});
