/**
 * maxConnectionsPerIp: the WebSocket connections, Socket.IO connections and SSE/NDJSON streams
 * of one client address, counted together in one place per hub. Each transport takes a slot
 * with a one-line hook where a connection begins, and the slot is given back when that
 * connection's socket or response closes:
 *
 * - upgrades (raw WebSocket, Socket.IO over WebSocket): app.ts, before the WebSocket exists,
 *   refused with an HTTP 429 answer to the upgrade;
 * - Socket.IO long-polling handshakes: an Engine.IO middleware (socketio.ts), 429;
 * - SSE/NDJSON streams: events.ts, 429 before the stream opens.
 *
 * The address is the TCP peer's. Behind a reverse proxy every client has the proxy's address:
 * raise the limit there, or set it to 0 (no limit) and let the proxy limit.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { UploadHubError } from '../../shared/errors.js';
import type { UploadHub } from '../core/UploadHub.js';

/** Something whose end gives a slot back: a socket, a response, an Engine.IO connection. */
interface Closable {
  once(event: 'close', listener: () => void): unknown;
}

export class ConnectionLimit {
  private readonly open = new Map<string, number>();

  /** @param max slots per address; 0: no limit (nothing is counted). */
  constructor(readonly max: number) {}

  /** Takes a slot of `address`: the function that gives it back (once, however often called), or undefined when all are taken. */
  take(address: string): (() => void) | undefined {
    if (this.max === 0) return () => undefined;
    const count = this.open.get(address) ?? 0;
    if (count >= this.max) return undefined;
    this.open.set(address, count + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.open.get(address) ?? 1) - 1;
      if (left > 0) this.open.set(address, left);
      else this.open.delete(address);
    };
  }

  /** Holds a slot of `address` until `holder` closes; the refusal when there is none. */
  hold(address: string, holder: Closable): UploadHubError | undefined {
    const release = this.take(address);
    if (release === undefined) return this.refusal();
    holder.once('close', release);
    return undefined;
  }

  /** Slots `address` holds now. */
  count(address: string): number {
    return this.open.get(address) ?? 0;
  }

  /** Addresses holding slots: none once every connection is gone (leak checks). */
  get addresses(): number {
    return this.open.size;
  }

  refusal(): UploadHubError {
    return new UploadHubError('ERR_TOO_MANY_CONNECTIONS', `This address holds maxConnectionsPerIp (${this.max}) connections and streams already; close one first`);
  }
}

const limits = new WeakMap<UploadHub, ConnectionLimit>();

/** The hub's one counter, shared by every transport on it. */
export function connectionLimitOf(hub: UploadHub): ConnectionLimit {
  let limit = limits.get(hub);
  if (limit === undefined) limits.set(hub, (limit = new ConnectionLimit(hub.options.maxConnectionsPerIp)));
  return limit;
}

/** The client's address; an IPv4 client of a dual-stack socket (`::ffff:1.2.3.4`) counts as `1.2.3.4`. */
export function clientAddress(request: IncomingMessage): string {
  const address = request.socket.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** An Engine.IO request that continues a connection (`sid`): counted at its handshake already. */
function continuesEngineIo(request: IncomingMessage): boolean {
  return new URL(request.url ?? '/', 'http://hub').searchParams.has('sid');
}

/**
 * For app.ts's upgrade routing: an upgrade that opens a connection holds a slot until its socket
 * closes; the refusal (answered 429 before any WebSocket exists) when the address has none left.
 */
export function holdUpgrade(hub: UploadHub, request: IncomingMessage, socket: Duplex): UploadHubError | undefined {
  // A socket already gone would never emit 'close' again: nothing to count.
  if (socket.destroyed || continuesEngineIo(request)) return undefined;
  return connectionLimitOf(hub).hold(clientAddress(request), socket);
}

/** For an SSE/NDJSON stream: holds a slot until the response closes, or the refusal (429). */
export function holdStream(hub: UploadHub, request: IncomingMessage, res: ServerResponse): UploadHubError | undefined {
  if (res.destroyed) return undefined;
  return connectionLimitOf(hub).hold(clientAddress(request), res);
}

type NextFunction = (error?: unknown) => void;

/** The part of Engine.IO's server that the long-polling hook needs. */
interface EngineServer {
  use(middleware: (request: IncomingMessage, res: ServerResponse, next: NextFunction) => void): void;
  on(event: 'connection', listener: (connection: Closable & { request: IncomingMessage }) => void): unknown;
}

/**
 * Socket.IO over long-polling (a plain GET handshake, then more GETs and POSTs): the handshake
 * takes a slot, answered 429 when there is none, and the Engine.IO connection it opens holds it
 * until it closes, upgraded to WebSocket or not. A handshake that opens no connection (refused
 * further on) gives its slot back when its response closes. Upgrades were counted by app.ts.
 */
export function limitEngineIoHandshakes(hub: UploadHub, engine: EngineServer): void {
  const limit = connectionLimitOf(hub);
  const handshakes = new WeakMap<IncomingMessage, () => void>();
  engine.use((request, res, next) => {
    const query = new URL(request.url ?? '/', 'http://hub').searchParams;
    if (query.get('transport') !== 'polling' || query.has('sid')) {
      next();
      return;
    }
    const release = limit.take(clientAddress(request));
    if (release === undefined) {
      const body = JSON.stringify({ error: limit.refusal().toJSON() });
      res.writeHead(429, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
      res.end(body);
      return;
    }
    handshakes.set(request, release);
    res.once('close', () => {
      if (handshakes.get(request) !== release) return;
      handshakes.delete(request);
      release();
    });
    next();
  });
  engine.on('connection', (connection) => {
    const release = handshakes.get(connection.request);
    if (release === undefined) return;
    handshakes.delete(connection.request);
    connection.once('close', release);
  });
}
