/**
 * The abuse limits end to end, over real sockets: each refused with its code and HTTP status
 * over raw WebSocket, Socket.IO and HTTP, and nothing stored for a refused create.
 */
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { io as ioClient, type Socket as IoSocket } from 'socket.io-client';
import type { ErrorCode } from '../../shared/errors.js';
import { encodeChunkFrame } from '../../shared/frame.js';
import { PROTOCOL_VERSION, type ChunkReply, type CreateInput, type HubEvent, type ServerMessage } from '../../shared/messages.js';
import type { HubServerInit } from '../../server/app.js';
import { connectionLimitOf } from '../../server/transports/connectionLimit.js';
import { SNIFF_BYTES } from '../../server/core/Limits.js';
import { onCleanup, startHub } from '../helpers.js';
import { pngBytes } from '../fixtures/png.js';

type Hub = Awaited<ReturnType<typeof startHub>>;
type TransportName = 'ws' | 'socket.io';
const SOCKETS: readonly TransportName[] = ['ws', 'socket.io'];
const KiB = 1024;
const MiB = 1024 * KiB;

/** Answers to `create`: `attached`, or the error naming the request. */
type CreateReply = Extract<ServerMessage, { type: 'attached' | 'error' }>;

/** The protocol spoken by hand over one socket, so the hub's answers are seen as sent. */
interface Peer {
  create(input: CreateInput): Promise<CreateReply>;
  chunk(uploadId: string, offset: number, data: Uint8Array): Promise<ChunkReply>;
  close(): void;
}

let nextReq = 0;

/** The next `event` of a Socket.IO client socket or manager (not Node emitters, so no events.once). */
function onceIo(emitter: { once(event: string, listener: (...args: unknown[]) => void): unknown }, event: string): Promise<unknown> {
  return new Promise((resolve) => emitter.once(event, resolve));
}

async function connect(hub: Hub, transport: TransportName, token?: string): Promise<Peer> {
  const waiting = new Map<string, (reply: CreateReply) => void>();
  const onReply = (message: ServerMessage) => {
    if ((message.type === 'attached' || message.type === 'error') && message.reqId !== undefined) waiting.get(message.reqId)?.(message);
  };
  const request = (input: CreateInput, send: (reqId: string) => void) => {
    const reqId = `r${nextReq++}`;
    const reply = new Promise<CreateReply>((resolve) => waiting.set(reqId, resolve));
    send(reqId);
    return reply;
  };
  if (transport === 'ws') {
    const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/ws`);
    onCleanup(() => ws.terminate());
    const chunks = new Map<string, (reply: ChunkReply) => void>();
    const welcome = new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString()) as ServerMessage;
        if (message.type === 'welcome') resolve();
        if ((message.type === 'ack' || message.type === 'error') && message.chunkOffset !== undefined) chunks.get(`${message.uploadId}:${message.chunkOffset}`)?.(message as ChunkReply);
        onReply(message);
      });
    });
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, ...(token === undefined ? {} : { token }) }));
    await welcome;
    return {
      create: (input) => request(input, (reqId) => ws.send(JSON.stringify({ type: 'create', reqId, ...input }))),
      chunk: (uploadId, offset, data) => new Promise((resolve) => {
        chunks.set(`${uploadId}:${offset}`, resolve);
        ws.send(encodeChunkFrame(uploadId, offset, data));
      }),
      close: () => ws.close(),
    };
  }
  const socket: IoSocket = ioClient(hub.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { version: PROTOCOL_VERSION, ...(token === undefined ? {} : { token }) } });
  onCleanup(() => void socket.disconnect());
  const welcome = onceIo(socket, 'welcome');
  socket.on('attached', (payload: object) => onReply({ type: 'attached', ...payload } as ServerMessage));
  socket.on('error', (payload: object) => onReply({ type: 'error', ...payload } as ServerMessage));
  await welcome;
  return {
    create: (input) => request(input, (reqId) => socket.emit('create', { reqId, ...input })),
    chunk: (uploadId, offset, data) => new Promise((resolve) => socket.emit('chunk', uploadId, offset, data, resolve)),
    close: () => void socket.disconnect(),
  };
}

async function start(options: NonNullable<HubServerInit['options']>, init: Omit<HubServerInit, 'options'> = {}): Promise<Hub> {
  // Every limit this file does not test is off or generous, so each test sees only its own.
  return startHub({ ...init, options: { minFreeDiskBytes: 0, maxOpenUploadsPerPrincipal: 0, createsPerMinutePerPrincipal: 0, ...options } });
}

/** The records and the data files in the hub's data directory. */
async function stored(hub: Hub): Promise<{ records: number; data: string[] }> {
  const names = await readdir(join(hub.dataDir, 'uploads'));
  return { records: names.filter((name) => name.endsWith('.json')).length, data: names.filter((name) => name.endsWith('.data')) };
}

function restCreate(hub: Hub, input: CreateInput, token?: string): Promise<Response> {
  return fetch(`${hub.url}/api/uploads`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(input),
  });
}

async function multipart(hub: Hub, file: { bytes: Uint8Array; name: string; type: string }, fields: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: { uploads: Array<{ id?: string; state: string; error?: { code: ErrorCode } }>; error?: { code: ErrorCode } } }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append('file', new Blob([new Uint8Array(file.bytes)], { type: file.type }), file.name);
  const res = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', body: form });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Awaited<ReturnType<typeof multipart>>['body'] };
}

async function errorCodeOf(res: Response): Promise<ErrorCode> {
  return ((await res.json()) as { error: { code: ErrorCode } }).error.code;
}

/** Resolves with the upload's terminal event. */
function terminal(hub: Hub, uploadId: string): Promise<HubEvent> {
  return new Promise((resolve) => {
    const off = hub.hub.events.tap((event) => {
      if (event.uploadId !== uploadId || !['completed', 'failed', 'cancelled', 'expired'].includes(event.type)) return;
      off();
      resolve(event);
    });
  });
}

/** Sends `bytes` from 0 within the windows granted, chunk by chunk; resolves with the last reply. */
async function sendAll(peer: Peer, attached: Extract<CreateReply, { type: 'attached' }>, bytes: Uint8Array, chunkSize = 16 * KiB): Promise<ChunkReply | undefined> {
  let limit = attached.offset + attached.window;
  let reply: ChunkReply | undefined;
  for (let offset = 0; offset < bytes.byteLength; ) {
    const size = Math.min(chunkSize, bytes.byteLength - offset, limit - offset);
    reply = await peer.chunk(attached.upload.id, offset, bytes.subarray(offset, offset + size));
    if (reply.type === 'error') return reply;
    offset = reply.offset;
    limit = reply.offset + reply.window;
  }
  return reply;
}

function attachedOf(reply: CreateReply): Extract<CreateReply, { type: 'attached' }> {
  if (reply.type !== 'attached') throw new Error(`create refused: ${reply.code} ${reply.message}`);
  return reply;
}

describe('maxOpenUploadsPerPrincipal', () => {
  it("refuses a principal's next create with ERR_TOO_MANY_UPLOADS (429) over ws, Socket.IO and HTTP, stores nothing, and counts no other principal's or finished uploads", async () => {
    const hub = await start({ maxOpenUploadsPerPrincipal: 2 }, { authenticate: (token) => (token ? { id: token } : null) });
    const ws = await connect(hub, 'ws', 'alice');
    const sio = await connect(hub, 'socket.io', 'alice');
    const first = attachedOf(await ws.create({ name: 'a.bin', size: 10 }));
    attachedOf(await sio.create({ name: 'b.bin', size: 10 }));

    for (const peer of [ws, sio]) expect(await peer.create({ name: 'c.bin', size: 10 })).toMatchObject({ type: 'error', code: 'ERR_TOO_MANY_UPLOADS' });
    const rest = await restCreate(hub, { name: 'c.bin', size: 10 }, 'alice');
    expect(rest.status).toBe(429);
    expect(await errorCodeOf(rest)).toBe('ERR_TOO_MANY_UPLOADS');
    expect((await stored(hub)).records).toBe(2);

    // Another principal has its own count.
    const bob = await connect(hub, 'ws', 'bob');
    attachedOf(await bob.create({ name: 'b.bin', size: 10 }));

    // A finished upload (cancelled, or completed) no longer counts.
    const cancel = await fetch(`${hub.url}/api/uploads/${first.upload.id}`, { method: 'DELETE', headers: { authorization: 'Bearer alice' } });
    expect(await cancel.json()).toMatchObject({ state: 'cancelled' });
    const empty = attachedOf(await ws.create({ name: 'empty.bin', size: 0 }));
    if ((await hub.hub.status({ id: 'alice' }, empty.upload.id)).state !== 'completed') await terminal(hub, empty.upload.id);
    expect((await restCreate(hub, { name: 'd.bin', size: 10 }, 'alice')).status).toBe(201);
  });
});

describe('createsPerMinutePerPrincipal', () => {
  it('refuses creates past the rate with ERR_RATE_LIMITED (429): a retryAfterMs hint over ws and Socket.IO, Retry-After over HTTP (REST and multipart); nothing stored', async () => {
    const hub = await start({ createsPerMinutePerPrincipal: 3 });
    const ws = await connect(hub, 'ws');
    const sio = await connect(hub, 'socket.io');
    attachedOf(await ws.create({ name: 'a.bin', size: 10 }));
    attachedOf(await sio.create({ name: 'b.bin', size: 10 }));
    expect((await restCreate(hub, { name: 'c.bin', size: 10 })).status).toBe(201);

    for (const peer of [ws, sio]) {
      const refused = await peer.create({ name: 'd.bin', size: 10 });
      expect(refused).toMatchObject({ type: 'error', code: 'ERR_RATE_LIMITED' });
      // 3 a minute: the next one comes within 20 s.
      const hint = Number(/retryAfterMs: (\d+)/.exec((refused as { message: string }).message)?.[1]);
      expect(hint).toBeGreaterThan(0);
      expect(hint).toBeLessThanOrEqual(20_000);
    }
    const rest = await restCreate(hub, { name: 'd.bin', size: 10 });
    expect(rest.status).toBe(429);
    expect(Number(rest.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(rest.headers.get('retry-after'))).toBeLessThanOrEqual(20);
    expect(await rest.json()).toMatchObject({ error: { code: 'ERR_RATE_LIMITED' } });
    const form = await multipart(hub, { bytes: new Uint8Array(10), name: 'e.bin', type: 'application/octet-stream' });
    expect(form.status).toBe(429);
    expect(Number(form.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(form.body.uploads).toMatchObject([{ state: 'failed', error: { code: 'ERR_RATE_LIMITED' } }]);
    expect(form.body.uploads[0]?.id).toBeUndefined();
    // The refused creates left nothing: the three records are the creates that passed.
    expect((await stored(hub)).records).toBe(3);
  });
});

describe('maxMetadataBytes', () => {
  it('refuses metadata over the bytes or 64 keys with ERR_METADATA_TOO_LARGE (413) over ws, Socket.IO, REST and multipart fields; nothing stored', async () => {
    const hub = await start({ maxMetadataBytes: 256 });
    // {"note":"é…"}: 11 bytes of JSON around 2 bytes per character.
    const big = { note: 'é'.repeat(123) };
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, '']));
    for (const transport of SOCKETS) {
      const peer = await connect(hub, transport);
      for (const metadata of [big, many]) expect(await peer.create({ name: 'a.bin', size: 10, metadata })).toMatchObject({ type: 'error', code: 'ERR_METADATA_TOO_LARGE' });
      attachedOf(await peer.create({ name: 'ok.bin', size: 10, metadata: { note: 'é'.repeat(122) } }));
    }
    const rest = await restCreate(hub, { name: 'a.bin', size: 10, metadata: big });
    expect(rest.status).toBe(413);
    expect(await errorCodeOf(rest)).toBe('ERR_METADATA_TOO_LARGE');
    const form = await multipart(hub, { bytes: new Uint8Array(10), name: 'a.bin', type: 'application/octet-stream' }, { note: 'x'.repeat(300) });
    expect(form.status).toBe(413);
    expect(form.body.uploads).toMatchObject([{ state: 'failed', error: { code: 'ERR_METADATA_TOO_LARGE' } }]);
    expect((await stored(hub)).records).toBe(2);
  });
});

describe('allowedTypes', () => {
  const text = (bytes: number) => Buffer.from('this is plain text, not a picture\n'.repeat(Math.ceil(bytes / 34)).slice(0, bytes));

  it('a declared type not in the list is refused at create with ERR_TYPE_NOT_ALLOWED (415) over ws, Socket.IO and HTTP; nothing stored', async () => {
    const hub = await start({ allowedTypes: ['image/png'] });
    for (const transport of SOCKETS) {
      const peer = await connect(hub, transport);
      expect(await peer.create({ name: 'a.txt', size: 10, mimeType: 'text/plain' })).toMatchObject({ type: 'error', code: 'ERR_TYPE_NOT_ALLOWED' });
    }
    const rest = await restCreate(hub, { name: 'a.txt', size: 10, mimeType: 'text/plain' });
    expect(rest.status).toBe(415);
    expect(await errorCodeOf(rest)).toBe('ERR_TYPE_NOT_ALLOWED');
    const form = await multipart(hub, { bytes: text(10), name: 'a.txt', type: 'text/plain' });
    expect(form.status).toBe(415);
    expect(await stored(hub)).toEqual({ records: 0, data: [] });
  });

  for (const transport of SOCKETS) {
    it(`over ${transport}: a real PNG declared image/png completes; text declared image/png fails with ERR_TYPE_NOT_ALLOWED as soon as its first ${SNIFF_BYTES} bytes are in, saved, published, its bytes removed`, async () => {
      const hub = await start({ allowedTypes: ['image/png'] });
      const peer = await connect(hub, transport);

      const png = pngBytes(64);
      expect(png.byteLength).toBeGreaterThan(SNIFF_BYTES);
      const good = attachedOf(await peer.create({ name: 'a.png', size: png.byteLength, mimeType: 'image/png' }));
      const goodEnd = terminal(hub, good.upload.id);
      expect(await sendAll(peer, good, png)).toMatchObject({ type: 'ack' });
      expect(await goodEnd).toMatchObject({ type: 'completed' });

      // 4 MiB declared, 8 KiB sent: the refusal comes while the upload is far from complete.
      const bad = attachedOf(await peer.create({ name: 'b.png', size: 4 * MiB, mimeType: 'image/png' }));
      const badEnd = terminal(hub, bad.upload.id);
      expect(await peer.chunk(bad.upload.id, 0, text(8 * KiB))).toMatchObject({ type: 'ack' });
      expect(await badEnd).toMatchObject({ type: 'failed', error: { code: 'ERR_TYPE_NOT_ALLOWED' } });
      expect(await hub.hub.status({ id: 'anonymous' }, bad.upload.id)).toMatchObject({ state: 'failed', error: { code: 'ERR_TYPE_NOT_ALLOWED' } });
      expect(await peer.chunk(bad.upload.id, 8 * KiB, text(KiB))).toMatchObject({ type: 'error' });
      const files = await stored(hub);
      expect(files.data).toEqual([`${good.upload.id}.data`]);
      expect(files.records).toBe(2);

      // A file smaller than what file-type reads is checked at its end, before it counts as uploaded.
      const small = attachedOf(await peer.create({ name: 'c.png', size: 1000, mimeType: 'image/png' }));
      const smallEnd = terminal(hub, small.upload.id);
      await sendAll(peer, small, text(1000));
      expect(await smallEnd).toMatchObject({ type: 'failed', error: { code: 'ERR_TYPE_NOT_ALLOWED' } });
      expect((await stored(hub)).data).toEqual([`${good.upload.id}.data`]);
    });
  }

  it('over HTTP multipart: a PNG passes, text declared image/png is 415 with its bytes removed; text (CSV) passes where a text type is allowed', async () => {
    const hub = await start({ allowedTypes: ['image/png', 'text/csv'] });
    const png = await multipart(hub, { bytes: pngBytes(64), name: 'a.png', type: 'image/png' });
    expect(png.status).toBe(200);
    expect(png.body.uploads).toMatchObject([{ state: 'completed' }]);

    const fake = await multipart(hub, { bytes: text(64 * KiB), name: 'b.png', type: 'image/png' });
    expect(fake.status).toBe(415);
    expect(fake.body).toMatchObject({ error: { code: 'ERR_TYPE_NOT_ALLOWED' }, uploads: [{ state: 'failed', error: { code: 'ERR_TYPE_NOT_ALLOWED' } }] });
    const csv = await multipart(hub, { bytes: Buffer.from('a,b\n1,2\n'), name: 'rows.csv', type: 'text/csv' });
    expect(csv.status).toBe(200);
    expect((await stored(hub)).data.sort()).toEqual([`${png.body.uploads[0]?.id}.data`, `${csv.body.uploads[0]?.id}.data`].sort());
  });
});

describe('minFreeDiskBytes', () => {
  it('refuses a create that would leave less free space with ERR_STORAGE_FULL (507) over ws, Socket.IO and HTTP, before any byte; nothing stored', async () => {
    // More than any disk has free, so the test runs the same on every disk.
    const hub = await start({ minFreeDiskBytes: Number.MAX_SAFE_INTEGER });
    for (const transport of SOCKETS) {
      const peer = await connect(hub, transport);
      expect(await peer.create({ name: 'a.bin', size: 10 })).toMatchObject({ type: 'error', code: 'ERR_STORAGE_FULL' });
    }
    const rest = await restCreate(hub, { name: 'a.bin', size: 10 });
    expect(rest.status).toBe(507);
    expect(await errorCodeOf(rest)).toBe('ERR_STORAGE_FULL');
    const form = await multipart(hub, { bytes: new Uint8Array(10), name: 'a.bin', type: 'application/octet-stream' });
    expect(form.status).toBe(507);
    expect(await stored(hub)).toEqual({ records: 0, data: [] });
  });
});

describe('maxConnectionsPerIp', () => {
  /**
   * An SSE or NDJSON stream once its headers are in. `close()` resets the connection: a plain
   * FIN is only a half-close to the hub (it lets clients half-close and still read the answer),
   * which finds the peer gone at its next heartbeat.
   */
  function stream(hub: Hub, accept = 'text/event-stream'): Promise<{ res: IncomingMessage; close(): void }> {
    return new Promise((resolve, reject) => {
      const req = get(`${hub.url}/api/events`, { headers: { accept }, agent: false }, (res) => resolve({ res, close: () => void res.socket.resetAndDestroy() }));
      onCleanup(() => void req.destroy());
      req.on('error', reject);
    });
  }

  /** The status and body the hub answers a WebSocket upgrade with when it refuses it. */
  function refusedUpgrade(url: string): Promise<{ status: number | undefined; body: string }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (data: Buffer) => (body += data.toString()));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      ws.on('open', () => reject(new Error(`${url} was not refused`)));
      ws.on('error', () => undefined);
    });
  }

  it('counts ws, Socket.IO (polling or WebSocket) and SSE/NDJSON together per address; past it each is refused with ERR_TOO_MANY_CONNECTIONS (429) before it opens; a closed one gives its slot back', async () => {
    const hub = await start({ maxConnectionsPerIp: 3 });
    const limit = connectionLimitOf(hub.hub);
    const wsUrl = `${hub.url.replace('http', 'ws')}/ws`;

    const ws = new WebSocket(wsUrl);
    onCleanup(() => ws.terminate());
    await once(ws, 'open');
    // Socket.IO's default: a long-polling handshake, then an upgrade to WebSocket of the same connection.
    const sio = ioClient(hub.url, { reconnection: false, forceNew: true, auth: { version: PROTOCOL_VERSION } });
    onCleanup(() => void sio.disconnect());
    await onceIo(sio, 'welcome');
    if (sio.io.engine.transport.name !== 'websocket') await onceIo(sio.io.engine, 'upgrade');
    const sse = await stream(hub);
    expect(sse.res.statusCode).toBe(200);
    expect(limit.count('127.0.0.1')).toBe(3);

    const refusals = [
      await refusedUpgrade(wsUrl),
      await refusedUpgrade(`${hub.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`),
    ];
    for (const refusal of refusals) {
      expect(refusal.status).toBe(429);
      expect(JSON.parse(refusal.body)).toMatchObject({ error: { code: 'ERR_TOO_MANY_CONNECTIONS' } });
    }
    const polling = await fetch(`${hub.url}/socket.io/?EIO=4&transport=polling`);
    expect(polling.status).toBe(429);
    expect(await errorCodeOf(polling)).toBe('ERR_TOO_MANY_CONNECTIONS');
    for (const accept of ['text/event-stream', 'application/x-ndjson']) {
      const res = await fetch(`${hub.url}/api/events`, { headers: { accept } });
      expect(res.status).toBe(429);
      expect(await errorCodeOf(res)).toBe('ERR_TOO_MANY_CONNECTIONS');
    }
    // The Socket.IO client gets its refusal as a connect_error.
    const refusedIo = ioClient(hub.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { version: PROTOCOL_VERSION } });
    onCleanup(() => void refusedIo.disconnect());
    await onceIo(refusedIo, 'connect_error');
    // Requests that are not streams are not counted.
    expect((await fetch(`${hub.url}/api/uploads`)).status).toBe(200);
    expect(limit.count('127.0.0.1')).toBe(3);

    // Each closed connection gives its slot back, whatever its kind.
    ws.close();
    await vi.waitFor(() => expect(limit.count('127.0.0.1')).toBe(2), { timeout: 10_000, interval: 5 });
    const again = new WebSocket(wsUrl);
    onCleanup(() => again.terminate());
    await once(again, 'open');
    sse.close();
    sio.disconnect();
    await vi.waitFor(() => expect(limit.count('127.0.0.1')).toBe(1), { timeout: 10_000, interval: 5 });
    const ndjson = await stream(hub, 'application/x-ndjson');
    expect(ndjson.res.statusCode).toBe(200);
    again.close();
    ndjson.close();
    // Nothing held once every connection is gone.
    await vi.waitFor(() => expect(limit.addresses).toBe(0), { timeout: 10_000, interval: 5 });
  });

  it('gives back the slots of upgrades their clients reset while the hub answers them', async () => {
    const hub = await start({ maxConnectionsPerIp: 3 });
    const port = Number(new URL(hub.url).port);
    const upgradeAndReset = async (path: string): Promise<void> => {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      socket.resetAndDestroy();
      await once(socket, 'close');
    };
    for (let round = 0; round < 30; round++) await Promise.all(['/ws', '/socket.io/?EIO=4&transport=websocket'].map(upgradeAndReset));
    await vi.waitFor(() => expect(connectionLimitOf(hub.hub).addresses).toBe(0), { timeout: 10_000, interval: 5 });
    const wsUrl = `${hub.url.replace('http', 'ws')}/ws`;
    for (let i = 0; i < 3; i++) {
      const ws = new WebSocket(wsUrl);
      onCleanup(() => ws.terminate());
      await once(ws, 'open');
    }
    expect((await refusedUpgrade(wsUrl)).status).toBe(429);
  });
});
