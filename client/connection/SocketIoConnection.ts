/**
 * ClientConnection over Socket.IO (socket.io-client), on the protocol of shared/socketio.ts.
 * Behaves like WsConnection: the handshake replaces hello, chunks are binary attachments
 * answered through acknowledgements, and Socket.IO's own reconnection is off because
 * UploadClient's reconnect-and-resume loop is the one mechanism for every transport.
 */
import { io, type Socket } from 'socket.io-client';
import { validateServerMessage } from '../../shared/codec.js';
import { UploadHubError, isErrorCode } from '../../shared/errors.js';
import { PROTOCOL_VERSION, type ChunkReply, type ServerMessage, type WelcomeMessage } from '../../shared/messages.js';
import {
  CLOSING_EVENT,
  SERVER_EVENTS,
  messageOf,
  type ClientToServerEvents,
  type ServerToClientEvents,
  type SocketIoAuth,
} from '../../shared/socketio.js';
import { hubBaseUrl, type ClientConnection, type ConnectionOptions, type RequestMessage, type RequestReply } from './ClientConnection.js';
import { PendingPings, PendingRequests, routeMessage } from './Pending.js';
import { SendBuffer } from './SendBuffer.js';

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface SocketIoConnectionOptions {
  /**
   * Engine.IO transports, tried in order. Default ['websocket']: chunks go as binary WebSocket
   * frames with no HTTP round trip first. ['polling', 'websocket'] also works where WebSocket
   * is blocked; over polling, binary is base64-encoded by Engine.IO.
   */
  transports?: Array<'websocket' | 'polling' | 'webtransport'>;
  /** The Socket.IO path under the hub's url. Default '/socket.io/'. */
  path?: string;
}

export class SocketIoConnection implements ClientConnection {
  private socket: ClientSocket | undefined;
  private readonly requests: PendingRequests;
  /** Rejecters of chunks awaiting their acknowledgement, to fail them when the socket goes. */
  private readonly chunks = new Set<(error: UploadHubError) => void>();
  private readonly pings = new PendingPings();
  /** What the hub said in `closing` before disconnecting. */
  private closeReason: UploadHubError | undefined;
  private ended = false;
  private readonly sendBuffer = new SendBuffer(() => (this.socket ? bufferedBytes(this.socket) : 0));

  constructor(private readonly options: ConnectionOptions, private readonly ioOptions: SocketIoConnectionOptions = {}) {
    this.requests = new PendingRequests(options.requestTimeoutMs);
  }

  open(): Promise<WelcomeMessage> {
    return new Promise<WelcomeMessage>((resolve, reject) => {
      let base: URL;
      try {
        base = hubBaseUrl(this.options.url);
      } catch (error) {
        reject(error);
        return;
      }
      const auth: SocketIoAuth = this.options.token === undefined ? { version: PROTOCOL_VERSION } : { version: PROTOCOL_VERSION, token: this.options.token };
      const socket: ClientSocket = io(base.origin, {
        path: `${base.pathname.replace(/\/$/, '')}${this.ioOptions.path ?? '/socket.io/'}`,
        transports: this.ioOptions.transports ?? ['websocket'],
        auth,
        reconnection: false,
        // A new Engine.IO connection per ClientConnection: no Manager shared with another client.
        forceNew: true,
        timeout: this.options.requestTimeoutMs,
      });
      this.socket = socket;
      let welcomed = false;
      let settled = false;
      // Socket.IO's `timeout` covers connecting; a server that connects and never welcomes
      // (a Socket.IO server that is not the hub) is bounded here.
      const openTimer = setTimeout(() => {
        end(new UploadHubError('ERR_CONNECTION_LOST', `No welcome from ${this.options.url} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      const end = (reason: UploadHubError) => {
        if (settled) return;
        settled = true;
        clearTimeout(openTimer);
        this.sendBuffer.close();
        this.requests.rejectAll(reason);
        for (const rejectChunk of [...this.chunks]) rejectChunk(reason);
        this.chunks.clear();
        this.pings.rejectAll(reason);
        // Releases the Engine.IO connection and the Manager (a no-op if they are gone already).
        socket.disconnect();
        if (!welcomed) reject(reason);
        else if (!this.ended) this.options.handlers.closed(reason);
        this.ended = true;
      };

      for (const type of SERVER_EVENTS) {
        socket.on(type, (payload: unknown) => {
          let message: ServerMessage;
          try {
            message = validateServerMessage(messageOf(type, payload));
          } catch {
            return; // a hub speaking another protocol version; the disconnect that follows says why
          }
          if (welcomed) this.receive(message);
          else if (message.type === 'welcome') {
            welcomed = true;
            clearTimeout(openTimer);
            resolve(message);
          }
        });
      }
      socket.on(CLOSING_EVENT, (payload) => {
        this.closeReason = isErrorCode(payload?.code) ? new UploadHubError(payload.code, payload.message) : undefined;
      });
      socket.on('connect_error', (error: Error & { data?: unknown }) => {
        const code = (error.data as { code?: unknown } | undefined)?.code;
        end(isErrorCode(code) ? new UploadHubError(code, error.message) : new UploadHubError('ERR_CONNECTION_LOST', `Could not connect: ${describeConnectError(error)}`));
      });
      socket.on('disconnect', (reason) => {
        end(this.closeReason ?? new UploadHubError('ERR_CONNECTION_LOST', `Connection closed (${reason})`));
      });
    });
  }

  request<M extends RequestMessage>(message: M): Promise<RequestReply<M>> {
    const socket = this.socket;
    if (!socket?.connected) return Promise.reject(new UploadHubError('ERR_CONNECTION_LOST', 'Socket is not connected'));
    const { reqId, reply } = this.requests.add();
    // One case per event, so each payload is checked against its event's type.
    const request: RequestMessage = message;
    switch (request.type) {
      case 'create': {
        const { type: _type, ...fields } = request;
        socket.emit('create', { ...fields, reqId });
        break;
      }
      case 'resume':
        socket.emit('resume', { uploadId: request.uploadId, reqId });
        break;
      case 'cancel':
        socket.emit('cancel', { uploadId: request.uploadId, reqId });
        break;
      case 'watch': {
        const { type: _type, ...fields } = request;
        socket.emit('watch', { ...fields, reqId });
        break;
      }
    }
    return reply as Promise<RequestReply<M>>;
  }

  unwatch(uploadIds?: string[]): void {
    if (this.socket?.connected) this.socket.emit('unwatch', uploadIds === undefined ? {} : { uploadIds });
  }

  ping(): Promise<number> {
    const socket = this.socket;
    if (!socket?.connected) return Promise.reject(new UploadHubError('ERR_CONNECTION_LOST', 'Socket is not connected'));
    const { t, rtt } = this.pings.add();
    socket.emit('ping', { t });
    return rtt;
  }

  sendChunk(uploadId: string, offset: number, data: Uint8Array): Promise<ChunkReply> {
    const socket = this.socket;
    if (!socket?.connected) return Promise.reject(new UploadHubError('ERR_CONNECTION_LOST', 'Socket is not connected'));
    return new Promise<ChunkReply>((resolve, reject) => {
      this.chunks.add(reject);
      socket.timeout(this.options.requestTimeoutMs).emit('chunk', uploadId, offset, data, (timedOut, raw) => {
        if (!this.chunks.delete(reject)) return; // the connection ended first and rejected it
        if (timedOut) {
          // A hub that stops acknowledging is treated as gone: reconnecting resumes from the committed offset.
          const error = new UploadHubError('ERR_TIMEOUT', `No acknowledgement within ${this.options.requestTimeoutMs} ms`);
          reject(error);
          socket.disconnect();
          return;
        }
        let reply: ServerMessage;
        try {
          reply = validateServerMessage(raw);
        } catch (error) {
          reject(error);
          return;
        }
        if (reply.type === 'ack' || reply.type === 'error') resolve(reply);
        else reject(new UploadHubError('ERR_BAD_MESSAGE', `A chunk was answered with ${reply.type}`));
      });
    });
  }

  drained(bytes: number): Promise<void> {
    return this.sendBuffer.drained(bytes);
  }

  close(): void {
    this.ended = true;
    this.sendBuffer.close();
    this.socket?.disconnect();
  }

  private receive(message: ServerMessage): void {
    routeMessage(message, { requests: this.requests, pings: this.pings }, this.options.handlers);
  }
}

/** What went wrong under Socket.IO's "websocket error" / "xhr poll error": the socket's own error, when it says. */
function describeConnectError(error: Error & { description?: unknown }): string {
  const description = error.description as { message?: unknown; error?: { message?: unknown } } | undefined;
  const inner = description?.error?.message ?? description?.message;
  return typeof inner === 'string' && inner && inner !== error.message ? `${error.message} (${inner})` : error.message;
}

/**
 * Bytes the Socket.IO connection holds unsent: packets Engine.IO keeps while its transport is
 * busy (HTTP long-polling), and what its WebSocket has not written yet. Engine.IO hands every
 * packet to the WebSocket at once and exposes no count of its own, so the WebSocket's
 * bufferedAmount is read where the transport keeps it; without one, only the packets count.
 */
function bufferedBytes(socket: ClientSocket): number {
  const engine = socket.io.engine as (typeof socket.io.engine | undefined);
  if (!engine) return 0;
  let bytes = 0;
  for (const packet of engine.writeBuffer) bytes += byteLength(packet.data);
  const webSocket = (engine.transport as unknown as { ws?: { bufferedAmount?: unknown } | null } | undefined)?.ws;
  if (typeof webSocket?.bufferedAmount === 'number') bytes += webSocket.bufferedAmount;
  return bytes;
}

function byteLength(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}
