/**
 * Slow requests end: a JSON body that is not in within requestTimeoutMs gets 408
 * ERR_REQUEST_TIMEOUT; a multipart body under minUploadRate (averaged over
 * minUploadRateWindowMs) is aborted with 408 ERR_TOO_SLOW and its partial bytes removed, while a
 * slow but steady one completes. Small option values keep each case to a few seconds.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { MultipartResponse } from '../../server/transports/http/multipart.js';
import type { HubEvent } from '../../shared/messages.js';
import { onCleanup, startHub, waitFor, storedPath } from '../helpers.js';

const BOUNDARY = 'SlowBodyBoundary';

interface RawAnswer {
  status: number;
  headers: string;
  body: string;
}

/** A request over raw TCP whose body the test writes itself; `answer` resolves once the hub closes. */
function rawRequest(port: number, head: string): { socket: Socket; answer: Promise<RawAnswer> } {
  const socket = connect(port, '127.0.0.1');
  onCleanup(() => {
    socket.destroy();
  });
  const received: Buffer[] = [];
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    socket.on('data', (data: Buffer) => received.push(data));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(received).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!status || split < 0) reject(new Error(`no HTTP answer: ${JSON.stringify(text)}`));
      else resolve({ status: Number(status[1]), headers: text.slice(0, split), body: text.slice(split + 4) });
    });
  });
  socket.write(head);
  return { socket, answer };
}

/** Rejects when `promise` has not settled within `ms`: today's hub holds these requests forever. */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Writes `piece` every `everyMs` until the socket closes or `count` pieces are out; the client's pace. */
function trickle(socket: Socket, piece: () => Buffer, everyMs: number, count = Infinity): Promise<void> {
  return new Promise((resolve) => {
    let sent = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || sent >= count) {
        clearInterval(timer);
        resolve();
        return;
      }
      socket.write(piece());
      sent++;
    }, everyMs);
    onCleanup(() => clearInterval(timer));
  });
}

/** `Connection: close`, so the hub ends the connection after its answer, whatever the answer. */
function multipartHead(port: number, contentLength: number): string {
  return `POST /api/uploads/multipart HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${contentLength}\r\nConnection: close\r\n\r\n`;
}

const PART_HEADERS = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="slow.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;

describe('slow request bodies', () => {
  it('answers a JSON body still incomplete after requestTimeoutMs with 408 ERR_REQUEST_TIMEOUT and closes', async () => {
    const hub = await startHub({ options: { requestTimeoutMs: 400 } });
    const body = JSON.stringify({ name: 'never.bin', size: 10 });
    const started = Date.now();
    const { socket, answer } = rawRequest(hub.port, `POST /api/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    // One byte every 100 ms: it would take seconds, and the hub must not wait that long.
    let at = 0;
    void trickle(socket, () => Buffer.from(body[at++] ?? ' '), 100);
    const { status, headers, body: text } = await within(10_000, answer, 'trickled JSON body');
    expect(status).toBe(408);
    expect(headers.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'ERR_REQUEST_TIMEOUT', message: expect.stringContaining('requestTimeoutMs') } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(await hub.hub.list({ id: 'anonymous' })).toHaveLength(0);

    // A body that arrives in time is untouched by the deadline.
    const ok = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(ok.status).toBe(201);
  });

  it('aborts a multipart body under minUploadRate with 408 ERR_TOO_SLOW and removes its bytes', async () => {
    // 200 bytes every 200 ms is 1000 B/s, under the 4000 B/s floor; idle and request timeouts are far away.
    const hub = await startHub({ options: { minUploadRate: 4000, minUploadRateWindowMs: 1000, idleTimeoutMs: 60_000, requestTimeoutMs: 200 } });
    const failed = waitFor<HubEvent>((listener) => hub.hub.events.tap(listener), (event) => event.type === 'failed');
    const uploading = waitFor<HubEvent>((listener) => hub.hub.events.tap(listener), (event) => event.type === 'progress' && event.bytes > 0);
    const { socket, answer } = rawRequest(hub.port, multipartHead(hub.port, 10 * 1024 * 1024));
    socket.write(PART_HEADERS);
    socket.write(randomBytes(64 * 1024));
    void trickle(socket, () => randomBytes(200), 200);
    const progressed = await within(10_000, uploading, 'first bytes stored');
    expect(existsSync(storedPath(hub, progressed.uploadId))).toBe(true);

    const { status, headers, body } = await within(10_000, answer, 'trickled multipart body');
    expect(status).toBe(408);
    expect(headers.toLowerCase()).toContain('connection: close');
    const parsed = JSON.parse(body) as MultipartResponse;
    expect(parsed.error).toMatchObject({ code: 'ERR_TOO_SLOW', message: expect.stringContaining('minUploadRate') });
    expect(parsed.uploads).toEqual([expect.objectContaining({ id: progressed.uploadId, state: 'failed', error: expect.objectContaining({ code: 'ERR_TOO_SLOW' }) })]);
    expect(await failed).toMatchObject({ uploadId: progressed.uploadId, error: { code: 'ERR_TOO_SLOW' } });
    expect(await hub.hub.status({ id: 'anonymous' }, progressed.uploadId)).toMatchObject({ state: 'failed', error: { code: 'ERR_TOO_SLOW' } });
    expect(existsSync(storedPath(hub, progressed.uploadId))).toBe(false);
  });

  it('completes a multipart body that is slow but above minUploadRate, however long past requestTimeoutMs it takes', async () => {
    const hub = await startHub({ options: { minUploadRate: 4000, minUploadRateWindowMs: 500, requestTimeoutMs: 200 } });
    const pieces = 25;
    const pieceSize = 1000;
    const tail = `\r\n--${BOUNDARY}--\r\n`;
    const { socket, answer } = rawRequest(hub.port, multipartHead(hub.port, PART_HEADERS.length + pieces * pieceSize + tail.length));
    socket.write(PART_HEADERS);
    // 1000 bytes every 50 ms: 20 kB/s, five times the floor, for about 1.25 s.
    await trickle(socket, () => randomBytes(pieceSize), 50, pieces);
    socket.write(tail);
    const result = await within(10_000, answer, 'slow but steady body');
    expect(result.status).toBe(200);
    const parsed = JSON.parse(result.body) as MultipartResponse;
    expect(parsed.error).toBeUndefined();
    expect(parsed.uploads).toEqual([expect.objectContaining({ state: 'completed', size: pieces * pieceSize })]);
  });
});
