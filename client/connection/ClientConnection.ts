/**
 * One socket to the hub, as the UploadClient sees it. Each transport (raw WebSocket,
 * Socket.IO) implements it; UploadClient holds all logic above it, so both behave the same.
 */
import { UploadHubError } from '../../shared/errors.js';
import type {
  AttachedMessage,
  ChunkReply,
  ErrorMessage,
  HubEvent,
  StatusMessage,
  WatchingMessage,
  WelcomeMessage,
} from '../../shared/messages.js';

/** Control messages that expect a correlated reply; the connection assigns reqId. */
export type RequestMessage =
  | { type: 'create'; name: string; size: number; mimeType?: string; metadata?: Record<string, string>; sha256?: string }
  | { type: 'resume'; uploadId: string }
  | { type: 'cancel'; uploadId: string }
  | { type: 'watch'; uploadIds?: string[]; since?: number };

export type RequestReply<M extends RequestMessage> = M['type'] extends 'watch' ? WatchingMessage : M['type'] extends 'cancel' ? StatusMessage : AttachedMessage;

export interface ConnectionHandlers {
  event(event: HubEvent): void;
  /** An error not tied to a request or chunk (idle timeout of an upload, say). */
  error(message: ErrorMessage): void;
  /** The connection is gone; pending requests and chunks have been rejected. */
  closed(reason: UploadHubError): void;
}

export interface ClientConnection {
  /** Connects and authenticates. Rejects with the hub's code (ERR_UNAUTHORIZED...) or ERR_CONNECTION_LOST. */
  open(): Promise<WelcomeMessage>;
  request<M extends RequestMessage>(message: M): Promise<RequestReply<M>>;
  unwatch(uploadIds?: string[]): void;
  /** Round trip of one ping, in ms. */
  ping(): Promise<number>;
  /** Resolves with the hub's reply to this chunk; rejects only when the connection is lost. */
  sendChunk(uploadId: string, offset: number, data: Uint8Array): Promise<ChunkReply>;
  /**
   * Resolves once the socket's send buffer holds at most `bytes` (at once if it does already),
   * or when the connection ends. What is buffered goes out before any later message, a
   * `cancel` too, so chunks are added only while little is waiting.
   */
  drained(bytes: number): Promise<void>;
  /** Closes for good; `closed` is not called. */
  close(): void;
}

export interface ConnectionOptions {
  /** http(s) base URL of the hub. */
  url: string;
  token?: string;
  /** Reply timeout for requests, in ms. */
  requestTimeoutMs: number;
  handlers: ConnectionHandlers;
}

export type ConnectionFactory = (options: ConnectionOptions) => ClientConnection;

/**
 * The hub's base URL, parsed. One that is not http(s) (or ws(s)) is refused like a connection
 * that did not open: ERR_CONNECTION_LOST, saying why.
 */
export function hubBaseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UploadHubError('ERR_CONNECTION_LOST', `Could not connect: ${JSON.stringify(url)} is not a URL (give http://host:port)`);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) {
    throw new UploadHubError('ERR_CONNECTION_LOST', `Could not connect: ${JSON.stringify(url)} is not an http(s) URL (give http://host:port)`);
  }
  return parsed;
}
