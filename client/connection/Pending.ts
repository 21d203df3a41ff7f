/**
 * Bookkeeping both client transports share: requests awaiting a reply by reqId (with a
 * timeout), and chunks awaiting their reply per upload in send order.
 */
import { joinWatching } from '../../shared/codec.js';
import { UploadHubError } from '../../shared/errors.js';
import type { ChunkReply, ServerMessage, WatchingMessage } from '../../shared/messages.js';
import type { ConnectionHandlers } from './ClientConnection.js';

interface Waiting {
  resolve(message: ServerMessage): void;
  reject(error: UploadHubError): void;
  timer: ReturnType<typeof setTimeout>;
  expire(): void;
  /** Pieces of a `watching` reply received so far (all but the last have `more`). */
  pieces?: WatchingMessage[];
}

export class PendingRequests {
  private nextId = 1;
  private readonly waiting = new Map<string, Waiting>();

  constructor(private readonly timeoutMs: number) {}

  /** Registers a request; returns its reqId and the promise of its reply. */
  add(): { reqId: string; reply: Promise<ServerMessage> } {
    const reqId = String(this.nextId++);
    const reply = new Promise<ServerMessage>((resolve, reject) => {
      const expire = () => {
        this.waiting.delete(reqId);
        reject(new UploadHubError('ERR_TIMEOUT', `No reply within ${this.timeoutMs} ms`));
      };
      this.waiting.set(reqId, { resolve, reject, timer: setTimeout(expire, this.timeoutMs), expire });
    });
    return { reqId, reply };
  }

  /** Settles the request a message answers; false when it answers none. */
  settle(message: ServerMessage): boolean {
    const reqId = 'reqId' in message ? message.reqId : undefined;
    const waiting = reqId === undefined ? undefined : this.waiting.get(reqId);
    if (!waiting || reqId === undefined) return false;
    if (message.type === 'watching' && message.more) {
      (waiting.pieces ??= []).push(message);
      // Browsers' timers are numbers, without Node's refresh(): a new timer for the next piece.
      clearTimeout(waiting.timer);
      waiting.timer = setTimeout(waiting.expire, this.timeoutMs);
      return true;
    }
    this.waiting.delete(reqId);
    clearTimeout(waiting.timer);
    if (message.type === 'error') {
      waiting.reject(new UploadHubError(message.code, message.message));
    } else waiting.resolve(message.type === 'watching' && waiting.pieces ? joinWatching([...waiting.pieces, message]) : message);
    return true;
  }

  rejectAll(error: UploadHubError): void {
    for (const waiting of this.waiting.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.waiting.clear();
  }
}

export class PendingChunks {
  private readonly queues = new Map<string, Array<{ resolve(reply: ChunkReply): void; reject(error: UploadHubError): void }>>();

  add(uploadId: string): Promise<ChunkReply> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(uploadId);
      if (!queue) this.queues.set(uploadId, (queue = []));
      queue.push({ resolve, reject });
    });
  }

  /** The hub answers an upload's chunks in order, so the reply belongs to the oldest one. */
  settle(reply: ChunkReply): boolean {
    if (reply.uploadId === undefined || reply.chunkOffset === undefined) return false;
    const queue = this.queues.get(reply.uploadId);
    const next = queue?.shift();
    if (queue && queue.length === 0) this.queues.delete(reply.uploadId);
    next?.resolve(reply);
    return next !== undefined;
  }

  rejectAll(error: UploadHubError): void {
    for (const queue of this.queues.values()) for (const waiting of queue) waiting.reject(error);
    this.queues.clear();
  }
}

export class PendingPings {
  private readonly waiting = new Map<number, { resolve(rtt: number): void; reject(error: UploadHubError): void }>();

  /** Registers a ping; `t` goes out in it and comes back in the pong. */
  add(): { t: number; rtt: Promise<number> } {
    const t = performance.now();
    const rtt = new Promise<number>((resolve, reject) => this.waiting.set(t, { resolve, reject }));
    return { t, rtt };
  }

  settle(t: number): void {
    const waiting = this.waiting.get(t);
    this.waiting.delete(t);
    waiting?.resolve(performance.now() - t);
  }

  rejectAll(error: UploadHubError): void {
    for (const waiting of this.waiting.values()) waiting.reject(error);
    this.waiting.clear();
  }
}

/**
 * Routes a hub message (after welcome) to whoever awaits it: a request, a chunk (transports
 * whose chunk replies arrive as messages), a ping, or the connection's handlers.
 */
export function routeMessage(
  message: ServerMessage,
  pending: { requests: PendingRequests; pings: PendingPings; chunks?: PendingChunks },
  handlers: Pick<ConnectionHandlers, 'event' | 'error'>,
): void {
  switch (message.type) {
    case 'ack':
      pending.chunks?.settle(message);
      return;
    case 'event':
      handlers.event(message.event);
      return;
    case 'pong':
      pending.pings.settle(message.t);
      return;
    case 'error':
      if (pending.requests.settle(message) || pending.chunks?.settle(message)) return;
      handlers.error(message);
      return;
    default:
      pending.requests.settle(message);
  }
}
