/**
 * One watcher over HTTP: a Server-Sent Events or NDJSON response fed by a hub subscription
 * through the one EventThrottle. While the response is not draining, progress is held and
 * coalesced by the throttle (state, stage and log events still pass); a response whose unsent
 * output passes `maxBufferedBytes` anyway is closed, and its client reconnects and replays.
 */
import type { ServerResponse } from 'node:http';
import { isTerminalState, type HubEvent, type UploadStatus } from '../../../shared/messages.js';
import { EventThrottle, type ThrottleOptions } from '../../../shared/throttle.js';
import type { Subscription } from '../../core/EventBus.js';

export type StreamFormat = 'sse' | 'ndjson';

export const SSE_CONTENT_TYPE = 'text/event-stream';
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

export interface EventStreamOptions {
  format: StreamFormat;
  throttle: ThrottleOptions;
  /** SSE `retry:` in ms. */
  retryMs: number;
  /** Unsent bytes above which the response is closed (the client reconnects and replays). */
  maxBufferedBytes: number;
  /** Ends the response after this upload's terminal event (the per-upload route). */
  endAfterTerminalOf?: string | undefined;
  /** Called once, when the response is over for whatever reason. */
  onClose: (stream: EventStream) => void;
}

interface EncodedEvent {
  json: string;
  /** The SSE frame with `id:` equal to the event's own id (the usual case), and the NDJSON line. */
  sse: Buffer;
  ndjson: Buffer;
}

/** Encoded once per event, however many streams carry it (fan-out to many watchers). */
const encoded = new WeakMap<HubEvent, EncodedEvent>();

function encode(event: HubEvent): EncodedEvent {
  let entry = encoded.get(event);
  if (entry === undefined) {
    const json = JSON.stringify(event);
    entry = { json, sse: Buffer.from(`event: ${event.type}\nid: ${event.id}\ndata: ${json}\n\n`), ndjson: Buffer.from(`${json}\n`) };
    encoded.set(event, entry);
  }
  return entry;
}

/**
 * Gathers each stream's writes of one turn of the event loop into one socket write: an event
 * fans out to every stream synchronously, and events published together (`uploaded` then
 * `completed`) then cost one syscall per stream instead of one each.
 */
class WriteBatch {
  private readonly corked = new Set<ServerResponse>();
  private scheduled: ReturnType<typeof setImmediate> | undefined;

  add(res: ServerResponse): void {
    if (this.corked.has(res)) return;
    res.cork();
    this.corked.add(res);
    this.scheduled ??= setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = undefined;
    const batch = [...this.corked];
    this.corked.clear();
    for (const res of batch) res.uncork();
  };
}

const writeBatch = new WriteBatch();

/** The largest snapshot write; a smaller cap makes it a quarter of the cap. */
const SNAPSHOT_PIECE_BYTES = 64 * 1024;
/** Snapshot pieces handed to the socket and not yet flushed: enough to keep it busy, no more. */
const SNAPSHOT_PIECES_IN_FLIGHT = 2;

/** Where to cut `text` so the first part has at most `maxBytes` UTF-8 bytes, never inside a surrogate pair. */
function cutIndex(text: string, maxBytes: number): number {
  let cut = Math.max(1, Math.floor(maxBytes / 3));
  const code = text.charCodeAt(cut - 1);
  if (cut > 1 && code >= 0xd800 && code <= 0xdbff) cut--;
  return cut;
}

/**
 * A snapshot's text in pieces of at most `maxBytes` (one status that alone is larger is cut),
 * made one piece at a time so a 10,000-upload snapshot is never one string in memory.
 */
function* snapshotPieces(head: string, uploads: readonly UploadStatus[], tail: string, maxBytes: number): Generator<string> {
  let piece = head;
  let pieceBytes = Buffer.byteLength(head);
  for (let i = 0; i < uploads.length; i++) {
    const json = (i === 0 ? '' : ',') + JSON.stringify(uploads[i]);
    const bytes = Buffer.byteLength(json);
    if (pieceBytes > 0 && pieceBytes + bytes > maxBytes) {
      yield piece;
      piece = '';
      pieceBytes = 0;
    }
    piece += json;
    pieceBytes += bytes;
    while (pieceBytes > maxBytes) {
      const cut = cutIndex(piece, maxBytes);
      yield piece.slice(0, cut);
      piece = piece.slice(cut);
      pieceBytes = Buffer.byteLength(piece);
    }
  }
  yield piece + tail;
}

export class EventStream {
  /**
   * The stream's position: the highest event id written. Every event with a smaller id has
   * been written or deliberately coalesced away, so it is what a reconnect resumes from. It is
   * the SSE `id:` of every frame (equal to the event's own id except when held progress of one
   * upload is written after a newer event of another).
   */
  position = 0;
  private readonly throttle: EventThrottle;
  private subscription: Subscription | undefined;
  private closed = false;
  /** The snapshot still going out, piece by piece; events wait in `held` until it is done. */
  private snapshotting: Generator<string> | undefined;
  private snapshotInFlight = 0;
  private held: HubEvent[] = [];
  private heldBytes = 0;
  private endAfterSnapshot = false;

  constructor(private readonly res: ServerResponse, private readonly options: EventStreamOptions) {
    this.throttle = new EventThrottle((event) => this.write(event), options.throttle, () => this.snapshotting !== undefined || this.res.writableNeedDrain);
    res.on('drain', this.onDrain);
    res.on('close', this.onClose);
    // A write racing the client's disconnect must end this stream, never the process.
    res.on('error', this.onError);
    res.writeHead(200, {
      'Content-Type': `${options.format === 'sse' ? SSE_CONTENT_TYPE : NDJSON_CONTENT_TYPE}; charset=utf-8`,
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
    if (options.format === 'sse') this.send(`retry: ${options.retryMs}\n\n`);
    else res.flushHeaders();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The subscription feeding this stream; closed with it. */
  attach(subscription: Subscription): void {
    if (this.closed) subscription.close();
    else this.subscription = subscription;
  }

  /**
   * The current state of what is watched; `id` is the hub's last event id at that moment. It is
   * one frame however many uploads it holds, but written in pieces, each once the previous ones
   * have left, so it never sits in the response's buffer whole (a watcher who sees 10,000
   * uploads would pass `maxBufferedBytes` at once). Events published meanwhile follow it.
   */
  snapshot(uploads: readonly UploadStatus[], id: number): void {
    if (this.closed) return;
    this.position = Math.max(this.position, id);
    const sse = this.options.format === 'sse';
    const head = `${sse ? `event: snapshot\nid: ${this.position}\ndata: ` : ''}{"type":"snapshot","id":${id},"uploads":[`;
    const maxBytes = Math.max(1, Math.min(SNAPSHOT_PIECE_BYTES, Math.floor(this.options.maxBufferedBytes / 4)));
    this.snapshotting = snapshotPieces(head, uploads, sse ? ']}\n\n' : ']}\n', maxBytes);
    this.pumpSnapshot();
  }

  /** An event from the subscription or the replay; goes through the throttle. */
  push(event: HubEvent): void {
    this.throttle.push(event);
  }

  /** Keeps proxies from closing an idle stream; skipped while the client is not reading anyway. */
  heartbeat(): void {
    if (this.closed || this.snapshotting || this.res.writableNeedDrain) return;
    this.send(this.options.format === 'sse' ? ': heartbeat\n\n' : `{"type":"heartbeat","at":${Date.now()}}\n`);
  }

  /** Ends the response normally, after the snapshot if it is still going out. */
  end(): void {
    if (this.closed) return;
    if (this.snapshotting) {
      this.endAfterSnapshot = true;
      return;
    }
    this.res.end();
    this.release();
  }

  private readonly pumpSnapshot = (): void => {
    const pieces = this.snapshotting;
    while (pieces && !this.closed && this.snapshotInFlight < SNAPSHOT_PIECES_IN_FLIGHT) {
      const next = pieces.next();
      if (next.done) {
        this.snapshotDone();
        return;
      }
      this.snapshotInFlight++;
      this.res.write(next.value, this.onSnapshotPieceFlushed);
    }
  };

  private readonly onSnapshotPieceFlushed = (error?: Error | null): void => {
    this.snapshotInFlight--;
    if (!error) this.pumpSnapshot();
  };

  private snapshotDone(): void {
    this.snapshotting = undefined;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const event of held) this.write(event);
    if (this.endAfterSnapshot) this.end();
    else this.throttle.flush();
  }

  private write(event: HubEvent): void {
    if (this.closed) return;
    const frames = encode(event);
    if (this.snapshotting) {
      this.held.push(event);
      this.heldBytes += frames.sse.byteLength;
      if (this.heldBytes + this.res.writableLength > this.options.maxBufferedBytes) this.overflow();
      return;
    }
    if (this.options.format === 'ndjson') {
      this.position = Math.max(this.position, event.id);
      this.send(frames.ndjson);
    } else if (event.id >= this.position) {
      this.position = event.id;
      this.send(frames.sse);
    } else {
      this.send(`event: ${event.type}\nid: ${this.position}\ndata: ${frames.json}\n\n`);
    }
    if (event.uploadId === this.options.endAfterTerminalOf && isTerminalState(event.type)) this.end();
  }

  private send(chunk: string | Buffer): void {
    if (this.closed) return;
    writeBatch.add(this.res);
    this.res.write(chunk);
    if (this.res.writableLength > this.options.maxBufferedBytes) this.overflow();
  }

  /** The client does not read what it asked for: it is cut off, and reconnects and replays. */
  private overflow(): void {
    this.res.destroy();
    this.release();
  }

  private readonly onDrain = (): void => {
    if (!this.snapshotting) this.throttle.flush();
  };

  private readonly onClose = (): void => {
    this.release();
  };

  private readonly onError = (): void => {
    this.res.destroy();
    this.release();
  };

  private release(): void {
    if (this.closed) return;
    this.closed = true;
    this.subscription?.close();
    this.subscription = undefined;
    this.throttle.close();
    this.snapshotting = undefined;
    this.held = [];
    this.res.off('drain', this.onDrain);
    this.res.off('close', this.onClose);
    this.options.onClose(this);
  }
}

/**
 * The live streams of one transport: counted for metrics and leak checks, and given one shared
 * heartbeat timer that runs only while a stream is open.
 */
export class StreamSet {
  private readonly streams = new Set<EventStream>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly heartbeatMs: number) {}

  get size(): number {
    return this.streams.size;
  }

  /** Whether the shared heartbeat timer is armed (zero streams: never). */
  get timers(): number {
    return this.heartbeat === undefined ? 0 : 1;
  }

  add(stream: EventStream): void {
    this.streams.add(stream);
    if (this.heartbeat === undefined && this.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => {
        for (const open of this.streams) open.heartbeat();
      }, this.heartbeatMs);
      this.heartbeat.unref();
    }
  }

  delete(stream: EventStream): void {
    if (!this.streams.delete(stream) || this.streams.size > 0) return;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Resolves once no stream is open. */
  idle(): Promise<void> {
    if (this.streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  endAll(): void {
    for (const stream of [...this.streams]) stream.end();
  }
}
