/**
 * The core upload suite, one table over every socket transport: each behaviour is proven on
 * raw WebSocket and on Socket.IO alike, through the public client and the wire protocol.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { UploadHubError } from '../../shared/errors.js';
import type { AckMessage, ChunkReply, ProgressEvent } from '../../shared/messages.js';
import type { UploadProgress } from '../../client/UploadClient.js';
import { randomFile, sha256File, sha256Of, startClient, startHub, tempDir, waitFor, storedPath } from '../helpers.js';
import { freePort, gatedStream, openConnection, spawnHub, TRANSPORT_NAMES } from '../protocolHelpers.js';

const MiB = 1024 * 1024;

const tokens: Record<string, { id: string }> = { alice: { id: 'alice' }, bob: { id: 'bob' } };
const authenticate = (token: string | undefined) => (token ? tokens[token] ?? null : null);

/** The TCP sockets `server` accepts from now on, for cutting connections. */
function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => sockets.add(socket));
  return sockets;
}

function asAck(reply: ChunkReply): AckMessage {
  if (reply.type !== 'ack') throw new Error(`expected an ack, got ${reply.code}: ${reply.message}`);
  return reply;
}

describe.each(TRANSPORT_NAMES)('uploads over %s', (transport) => {
  it('stores a 64 MiB random file byte for byte', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport });
    const file = await randomFile(64 * MiB);
    const result = await client.upload(file.path).done;
    expect(result.sha256).toBe(file.sha256);
    expect(await sha256File(storedPath(hub, result.id))).toBe(file.sha256);
    expect(await hub.hub.status({ id: 'anonymous' }, result.id)).toMatchObject({ state: 'completed', bytes: file.size, percent: 100 });
  });

  it.each([0, 1, 3 * MiB + 12_345])('stores a %i byte file (sizes that are not a multiple of the chunk)', async (size) => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport });
    const bytes = randomBytes(size);
    const result = await client.upload(bytes, { name: 'edge.bin', chunkSize: 1 * MiB }).done;
    expect(result.sha256).toBe(sha256Of(bytes));
    expect(await sha256File(storedPath(hub, result.id))).toBe(sha256Of(bytes));
  });

  it('resumes after the socket is destroyed mid-upload; the committed offset never goes back', async () => {
    const hub = await startHub();
    const sockets = trackSockets(hub.server);
    const client = startClient({ url: hub.url, transport, reconnectDelayMs: 20 });
    const bytes = randomBytes(24 * MiB);
    const gated = gatedStream(bytes, 10 * MiB);
    const upload = client.upload(gated.stream, { size: bytes.byteLength, name: 'gated.bin', chunkSize: 512 * 1024 });
    const seen: number[] = [];
    upload.on('progress', (p) => seen.push(p.bytes));
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 10 * MiB);
    const reconnected = waitFor<void>((fn) => client.on('reconnected', fn));
    // Release the rest and cut every TCP connection while chunks are in flight.
    gated.release();
    for (const socket of sockets) socket.destroy();
    await reconnected;
    const result = await upload.done;
    expect(result.sha256).toBe(sha256Of(bytes));
    expect(await sha256File(storedPath(hub, result.id))).toBe(sha256Of(bytes));
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
  });

  it('resumes after the hub is SIGKILLed and restarted on the same data directory', async () => {
    const dataDir = await tempDir();
    const port = await freePort();
    let child = await spawnHub(dataDir, port);
    const client = startClient({ url: child.url, transport, reconnectDelayMs: 50, maxReconnectDelayMs: 500, maxReconnectAttempts: 100 });
    const bytes = randomBytes(32 * MiB);
    const gated = gatedStream(bytes, 12 * MiB);
    const upload = client.upload(gated.stream, { size: bytes.byteLength, name: 'killed.bin', sha256: sha256Of(bytes) });
    const seen: number[] = [];
    upload.on('progress', (p) => seen.push(p.bytes));
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 12 * MiB);
    await child.kill('SIGKILL');
    child = await spawnHub(dataDir, port);
    gated.release();
    const result = await upload.done;
    expect(result.sha256).toBe(sha256Of(bytes));
    expect(await sha256File(`${dataDir}/uploads/${result.id}.data`)).toBe(sha256Of(bytes));
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
  });

  it('runs several uploads at once over one socket', async () => {
    const hub = await startHub();
    let connections = 0;
    hub.server.on('connection', () => connections++);
    const client = startClient({ url: hub.url, transport });
    const files = await Promise.all([1, 2, 3, 4, 5].map((n) => randomFile(n * MiB + n)));
    const results = await Promise.all(files.map((file) => client.upload(file.path).done));
    for (const [i, result] of results.entries()) {
      expect(await sha256File(storedPath(hub, result.id))).toBe((files[i] as { sha256: string }).sha256);
    }
    expect(connections).toBe(1);
  });

  it('gives up after maxReconnectAttempts and rejects with ERR_CONNECTION_LOST', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport, maxReconnectAttempts: 2, reconnectDelayMs: 10 });
    const bytes = randomBytes(4 * MiB);
    const gated = gatedStream(bytes, MiB);
    const upload = client.upload(gated.stream, { size: bytes.byteLength, name: 'lost.bin' });
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= MiB);
    const attempts: number[] = [];
    client.on('reconnecting', (attempt) => attempts.push(attempt));
    await hub.close();
    const error = await upload.done.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    expect(attempts).toEqual([1, 2]);
  });

  it('rejects pings pending when the connection drops, and pings on a dropped connection', async () => {
    const hub = await startHub();
    const sockets = trackSockets(hub.server);
    const raw = await openConnection(transport, hub.url);
    expect(await raw.connection.ping()).toBeGreaterThanOrEqual(0);
    const pending = raw.connection.ping();
    for (const socket of sockets) socket.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    await raw.closed;
    await expect(raw.connection.ping()).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
  });

  it('acknowledges duplicates without writing, takes the new part of an overlap, answers gaps with the committed offset', async () => {
    // The crafted chunks below are 1 MiB from the first: a first window that holds them.
    const hub = await startHub({ options: { initialWindow: 8 * MiB } });
    const raw = await openConnection(transport, hub.url);
    const bytes = randomBytes(4 * MiB);
    const attached = await raw.connection.request({ type: 'create', name: 'crafted.bin', size: bytes.byteLength });
    const id = attached.upload.id;
    const send = (from: number, to: number) => raw.connection.sendChunk(id, from, bytes.subarray(from, to));

    expect(asAck(await send(0, MiB))).toMatchObject({ status: 'accepted', offset: MiB, chunkOffset: 0 });
    expect(asAck(await send(0, MiB))).toMatchObject({ status: 'duplicate', offset: MiB });
    expect(asAck(await send(MiB / 2, MiB + MiB / 2))).toMatchObject({ status: 'accepted', offset: MiB + MiB / 2 });
    expect(asAck(await send(3 * MiB, 4 * MiB))).toMatchObject({ status: 'gap', offset: MiB + MiB / 2 });
    expect(asAck(await send(MiB + MiB / 2, 3 * MiB))).toMatchObject({ status: 'accepted', offset: 3 * MiB });
    expect(asAck(await send(3 * MiB, 4 * MiB))).toMatchObject({ status: 'accepted', offset: 4 * MiB });
    await raw.event((e) => e.type === 'completed' && e.uploadId === id);
    expect(await sha256File(storedPath(hub, id))).toBe(sha256Of(bytes));
  });

  it('refuses oversized chunks, chunks past the declared size and chunks past the window with codes', async () => {
    const hub = await startHub({ options: { maxChunkSize: 512 * 1024, chunkSize: 64 * 1024, uploadWindow: 256 * 1024, minWindow: 64 * 1024, initialWindow: 256 * 1024 } });
    const raw = await openConnection(transport, hub.url);
    const bytes = randomBytes(1 * MiB);
    const { upload, window } = await raw.connection.request({ type: 'create', name: 'limits.bin', size: bytes.byteLength });
    expect(window).toBe(256 * 1024);
    expect(await raw.connection.sendChunk(upload.id, 0, bytes.subarray(0, 512 * 1024 + 10))).toMatchObject({ type: 'error', code: 'ERR_CHUNK_TOO_LARGE', offset: 0 });
    expect(await raw.connection.sendChunk(upload.id, 0, bytes.subarray(0, 300 * 1024))).toMatchObject({ type: 'error', code: 'ERR_FLOW_CONTROL', offset: 0 });
    expect(asAck(await raw.connection.sendChunk(upload.id, 0, bytes.subarray(0, 256 * 1024)))).toMatchObject({ status: 'accepted', offset: 256 * 1024, window: 256 * 1024 });
    const tiny = await raw.connection.request({ type: 'create', name: 'tiny.bin', size: 10 });
    expect(await raw.connection.sendChunk(tiny.upload.id, 0, Buffer.alloc(11))).toMatchObject({ type: 'error', code: 'ERR_SIZE_MISMATCH' });
    // The connection stays usable after coded errors.
    expect(asAck(await raw.connection.sendChunk(tiny.upload.id, 0, Buffer.alloc(10)))).toMatchObject({ offset: 10 });
  });

  it('fails an upload whose bytes do not match the declared sha256', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport });
    const bytes = randomBytes(2 * MiB);
    const upload = client.upload(bytes, { name: 'wrong.bin', sha256: sha256Of(Buffer.from('something else')) });
    const error = await upload.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UploadHubError);
    expect((error as UploadHubError).code).toBe('ERR_CHECKSUM_MISMATCH');
    expect(existsSync(storedPath(hub, upload.id as string))).toBe(false);
  });

  it('cancel mid-upload removes the partial data and rejects done with ERR_CANCELLED', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport });
    const bytes = randomBytes(8 * MiB);
    const gated = gatedStream(bytes, 3 * MiB);
    const upload = client.upload(gated.stream, { size: bytes.byteLength, name: 'cancel.bin' });
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 3 * MiB);
    const id = upload.id as string;
    expect(existsSync(storedPath(hub, id))).toBe(true);
    const cancelled = upload.cancel();
    const error = await upload.done.catch((e: unknown) => e);
    await cancelled;
    gated.release();
    expect((error as UploadHubError).code).toBe('ERR_CANCELLED');
    expect(existsSync(storedPath(hub, id))).toBe(false);
    expect((await hub.hub.status({ id: 'anonymous' }, id)).state).toBe('cancelled');
  });

  it('lets only the owner resume or cancel an upload', async () => {
    const hub = await startHub({ authenticate });
    const alice = await openConnection(transport, hub.url, 'alice');
    const { upload } = await alice.connection.request({ type: 'create', name: 'mine.bin', size: 1000 });
    const bob = await openConnection(transport, hub.url, 'bob');
    // Another uploader's upload is missing to bob: its id is not confirmed.
    await expect(bob.connection.request({ type: 'resume', uploadId: upload.id })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    await expect(bob.connection.request({ type: 'cancel', uploadId: upload.id })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    await expect(bob.connection.request({ type: 'watch', uploadIds: [upload.id] })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    expect((await hub.hub.status({ id: 'alice' }, upload.id)).state).toBe('created');
    expect(asAck(await alice.connection.sendChunk(upload.id, 0, Buffer.alloc(1000)))).toMatchObject({ offset: 1000 });
    await alice.event((e) => e.type === 'completed');
    await expect(openConnection(transport, hub.url, 'mallory')).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED' });
  });

  it('enforces max file size, uploads per connection and the idle timeout with codes', async () => {
    const hub = await startHub({ options: { maxFileSize: 10 * MiB, maxUploadsPerConnection: 2, idleTimeoutMs: 200 } });
    const raw = await openConnection(transport, hub.url);
    await expect(raw.connection.request({ type: 'create', name: 'huge.bin', size: 10 * MiB + 1 })).rejects.toMatchObject({ code: 'ERR_FILE_TOO_LARGE' });
    const first = await raw.connection.request({ type: 'create', name: 'a.bin', size: 100 });
    await raw.connection.request({ type: 'create', name: 'b.bin', size: 100 });
    await expect(raw.connection.request({ type: 'create', name: 'c.bin', size: 100 })).rejects.toMatchObject({ code: 'ERR_TOO_MANY_UPLOADS' });
    // Nothing is sent: the idle timeout detaches the uploads, which frees their slots.
    await expect.poll(() => raw.errors.filter((e) => e.code === 'ERR_IDLE_TIMEOUT').length, { timeout: 5000 }).toBe(2);
    const reattached = await raw.connection.request({ type: 'resume', uploadId: first.upload.id });
    expect(reattached.offset).toBe(0);
    expect(asAck(await raw.connection.sendChunk(first.upload.id, 0, Buffer.alloc(100)))).toMatchObject({ offset: 100 });
  });

  it('throttles progress: a fast 64 MiB upload yields between 2 and seconds x 10 + 3 events, the last at 100%', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport });
    const file = await randomFile(64 * MiB);
    const events: ProgressEvent[] = [];
    const started = performance.now();
    const upload = client.upload(file.path);
    upload.on('event', (event) => {
      if (event.type === 'progress') events.push(event);
    });
    await upload.done;
    const seconds = (performance.now() - started) / 1000;
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events.length).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 3);
    expect(events.at(-1)?.percent).toBe(100);
    for (let i = 1; i < events.length; i++) {
      const step = (events[i] as ProgressEvent).percent - (events[i - 1] as ProgressEvent).percent;
      expect(step).toBeGreaterThanOrEqual(1);
    }
  });
});
