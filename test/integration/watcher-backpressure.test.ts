/**
 * Socket watchers never grow the hub's memory without bound: a raw WebSocket or Socket.IO
 * watcher that stops reading gets coalesced progress, then, once its unsent output passes
 * watcherMaxBufferedBytes, ERR_SLOW_CONSUMER (close code 4503 on ws; `error`, `closing` and a
 * disconnect on Socket.IO). A snapshot of any size comes in pieces. The client's Watcher resumes
 * from its last event id after a disconnect, so an upload that ended meanwhile is not missed.
 */
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { WebSocket, type RawData } from 'ws';
import type { Socket as ServerSocket } from 'socket.io';
import { PROTOCOL_VERSION, type HubEvent, type ServerMessage, type UploadStatus } from '../../shared/messages.js';
import type { Principal } from '../../server/core/auth.js';
import type { SocketIoTransport } from '../../server/transports/socketio.js';
import type { HubServer } from '../../server/app.js';
import type { Watcher } from '../../client/Watcher.js';
import { onCleanup, randomFile, startClient, startHub, waitFor } from '../helpers.js';
import { TRANSPORT_NAMES } from '../protocolHelpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const ANYONE: Principal = { id: 'anonymous' };

/** A raw `ws` client that collects what it receives, text frames parsed by `parse`. */
class RawSocket<M> {
  readonly ws: WebSocket;
  readonly received: M[] = [];
  readonly sizes: number[] = [];
  private readonly waiters: Array<{ test: (message: M) => boolean; resolve: (message: M) => void }> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, private readonly parse: (text: string) => M | undefined) {
    this.ws = new WebSocket(url);
    onCleanup(() => this.ws.terminate());
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data: RawData) => {
      const bytes = data as Buffer;
      const message = this.parse(bytes.toString('utf8'));
      if (message === undefined) return;
      this.received.push(message);
      this.sizes.push(bytes.byteLength);
      for (const waiter of [...this.waiters]) {
        if (!waiter.test(message)) continue;
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      }
    });
  }

  async open(): Promise<void> {
    await once(this.ws, 'open');
  }

  /** The first message passing `test`, already received or yet to come. */
  next(test: (message: M) => boolean): Promise<M> {
    const seen = this.received.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }
}

const wsUrl = (hub: HubServer, path: string): string => `${hub.url.replace(/^http/, 'ws')}${path}`;

/** The server side of the next upgrade whose URL contains `marker`. */
function serverSideOf(hub: HubServer, marker: string): Promise<Duplex> {
  return new Promise((resolve) => {
    const onUpgrade = (request: IncomingMessage, socket: Duplex) => {
      if (!request.url?.includes(marker)) return;
      hub.server.off('upgrade', onUpgrade);
      resolve(socket);
    };
    hub.server.prependListener('upgrade', onUpgrade);
  });
}

/** A raw WebSocket client past hello, watching every upload. */
async function rawWsWatcher(hub: HubServer, marker: string) {
  const socket = new RawSocket<ServerMessage>(wsUrl(hub, `/ws?${marker}`), (text) => JSON.parse(text) as ServerMessage);
  await socket.open();
  socket.ws.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION }));
  await socket.next((m) => m.type === 'welcome');
  socket.ws.send(JSON.stringify({ type: 'watch', reqId: 'all' }));
  await socket.next((m) => m.type === 'watching' && m.more !== true);
  return socket;
}

/** A Socket.IO message seen as [event, payload], spoken over a raw `ws` (Engine.IO v4 text packets). */
type IoPacket = [string, Record<string, unknown>];

function parseIoPacket(text: string): IoPacket | undefined {
  if (text === '2') return ['engine.io ping', {}];
  if (!text.startsWith('42')) return undefined;
  return JSON.parse(text.slice(2)) as IoPacket;
}

async function rawIoWatcher(hub: HubServer, marker: string) {
  const socket = new RawSocket<IoPacket>(wsUrl(hub, `/socket.io/?EIO=4&transport=websocket&${marker}`), parseIoPacket);
  let connected!: () => void;
  const namespaceOpen = new Promise<void>((resolve) => (connected = resolve));
  socket.ws.on('message', (data: RawData) => {
    const text = (data as Buffer).toString('utf8');
    if (text.startsWith('0{')) socket.ws.send(`40${JSON.stringify({ version: PROTOCOL_VERSION })}`);
    else if (text.startsWith('40{')) connected();
  });
  await socket.open();
  await namespaceOpen;
  await socket.next(([event]) => event === 'welcome');
  socket.ws.send(`42${JSON.stringify(['watch', { reqId: 'all' }])}`);
  await socket.next(([event, payload]) => event === 'watching' && payload.more !== true);
  return socket;
}

/**
 * Publishes events a paused watcher must receive whatever its congestion (log lines of new
 * uploads: state and log events are never throttled away) until `enough()` says so; bounded.
 */
async function flood(hub: HubServer, enough: () => boolean, limit = 96 * MiB): Promise<number> {
  const line = 'x'.repeat(4000);
  let bytes = 0;
  for (let n = 0; !enough(); n++) {
    if (bytes > limit) throw new Error(`still not enough after ${bytes} bytes of events`);
    const { id } = await hub.hub.create(ANYONE, { name: `filler-${n}.bin`, size: 1 });
    // Under logLinesPerSecond, so every line is published.
    for (let i = 0; i < 10 && !enough(); i++) {
      hub.hub.log(id, 'info', line);
      bytes += line.length;
    }
  }
  return bytes;
}

/** The flood below creates thousands of uploads of one principal: past the default abuse limits. */
const UNLIMITED = { maxOpenUploadsPerPrincipal: 0, createsPerMinutePerPrincipal: 0 } as const;

describe('a socket watcher that stops reading', () => {
  it('raw WebSocket: progress is coalesced, the hub holds at most watcherMaxBufferedBytes for it, then closes it with 4503 ERR_SLOW_CONSUMER', async () => {
    const cap = 1 * MiB;
    // Every commit publishes progress; no pings, so only the cap can end the connection.
    const hub = await startHub({ options: { watcherMaxBufferedBytes: cap, heartbeatMs: 0, progressIntervalMs: 0, progressMinStepPercent: 0, ...UNLIMITED } });
    const serverSide = serverSideOf(hub, 'paused-watcher');
    const watcher = await rawWsWatcher(hub, 'paused-watcher');
    const server = await serverSide;
    const file = await randomFile(16 * MiB);
    const uploader = startClient({ url: hub.url, transport: 'ws' });
    await uploader.ping();
    watcher.ws.pause();

    let published = 0;
    let maxBuffered = 0;
    const untap = hub.hub.events.tap((event: HubEvent) => {
      if (event.type === 'progress') published++;
      maxBuffered = Math.max(maxBuffered, server.writableLength);
    });
    onCleanup(untap);
    // Past the kernel's buffers, until the hub holds half the cap for the watcher: congested.
    await flood(hub, () => server.writableLength > cap / 2);
    // An upload publishes progress at every chunk meanwhile; the congested watcher gets little of it.
    const { id } = await uploader.upload(file.path, { chunkSize: 64 * KiB }).done;
    // The watcher's session holds one of these; it ends when the hub lets the watcher go.
    const subscribers = hub.hub.events.subscriberCount;
    // Then until the hub lets the watcher go, or far past the cap (the defect).
    await flood(hub, () => hub.hub.events.subscriberCount < subscribers || server.writableLength > 8 * cap);
    untap();

    expect(maxBuffered).toBeLessThan(cap + 64 * KiB);
    expect(hub.hub.events.subscriberCount).toBeLessThan(subscribers);

    watcher.ws.resume();
    const closed = await watcher.closed;
    expect(closed).toEqual({ code: 4503, reason: 'ERR_SLOW_CONSUMER' });
    expect(watcher.received.at(-1)).toMatchObject({ type: 'error', code: 'ERR_SLOW_CONSUMER' });
    const events = watcher.received.flatMap((m) => (m.type === 'event' && m.event.uploadId === id ? [m.event] : []));
    expect(events.map((e) => e.type)).toContain('completed');
    expect(events.filter((e) => e.type === 'progress').length).toBeLessThan(published / 4);
  });

  it('Socket.IO: the same bound; the socket gets `error` ERR_SLOW_CONSUMER, then `closing`, then a disconnect', async () => {
    const cap = 1 * MiB;
    const hub = await startHub({ options: { watcherMaxBufferedBytes: cap, heartbeatMs: 0, progressIntervalMs: 0, progressMinStepPercent: 0, ...UNLIMITED } });
    const io = (hub.transports.find((t) => t.name === 'socket.io') as SocketIoTransport).io;
    const serverSide = serverSideOf(hub, 'paused-watcher');
    const connected = new Promise<ServerSocket>((resolve) => io.once('connection', resolve));
    const watcher = await rawIoWatcher(hub, 'paused-watcher');
    const [net, socket] = await Promise.all([serverSide, connected]);
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', resolve));
    let gone = false;
    void disconnected.then(() => (gone = true));
    watcher.ws.pause();

    // What the hub holds for this connection: packets Engine.IO has not handed on, and the socket's buffer.
    const engine = socket.conn as unknown as { writeBuffer: Array<{ data?: string | Buffer }> };
    const held = () => engine.writeBuffer.reduce((sum, packet) => sum + (packet.data === undefined ? 0 : Buffer.byteLength(packet.data)), 0) + net.writableLength;
    let maxHeld = 0;
    const untap = hub.hub.events.tap(() => (maxHeld = Math.max(maxHeld, held())));
    onCleanup(untap);
    let published = 0;
    const countProgress = hub.hub.events.tap((event: HubEvent) => void (event.type === 'progress' && published++));
    onCleanup(countProgress);
    const file = await randomFile(16 * MiB);
    const uploader = startClient({ url: hub.url, transport: 'socket.io' });
    await uploader.ping();
    await flood(hub, () => held() > cap / 2);
    const { id } = await uploader.upload(file.path, { chunkSize: 64 * KiB }).done;
    await flood(hub, () => gone || held() > 8 * cap);
    untap();
    countProgress();

    expect(await disconnected).toBe('server namespace disconnect');
    expect(maxHeld).toBeGreaterThan(cap / 4);
    expect(maxHeld).toBeLessThan(cap + 64 * KiB);

    watcher.ws.resume();
    const closed = await watcher.closed;
    expect(closed.code).not.toBe(1006);
    const last = watcher.received.slice(-2);
    expect(last).toEqual([
      ['error', expect.objectContaining({ code: 'ERR_SLOW_CONSUMER' })],
      ['closing', expect.objectContaining({ code: 'ERR_SLOW_CONSUMER' })],
    ]);
    const events = watcher.received.flatMap(([name, payload]) => {
      const event = (payload as { event?: HubEvent }).event;
      return name === 'event' && event?.uploadId === id ? [event] : [];
    });
    expect(events.map((e) => e.type)).toContain('completed');
    expect(events.filter((e) => e.type === 'progress').length).toBeLessThan(published / 4);
  });
});

describe('a large snapshot', () => {
  it('of 10,000 uploads comes as `watching` pieces of at most maxMessageBytes; the connection stays open; the client Watcher gets it whole over either transport', async () => {
    const uploads = 10_000;
    const maxMessageBytes = 64 * KiB;
    // 10,000 unfinished uploads of one principal: past the default abuse limits.
    const hub = await startHub({ options: { maxMessageBytes, heartbeatMs: 0, maxOpenUploadsPerPrincipal: 0, createsPerMinutePerPrincipal: 0 } });
    for (let i = 0; i < uploads; i += 250) {
      await Promise.all(Array.from({ length: 250 }, (_, j) => hub.hub.create(ANYONE, { name: `many-${i + j}.bin`, size: 100, metadata: { batch: String(i) } })));
    }

    const watcher = new RawSocket<ServerMessage>(wsUrl(hub, '/ws'), (text) => JSON.parse(text) as ServerMessage);
    await watcher.open();
    watcher.ws.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION }));
    await watcher.next((m) => m.type === 'welcome');
    watcher.ws.send(JSON.stringify({ type: 'watch', reqId: 'all' }));
    await watcher.next((m) => m.type === 'watching' && m.more !== true);
    const pieces = watcher.received.flatMap((m, i) => (m.type === 'watching' ? [{ message: m, bytes: watcher.sizes[i] as number }] : []));
    expect(pieces.length).toBeGreaterThan(1);
    expect(Math.max(...pieces.map((p) => p.bytes))).toBeLessThanOrEqual(maxMessageBytes);
    expect(pieces.slice(0, -1).every((p) => p.message.type === 'watching' && p.message.more === true && p.message.reqId === 'all')).toBe(true);
    const ids = new Set(pieces.flatMap((p) => (p.message.type === 'watching' ? p.message.uploads.map((u) => u.id) : [])));
    expect(ids.size).toBe(uploads);
    watcher.ws.send(JSON.stringify({ type: 'ping', t: 7 }));
    expect(await watcher.next((m) => m.type === 'pong')).toEqual({ type: 'pong', t: 7 });

    for (const transport of TRANSPORT_NAMES) {
      const client = startClient({ url: hub.url, transport });
      let disconnected = false;
      client.on('disconnected', () => (disconnected = true));
      const snapshot = await client.watch().ready;
      expect(new Set(snapshot.map((u: UploadStatus) => u.id)).size).toBe(uploads);
      await client.ping();
      expect(disconnected).toBe(false);
    }
  });
});

/** Every event a Watcher emits, and a way to wait for one. */
function record(watcher: Watcher) {
  const events: HubEvent[] = [];
  const snapshots: UploadStatus[][] = [];
  watcher.on('event', (event) => events.push(event));
  watcher.on('snapshot', (uploads) => snapshots.push(uploads));
  return { events, snapshots, nextSnapshot: () => waitFor<UploadStatus[]>((listener) => watcher.on('snapshot', listener)) };
}

describe.each(TRANSPORT_NAMES)('the client Watcher over %s after a disconnect', (transport) => {
  /** A hub whose authenticate hook waits on a gate, so a test decides when a reconnect gets through. */
  async function gatedHub(options: { eventHistorySize?: number } = {}) {
    let gate: Promise<void> = Promise.resolve();
    const hub = await startHub({
      options: { heartbeatMs: 0, ...options },
      authenticate: async () => {
        await gate;
        return ANYONE;
      },
    });
    const sockets: Duplex[] = [];
    hub.server.prependListener('upgrade', (_request: IncomingMessage, socket: Duplex) => sockets.push(socket));
    return {
      hub,
      /** Drops every socket to the hub and holds reconnects until the returned function is called. */
      dropAndHold(): () => void {
        let open!: () => void;
        gate = new Promise((resolve) => (open = resolve));
        for (const socket of sockets.splice(0)) socket.destroy();
        return open;
      },
    };
  }

  it('resumes from its last event id: an upload that ended meanwhile delivers its events, each once, before the new snapshot', async () => {
    const { hub, dropAndHold } = await gatedHub();
    const client = startClient({ url: hub.url, transport });
    const watcher = client.watch();
    const seen = record(watcher);
    await watcher.ready;
    const { id } = await hub.hub.create(ANYONE, { name: 'ends-while-away.bin', size: 10 });
    const other = await hub.hub.create(ANYONE, { name: 'still-active.bin', size: 10 });
    hub.hub.log(id, 'info', 'before the drop');
    await waitFor<HubEvent>((listener) => watcher.on('event', listener), (e) => e.type === 'log' && e.uploadId === id);

    const dropped = waitFor((listener) => client.on('disconnected', listener));
    const release = dropAndHold();
    await dropped;
    hub.hub.log(id, 'info', 'while away');
    await hub.hub.cancel(ANYONE, id);
    const resnapshot = seen.nextSnapshot();
    release();
    const snapshot = await resnapshot;

    expect(seen.events.filter((e) => e.uploadId === id).map((e) => e.type)).toEqual(['created', 'log', 'log', 'cancelled']);
    expect(snapshot.map((u) => u.id)).toEqual([other.id]);
    const ids = seen.events.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    // Events after the reconnect keep coming.
    hub.hub.log(other.id, 'info', 'after');
    await waitFor<HubEvent>((listener) => watcher.on('event', listener), (e) => e.type === 'log' && e.uploadId === other.id);
  });

  it('starts over from the snapshot when its last id is older than the history', async () => {
    const { hub, dropAndHold } = await gatedHub({ eventHistorySize: 4 });
    const client = startClient({ url: hub.url, transport });
    const watcher = client.watch();
    const seen = record(watcher);
    await watcher.ready;
    const { id } = await hub.hub.create(ANYONE, { name: 'a.bin', size: 10 });
    await waitFor<HubEvent>((listener) => watcher.on('event', listener), (e) => e.type === 'created' && e.uploadId === id);

    const dropped = waitFor((listener) => client.on('disconnected', listener));
    const release = dropAndHold();
    await dropped;
    for (let i = 0; i < 8; i++) hub.hub.log(id, 'info', `line ${i}`);
    const resnapshot = seen.nextSnapshot();
    release();
    const snapshot = await resnapshot;

    expect(snapshot.map((u) => u.id)).toEqual([id]);
    expect(seen.events.filter((e) => e.type === 'log')).toEqual([]);
  });
});
