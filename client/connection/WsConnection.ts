/**
 * ClientConnection over a raw WebSocket at `/ws`. The WebSocket class is injected: the
 * browser's own, or `ws` in Node (both speak the same DOM-style API).
 */
import { UploadHubError, isErrorCode } from '../../shared/errors.js';
import { parseServerMessage } from '../../shared/codec.js';
import { chunkHeaderLength, encodeChunkFrame, writeChunkHeader } from '../../shared/frame.js';
import { PROTOCOL_VERSION, type ChunkReply, type ServerMessage, type WelcomeMessage } from '../../shared/messages.js';
import { hubBaseUrl, type ClientConnection, type ConnectionOptions, type RequestMessage, type RequestReply } from './ClientConnection.js';
import { PendingChunks, PendingPings, PendingRequests, routeMessage } from './Pending.js';
import { SendBuffer } from './SendBuffer.js';

/** The part of the WebSocket API the client uses; browsers' WebSocket and `ws` both fit. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /** Bytes queued by send() and not yet written to the network. */
  readonly bufferedAmount: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  /** `ws` calls `written` once the data is handed to the network; a browser's WebSocket ignores it. */
  send(data: string | Uint8Array, written?: (error?: Error) => void): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;

/** ws://host:port/ws from http://host:port. */
export function webSocketUrl(base: string): string {
  const url = hubBaseUrl(base);
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/$/, '')}/ws`;
  return url.toString();
}

export class WsConnection implements ClientConnection {
  private socket: WebSocketLike | undefined;
  private readonly requests: PendingRequests;
  private readonly chunks = new PendingChunks();
  private readonly pings = new PendingPings();
  private ended = false;
  private frame: Uint8Array | undefined;
  private readonly sendBuffer = new SendBuffer(() => this.socket?.bufferedAmount ?? 0);
  private readonly written = () => this.sendBuffer.check();

  /**
   * @param reuseFrames  the socket copies what send() is given before send() returns (`ws`
   *                     does, for masked client frames), so one frame buffer can serve every
   *                     chunk. Default false: a new frame per chunk, safe with any WebSocket.
   */
  constructor(private readonly options: ConnectionOptions, private readonly WebSocketClass: WebSocketConstructor, private readonly reuseFrames = false) {
    this.requests = new PendingRequests(options.requestTimeoutMs);
  }

  open(): Promise<WelcomeMessage> {
    return new Promise<WelcomeMessage>((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = new this.WebSocketClass(webSocketUrl(this.options.url));
      } catch (error) {
        // A URL no WebSocket can open: reported like any connection that did not open.
        reject(error instanceof UploadHubError ? error : new UploadHubError('ERR_CONNECTION_LOST', `Could not connect: ${(error as Error).message}`, { cause: error }));
        return;
      }
      this.socket = socket;
      socket.binaryType = 'arraybuffer';
      let welcomed = false;
      let failure: UploadHubError | undefined;
      // A server that takes the connection and never welcomes it (not the hub, a stuck proxy)
      // must not hold the client forever.
      const openTimer = setTimeout(() => {
        failure = new UploadHubError('ERR_CONNECTION_LOST', `No welcome from ${this.options.url} within ${this.options.requestTimeoutMs} ms`);
        reject(failure);
        socket.close();
      }, this.options.requestTimeoutMs);
      socket.onopen = () => {
        const hello = this.options.token === undefined
          ? { type: 'hello', version: PROTOCOL_VERSION }
          : { type: 'hello', version: PROTOCOL_VERSION, token: this.options.token };
        socket.send(JSON.stringify(hello));
      };
      socket.onmessage = (event) => {
        if (typeof event.data !== 'string') return;
        let message: ServerMessage;
        try {
          message = parseServerMessage(event.data);
        } catch {
          return; // a hub speaking another protocol version; the close that follows says why
        }
        if (!welcomed) {
          if (message.type === 'welcome') {
            welcomed = true;
            clearTimeout(openTimer);
            resolve(message);
          } else if (message.type === 'error') failure = new UploadHubError(message.code, message.message);
          return;
        }
        this.receive(message);
      };
      socket.onerror = (event) => {
        // `ws` says what went wrong (ECONNREFUSED, ENOTFOUND, "Unexpected server response: 404");
        // a browser's error event says nothing.
        const message = (event as { message?: unknown } | null)?.message;
        if (!welcomed && !failure && typeof message === 'string' && message) {
          failure = new UploadHubError('ERR_CONNECTION_LOST', `Could not connect: ${message}`);
        }
      };
      socket.onclose = (event) => {
        clearTimeout(openTimer);
        this.sendBuffer.close();
        const reason = failure ?? closeError(event.code, event.reason);
        this.requests.rejectAll(reason);
        this.chunks.rejectAll(reason);
        this.pings.rejectAll(reason);
        if (!welcomed) reject(reason);
        else if (!this.ended) this.options.handlers.closed(reason);
        this.ended = true;
      };
    });
  }

  request<M extends RequestMessage>(message: M): Promise<RequestReply<M>> {
    const { reqId, reply } = this.requests.add();
    this.send({ ...message, reqId });
    return reply as Promise<RequestReply<M>>;
  }

  unwatch(uploadIds?: string[]): void {
    this.send(uploadIds === undefined ? { type: 'unwatch' } : { type: 'unwatch', uploadIds });
  }

  ping(): Promise<number> {
    if (this.socket?.readyState !== OPEN) return Promise.reject(new UploadHubError('ERR_CONNECTION_LOST', 'Socket is not open'));
    const { t, rtt } = this.pings.add();
    this.send({ type: 'ping', t });
    return rtt;
  }

  sendChunk(uploadId: string, offset: number, data: Uint8Array): Promise<ChunkReply> {
    const reply = this.chunks.add(uploadId);
    if (this.socket?.readyState !== OPEN) {
      this.chunks.rejectAll(new UploadHubError('ERR_CONNECTION_LOST', 'Socket is not open'));
      return reply;
    }
    if (this.reuseFrames) {
      // `ws` masks a client frame into a buffer of its own inside send(), so one frame buffer
      // serves every chunk: a copy, but no 1 MiB allocation (and its garbage) per chunk.
      const length = chunkHeaderLength(uploadId) + data.byteLength;
      if (!this.frame || this.frame.byteLength < length) this.frame = new Uint8Array(length);
      const frame = this.frame.subarray(0, length);
      frame.set(data, writeChunkHeader(frame, uploadId, offset));
      this.socket.send(frame, this.written);
    } else this.socket.send(encodeChunkFrame(uploadId, offset, data), this.written);
    return reply;
  }

  drained(bytes: number): Promise<void> {
    return this.sendBuffer.drained(bytes);
  }

  close(): void {
    this.ended = true;
    this.sendBuffer.close();
    this.socket?.close(1000, 'client closed');
  }

  private send(message: object): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  private receive(message: ServerMessage): void {
    routeMessage(message, { requests: this.requests, chunks: this.chunks, pings: this.pings }, this.options.handlers);
  }
}

/** The hub closes with 4000 + HTTP status and the error code as the reason. */
function closeError(code: number, reason: string): UploadHubError {
  if (isErrorCode(reason)) return new UploadHubError(reason);
  return new UploadHubError('ERR_CONNECTION_LOST', `Connection closed (${code}${reason ? `: ${reason}` : ''})`);
}
