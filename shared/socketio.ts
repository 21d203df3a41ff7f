/**
 * The protocol on Socket.IO: the same messages as the raw WebSocket, as typed events.
 *
 * - The event name is the message's `type`; the payload is the message without `type`.
 *   `hello` has no event: its fields travel in the handshake's `auth` instead.
 * - Chunks are the `chunk` event: upload id, offset, the bytes as a binary attachment, and an
 *   acknowledgement callback answered with the chunk's reply (ack or error). Chunk replies
 *   never travel as events, so `ack` has none.
 * - `closing` is sent right before the hub disconnects a socket: the raw WebSocket's close
 *   code and reason, for a transport whose disconnect carries no reason.
 *
 * The maps are derived from the message union, so adding a message to messages.ts adds its
 * event here, and a misspelt event or wrong payload fails to compile on both sides.
 * Browser-safe: no node: imports.
 */
import { assertMessageSize, validateClientMessage } from './codec.js';
import { UploadHubError, type ErrorCode } from './errors.js';
import type { ChunkFrame } from './frame.js';
import { UPLOAD_ID_PATTERN, type ChunkReply, type ClientMessage, type ErrorMessage, type ServerMessage } from './messages.js';

/** Client messages sent as events: every one but `hello` (the handshake carries it). */
export type ClientEventName = Exclude<ClientMessage['type'], 'hello'>;
/** Server messages sent as events: every one but `ack` (chunk replies are acknowledgements). */
export type ServerEventName = Exclude<ServerMessage['type'], 'ack'>;

/** The payload of a client event: the message of that type without `type`. */
export type ClientPayload<T extends ClientMessage['type']> = Omit<Extract<ClientMessage, { type: T }>, 'type'>;
/** The payload of a server event: the message of that type without `type`. */
export type ServerPayload<T extends ServerMessage['type']> = Omit<Extract<ServerMessage, { type: T }>, 'type'>;

/** The chunk's bytes: a Buffer in Node, a Uint8Array or ArrayBuffer in browsers. Always binary, never base64. */
export type ChunkData = Uint8Array | ArrayBuffer;
/** Acknowledgement of one chunk: the same reply a raw WebSocket client gets as a message. */
export type ChunkAck = (reply: ChunkReply) => void;
/** Why the hub is disconnecting the socket. */
export type ClosingPayload = Pick<ErrorMessage, 'code' | 'message'>;

export type ClientToServerEvents = { [T in ClientEventName]: (payload: ClientPayload<T>) => void } & {
  chunk: (uploadId: string, offset: number, data: ChunkData, ack: ChunkAck) => void;
};

export type ServerToClientEvents = { [T in ServerEventName]: (payload: ServerPayload<T>) => void } & {
  closing: (payload: ClosingPayload) => void;
};

/** Events between hub processes sharing a Socket.IO adapter: none. */
export type InterServerEvents = Record<string, never>;

/** `auth` of the handshake: the fields of `hello`. `version` is required. */
export type SocketIoAuth = ClientPayload<'hello'>;

/** `data` of the `connect_error` a refused handshake produces. */
export interface ConnectErrorData {
  code: ErrorCode;
}

/** What the server keeps per socket after the handshake (a server Principal fits it). */
export interface SocketData {
  principal: { readonly id: string; readonly admin?: boolean };
}

/** Every client event besides `chunk`; the Record makes a missing or unknown name a compile error. */
const CLIENT_EVENT_SET: Record<ClientEventName, true> = { create: true, resume: true, cancel: true, watch: true, unwatch: true, ping: true };
const SERVER_EVENT_SET: Record<ServerEventName, true> = { welcome: true, attached: true, event: true, watching: true, error: true, pong: true, status: true };

export const CLIENT_EVENTS = Object.keys(CLIENT_EVENT_SET) as ClientEventName[];
export const SERVER_EVENTS = Object.keys(SERVER_EVENT_SET) as ServerEventName[];
export const CHUNK_EVENT = 'chunk' satisfies keyof ClientToServerEvents;
export const CLOSING_EVENT = 'closing' satisfies keyof ServerToClientEvents;

export function isClientEventName(name: string): name is ClientEventName {
  return Object.hasOwn(CLIENT_EVENT_SET, name);
}

/**
 * Checks the arguments of a `chunk` event the way decodeChunkFrame checks a raw frame, with
 * the same code (ERR_BAD_FRAME) on anything malformed.
 */
export function validateChunkEvent(uploadId: unknown, offset: unknown, data: unknown): ChunkFrame {
  if (typeof uploadId !== 'string' || !UPLOAD_ID_PATTERN.test(uploadId)) {
    throw new UploadHubError('ERR_BAD_FRAME', 'chunk: the upload id is not a valid id');
  }
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new UploadHubError('ERR_BAD_FRAME', 'chunk: the offset must be a safe non-negative integer');
  }
  if (data instanceof Uint8Array) return { uploadId, offset, data };
  if (data instanceof ArrayBuffer) return { uploadId, offset, data: new Uint8Array(data) };
  throw new UploadHubError('ERR_BAD_FRAME', 'chunk: the bytes must be a binary attachment');
}

/**
 * The message an event carries, with its `type` restored from the event name, ready for
 * validateClientMessage / validateServerMessage. A payload that is not an object is
 * ERR_BAD_MESSAGE; none at all is an empty one.
 */
export function messageOf(type: string, payload: unknown): Record<string, unknown> {
  if (payload === undefined) return { type };
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new UploadHubError('ERR_BAD_MESSAGE', `Invalid ${type} message: the payload must be an object`);
  }
  return { ...payload, type };
}

/**
 * A client event as its message: the payload must be an object, its message's JSON (`type`
 * included, as a raw WebSocket client would send it) at most `maxBytes` UTF-8 bytes, and the
 * schema must hold. The same rules, codes and sizes as a raw WebSocket text frame.
 */
export function parseClientEvent(type: ClientEventName, payload: unknown, maxBytes: number): ClientMessage {
  const message = messageOf(type, payload);
  let text: string;
  try {
    text = JSON.stringify(message);
  } catch (error) {
    // Nesting too deep to serialize (a stack overflow): no client message is shaped like that.
    throw new UploadHubError('ERR_BAD_MESSAGE', `Invalid ${type} message: nested too deeply`, { cause: error });
  }
  assertMessageSize(text, maxBytes);
  return validateClientMessage(message);
}
