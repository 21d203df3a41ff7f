/**
 * Socket.IO specifics: watching through rooms (across transports), watcher cancel, the
 * handshake, the typed event maps and the wire format, bad input, and clean-up after many
 * connections. The upload behaviours shared with raw WebSocket are in uploads.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import type { Socket as ServerSocket } from 'socket.io';
import { UploadHubError } from '../../shared/errors.js';
import { PROTOCOL_VERSION, type ChunkReply, type HubEvent, type ProgressEvent } from '../../shared/messages.js';
import type { ClientToServerEvents, ConnectErrorData, ServerToClientEvents, SocketIoAuth } from '../../shared/socketio.js';
import type { Principal } from '../../server/core/auth.js';
import type { SocketIoTransport } from '../../server/transports/socketio.js';
import { SocketIoConnection } from '../../client/connection/SocketIoConnection.js';
import { UploadClient as BaseClient, portableResolver, type UploadProgress } from '../../client/UploadClient.js';
import type { Watcher } from '../../client/Watcher.js';
import { onCleanup, sha256File, sha256Of, startClient, startHub, waitFor, storedPath } from '../helpers.js';
import { gatedStream } from '../protocolHelpers.js';

const MiB = 1024 * 1024;

const principals: Record<string, Principal> = { alice: { id: 'alice' }, bob: { id: 'bob' }, ops: { id: 'ops', admin: true } };
const authenticate = (token: string | undefined) => (token ? principals[token] ?? null : null);

type TypedClientSocket = ClientSocket<ServerToClientEvents, ClientToServerEvents>;

function transportOf(hub: { transports: readonly { name: string }[] }): SocketIoTransport {
  const transport = hub.transports.find((t) => t.name === 'socket.io');
  if (!transport) throw new Error('no socket.io transport');
  return transport as SocketIoTransport;
}

/** A typed socket.io-client socket, closed after the test. Not connected until the caller listens. */
function rawSocket(url: string, auth: Partial<SocketIoAuth> | Record<string, unknown>): TypedClientSocket {
  const socket: TypedClientSocket = ioClient(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  onCleanup(() => void socket.disconnect());
  return socket;
}

/** The first argument of the next `event` on a socket.io-client socket. */
function nextOf<T>(socket: TypedClientSocket, event: string): Promise<T> {
  return new Promise((resolve) => (socket as unknown as { once(name: string, listener: (value: T) => void): void }).once(event, resolve));
}

/** Every event a watcher gets, and a way to wait for one. */
function record(watcher: Watcher) {
  const events: HubEvent[] = [];
  const waiters: Array<{ test: (event: HubEvent) => boolean; resolve: (event: HubEvent) => void }> = [];
  watcher.on('event', (event) => {
    events.push(event);
    for (const waiter of [...waiters]) {
      if (!waiter.test(event)) continue;
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(event);
    }
  });
  return {
    events,
    next: (test: (event: HubEvent) => boolean) =>
      events.find(test) ? Promise.resolve(events.find(test) as HubEvent) : new Promise<HubEvent>((resolve) => waiters.push({ test, resolve })),
  };
}

describe('watching over Socket.IO', () => {
  it('a watcher sees an upload sent over raw WebSocket from its first progress to completed; others see only what they may', async () => {
    const hub = await startHub({ authenticate });
    const watchers = ['ops', 'alice', 'bob'].map((token) => {
      const client = startClient({ url: hub.url, transport: 'socket.io', token });
      const watcher = client.watch();
      return { client, watcher, seen: record(watcher) };
    });
    await Promise.all(watchers.map(({ watcher }) => watcher.ready));
    const [admin, owner, stranger] = watchers.map(({ seen }) => seen) as [ReturnType<typeof record>, ReturnType<typeof record>, ReturnType<typeof record>];

    const uploader = startClient({ url: hub.url, transport: 'ws', token: 'alice' });
    const bytes = randomBytes(24 * MiB);
    const upload = uploader.upload(bytes, { name: 'watched.bin', chunkSize: 256 * 1024 });
    const uploaderProgress: ProgressEvent[] = [];
    upload.on('event', (event) => {
      if (event.type === 'progress') uploaderProgress.push(event);
    });
    const result = await upload.done;

    for (const watcher of [admin, owner]) {
      const completed = await watcher.next((e) => e.type === 'completed' && e.uploadId === result.id);
      const mine = watcher.events.filter((e) => e.uploadId === result.id);
      expect(mine.map((e) => e.type).filter((t) => t !== 'progress')).toEqual(['created', 'uploading', 'uploaded', 'completed']);
      const progress = mine.filter((e): e is ProgressEvent => e.type === 'progress');
      // The same throttle as the uploader's: the same first event, the same 100% one.
      expect(progress[0]?.id).toBe(uploaderProgress[0]?.id);
      expect(progress.at(-1)).toMatchObject({ percent: 100, bytes: bytes.byteLength });
      expect(progress.length).toBeGreaterThanOrEqual(2);
      expect(progress.length).toBeLessThan(24 * 4); // throttled: far fewer than one per chunk
      const ids = mine.map((e) => e.id);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      expect(completed).toBe(mine.at(-1));
    }
    // A ping answered after the hub emitted `completed` everywhere: anything for bob would be here by now.
    await watchers[2]?.client.ping();
    expect(stranger.events.filter((e) => e.uploadId === result.id)).toEqual([]);
    expect(await sha256File(storedPath(hub, result.id))).toBe(sha256Of(bytes));
  });

  it('watches a list of ids: snapshot first, then that upload only', async () => {
    const hub = await startHub();
    const uploader = startClient({ url: hub.url, transport: 'ws' });
    const bytes = randomBytes(8 * MiB);
    const gated = gatedStream(bytes, 2 * MiB);
    const upload = uploader.upload(gated.stream, { size: bytes.byteLength, name: 'listed.bin' });
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 2 * MiB);
    const other = uploader.upload(randomBytes(1000), { name: 'other.bin' });
    await other.done;

    const watcher = startClient({ url: hub.url, transport: 'socket.io' }).watch([upload.id as string]);
    const seen = record(watcher);
    const snapshot = await watcher.ready;
    expect(snapshot).toHaveLength(1);
    expect(snapshot[0]).toMatchObject({ id: upload.id, state: 'uploading' });
    gated.release();
    await upload.done;
    await seen.next((e) => e.type === 'completed');
    expect(new Set(seen.events.map((e) => e.uploadId))).toEqual(new Set([upload.id]));
    expect(seen.events.at(-1)?.type).toBe('completed');
  });

  it('a watcher with the right cancels an upload sent over raw WebSocket; uploader and every watcher see cancelled', async () => {
    const hub = await startHub({ authenticate });
    const uploader = startClient({ url: hub.url, transport: 'ws', token: 'alice' });
    const bytes = randomBytes(16 * MiB);
    const gated = gatedStream(bytes, 4 * MiB);
    const upload = uploader.upload(gated.stream, { size: bytes.byteLength, name: 'doomed.bin' });
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 4 * MiB);
    const id = upload.id as string;

    const opsWatcher = startClient({ url: hub.url, transport: 'socket.io', token: 'ops' }).watch();
    const ops = record(opsWatcher);
    const aliceWatcher = startClient({ url: hub.url, transport: 'socket.io', token: 'alice' }).watch([id]);
    const alice = record(aliceWatcher);
    const bobClient = startClient({ url: hub.url, transport: 'socket.io', token: 'bob' });
    const bobWatcher = bobClient.watch();
    const bob = record(bobWatcher);
    await Promise.all([opsWatcher.ready, aliceWatcher.ready, bobWatcher.ready]);

    // Bob may not: refused as missing (he may not see it), and his try does not make him a watcher of the upload.
    await expect(bobWatcher.cancel(id)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    await opsWatcher.cancel(id);

    const error = await upload.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UploadHubError);
    expect((error as UploadHubError).code).toBe('ERR_CANCELLED');
    await ops.next((e) => e.type === 'cancelled' && e.uploadId === id);
    await alice.next((e) => e.type === 'cancelled' && e.uploadId === id);
    gated.release();
    expect((await hub.hub.status(principals.ops as Principal, id)).state).toBe('cancelled');
    expect(existsSync(storedPath(hub, id))).toBe(false);
    await bobClient.ping();
    expect(bob.events).toEqual([]);
    // The upload's room empties once it ended.
    expect(transportOf(hub).io.of('/').adapter.rooms.has(`upload:${id}`)).toBe(false);
  });
  it('a congested watcher gets the state events but no progress until its connection flushes', async () => {
    const hub = await startHub();
    const io = transportOf(hub).io;
    const slowWatcher = startClient({ url: hub.url, transport: 'socket.io' }).watch();
    const slow = record(slowWatcher);
    await slowWatcher.ready;
    const [slowSocket] = [...io.of('/').sockets.values()];
    const fastWatcher = startClient({ url: hub.url, transport: 'socket.io' }).watch();
    const fast = record(fastWatcher);
    await fastWatcher.ready;
    if (!slowSocket) throw new Error('no server socket');

    // The connection stops draining (as when the peer does not read): packets pile up unsent
    // until a quarter of watcherMaxBufferedBytes (1 MiB) is queued.
    const transport = slowSocket.conn.transport as { writable: boolean; emit(event: 'ready'): void };
    transport.writable = false;
    const filler = { code: 'ERR_INTERNAL' as const, message: 'x'.repeat(4096) };
    for (let i = 0; i < 256 && !slowSocket.rooms.has('congested'); i++) slowSocket.emit('error', filler);
    expect(slowSocket.rooms.has('congested')).toBe(true);

    const upload = startClient({ url: hub.url, transport: 'ws' }).upload(randomBytes(8 * MiB), { name: 'busy.bin', chunkSize: 256 * 1024 });
    const { id } = await upload.done;
    await fast.next((e) => e.type === 'completed' && e.uploadId === id);
    // It drains: held packets go out and it leaves the room once its WebSocket has written them.
    const left = new Promise<void>((resolve) => {
      const adapter = io.of('/').adapter;
      const onLeave = (room: string, socketId: string) => {
        if (room !== 'congested' || socketId !== slowSocket.id) return;
        adapter.off('leave-room', onLeave);
        resolve();
      };
      adapter.on('leave-room', onLeave);
    });
    transport.writable = true;
    transport.emit('ready');
    await left;
    expect(slowSocket.rooms.has('congested')).toBe(false);
    await slow.next((e) => e.type === 'completed' && e.uploadId === id);
    expect(slow.events.filter((e) => e.uploadId === id).map((e) => e.type)).toEqual(['created', 'uploading', 'uploaded', 'completed']);
    expect(fast.events.filter((e) => e.uploadId === id && e.type === 'progress').length).toBeGreaterThanOrEqual(2);
  });
});

describe('Socket.IO handshake and wire format', () => {
  it('refuses a bad token with connect_error carrying the code; the client rejects with it', async () => {
    const hub = await startHub({ authenticate });
    const socket = rawSocket(hub.url, { version: PROTOCOL_VERSION, token: 'mallory' });
    const error = await nextOf<Error & { data?: ConnectErrorData }>(socket, 'connect_error');
    expect(error.data).toEqual({ code: 'ERR_UNAUTHORIZED' });

    const wrongVersion = rawSocket(hub.url, { version: PROTOCOL_VERSION + 1, token: 'alice' });
    const versionError = await nextOf<Error & { data?: ConnectErrorData }>(wrongVersion, 'connect_error');
    expect(versionError.data).toEqual({ code: 'ERR_UNSUPPORTED_VERSION' });

    const client = startClient({ url: hub.url, transport: 'socket.io', token: 'mallory' });
    const refused = await client.upload(randomBytes(10)).done.catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UploadHubError);
    expect((refused as UploadHubError).code).toBe('ERR_UNAUTHORIZED');
  });

  it('speaks the typed protocol: create, chunks as binary attachments acknowledged with the committed offset', async () => {
    // The crafted chunks below are 1 MiB from the first: a first window that holds them.
    const hub = await startHub({ authenticate, options: { initialWindow: 8 * MiB } });
    const received: Array<string | Buffer> = [];
    transportOf(hub).io.on('connection', (socket: ServerSocket) => socket.conn.on('packet', (packet: { data?: string | Buffer }) => {
      if (packet.data !== undefined) received.push(packet.data);
    }));
    const socket = rawSocket(hub.url, { version: PROTOCOL_VERSION, token: 'alice' });
    const welcome = await nextOf<unknown>(socket, 'welcome');
    expect(welcome).toMatchObject({ version: PROTOCOL_VERSION, principal: 'alice' });

    const bytes = randomBytes(2 * MiB);
    socket.emit('create', { reqId: 'r1', name: 'typed.bin', size: bytes.byteLength });
    const attached = await nextOf<Parameters<ServerToClientEvents['attached']>[0]>(socket, 'attached');
    expect(attached).toMatchObject({ reqId: 'r1', offset: 0 });
    const id = attached.upload.id;
    const send = (from: number, to: number) => socket.timeout(5000).emitWithAck('chunk', id, from, bytes.subarray(from, to));
    const first: ChunkReply = await send(0, MiB);
    expect(first).toEqual({ type: 'ack', uploadId: id, chunkOffset: 0, status: 'accepted', offset: MiB, window: attached.window });
    expect(await send(0, MiB)).toMatchObject({ type: 'ack', status: 'duplicate', offset: MiB });
    expect(await send(MiB + 10, 2 * MiB)).toMatchObject({ type: 'ack', status: 'gap', offset: MiB });
    const completed = new Promise<void>((resolve) => socket.on('event', ({ event }) => event.type === 'completed' && resolve()));
    expect(await send(MiB, 2 * MiB)).toMatchObject({ type: 'ack', status: 'accepted', offset: 2 * MiB });
    await completed;
    expect((await hub.hub.status(principals.alice as Principal, id)).bytes).toBe(2 * MiB);

    // On the wire: the bytes arrived as binary frames of the chunk's length, no text frame carried them.
    expect(received.filter((data) => Buffer.isBuffer(data) && data.byteLength === MiB)).toHaveLength(3);
    expect(Math.max(...received.filter((data) => typeof data === 'string').map((text) => text.length))).toBeLessThan(1024);

    if (Date.now() < 0) {
      // Compile-time proof of the typed maps; never runs.
      // @ts-expect-error a misspelt event does not compile
      socket.emit('craete', { reqId: 'r', name: 'a', size: 1 });
      // @ts-expect-error a payload missing a required field does not compile
      socket.emit('create', { reqId: 'r', name: 'a' });
      // @ts-expect-error hello travels in the handshake, not as an event
      socket.emit('hello', { version: 1 });
      // @ts-expect-error the server sends no `ack` event: chunk replies are acknowledgements
      socket.on('ack', () => undefined);
      transportOf(hub).io.on('connection', (server) => {
        // @ts-expect-error a server event must carry its payload's fields
        server.emit('attached', { reqId: 'r' });
      });
    }
  });

  it('answers bad events with codes, and a malformed chunk with ERR_BAD_FRAME, closing and a disconnect', async () => {
    const hub = await startHub({ options: { maxMessageBytes: 4096 } });
    const socket = rawSocket(hub.url, { version: PROTOCOL_VERSION });
    await nextOf(socket, 'welcome');
    const errors: Array<Parameters<ServerToClientEvents['error']>[0]> = [];
    socket.on('error', (payload) => errors.push(payload));
    const nextError = () => new Promise<(typeof errors)[number]>((resolve) => socket.once('error', resolve));
    const untyped = socket as unknown as { emit(event: string, ...args: unknown[]): void };

    untyped.emit('teleport', {});
    expect(await nextError()).toMatchObject({ code: 'ERR_UNKNOWN_MESSAGE' });
    untyped.emit('create', 'not an object');
    expect(await nextError()).toMatchObject({ code: 'ERR_BAD_MESSAGE' });
    untyped.emit('create', { reqId: 'r1', name: '', size: -1 });
    expect(await nextError()).toMatchObject({ code: 'ERR_BAD_MESSAGE' });
    untyped.emit('ping', { t: 1, padding: 'x'.repeat(5000) });
    expect(await nextError()).toMatchObject({ code: 'ERR_MESSAGE_TOO_LARGE' });
    // `error` is an ordinary (unknown) event name here, not Node's error event.
    untyped.emit('error', { boom: true });
    expect(await nextError()).toMatchObject({ code: 'ERR_UNKNOWN_MESSAGE' });
    expect(await socket.timeout(5000).emitWithAck('chunk', 'AAAAAAAAAAAAAAAAAAAAAA', 0, Buffer.alloc(10))).toMatchObject({ type: 'error', code: 'ERR_NOT_FOUND' });

    const closing = new Promise((resolve) => socket.once('closing', resolve));
    const disconnected = nextOf<string>(socket, 'disconnect');
    untyped.emit('chunk', 'AAAAAAAAAAAAAAAAAAAAAA', 0, 'base64 text is not a chunk', () => undefined);
    expect(await nextError()).toMatchObject({ code: 'ERR_BAD_FRAME' });
    expect(await closing).toMatchObject({ code: 'ERR_BAD_FRAME' });
    expect(await disconnected).toBe('io server disconnect');
  });

  it('uploads over the polling transport when a client asks for it', async () => {
    const hub = await startHub();
    const client = new BaseClient({ url: hub.url, transport: 'socket.io' }, {
      connections: { 'socket.io': (options) => new SocketIoConnection(options, { transports: ['polling'] }) },
      resolveSource: portableResolver,
    });
    onCleanup(() => client.close());
    const bytes = randomBytes(3 * MiB + 7);
    const result = await client.upload(bytes, { name: 'polled.bin' }).done;
    expect(result.sha256).toBe(sha256Of(bytes));
  });
});

describe('Socket.IO clean-up', () => {
  it('leaves no session, room, subscription, timer or listener after 1,000 connect/disconnect cycles', async () => {
    const hub = await startHub({ authenticate });
    const transport = transportOf(hub);
    const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const quietTimers = timers();
    const setup = startClient({ url: hub.url, transport: 'socket.io', token: 'alice' });
    const pending = setup.upload(gatedStream(randomBytes(2 * MiB), MiB).stream, { size: 2 * MiB, name: 'kept.bin' });
    await waitFor<UploadProgress>((fn) => pending.on('progress', fn), (p) => p.bytes >= MiB);
    setup.close();
    const id = pending.id as string;
    const io = transport.io;
    await new Promise<void>((resolve) => (io.of('/').sockets.size === 0 ? resolve() : io.of('/').sockets.forEach((s) => s.once('disconnect', () => resolve()))));

    const before = {
      subscribers: hub.hub.events.subscriberCount,
      upgrade: hub.server.listenerCount('upgrade'),
      request: hub.server.listenerCount('request'),
    };

    const CYCLES = 1000;
    const BATCH = 25;
    // Gone at both levels: the namespace socket (rooms, session) and the Engine.IO connection under it.
    const countTo = (count: number, subscribe: (done: () => void) => void) => new Promise<void>((resolve) => {
      let seen = 0;
      subscribe(() => {
        if (++seen === count) resolve();
      });
    });
    const allGone = Promise.all([
      countTo(CYCLES, (done) => io.on('connection', (socket) => socket.once('disconnect', done))),
      countTo(CYCLES, (done) => io.engine.on('connection', (conn: { once(event: 'close', fn: () => void): void }) => conn.once('close', done))),
    ]);
    const cycle = async (n: number) => {
      const connection = new SocketIoConnection({ url: hub.url, token: 'alice', requestTimeoutMs: 10_000, handlers: { event() {}, error() {}, closed() {} } });
      await connection.open();
      // Each cycle joins rooms: all of alice's uploads, one upload by id; one per batch holds the upload (idle timer).
      await connection.request({ type: 'watch' });
      await connection.request({ type: 'watch', uploadIds: [id] });
      if (n % BATCH === 0) await connection.request({ type: 'resume', uploadId: id });
      connection.close();
    };
    for (let n = 0; n < CYCLES; n += BATCH) {
      await Promise.all(Array.from({ length: BATCH }, (_, i) => cycle(n + i)));
    }
    await allGone;

    expect(transport.connections()).toBe(0);
    expect(transport.resources()).toEqual({ sessions: 0, rooms: 0, subscriptions: 1, trackedUploads: expect.any(Number), throttleTimers: 0, sessionTimers: 0 });
    expect(io.engine.clientsCount).toBe(0);
    expect(hub.hub.events.subscriberCount).toBe(before.subscribers);
    expect(hub.server.listenerCount('upgrade')).toBe(before.upgrade);
    expect(hub.server.listenerCount('request')).toBe(before.request);
    // Timers of earlier tests may still end meanwhile; a leaked idle or throttle timer would add one.
    expect(timers()).toBeLessThanOrEqual(quietTimers);
  });
});
