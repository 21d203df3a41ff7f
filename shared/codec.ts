/**
 * Parsing of control messages: text or a decoded object in, a validated message or a coded
 * error out. Both sides use it, so "malformed" and "unknown" mean the same thing everywhere.
 */
import { UploadHubError } from './errors.js';
import { clientMessage, serverMessage, type ClientMessage, type ServerMessage, type WatchingMessage } from './messages.js';
import type { z } from 'zod';

const CLIENT_TYPES: ReadonlySet<string> = new Set(clientMessage.options.map((option) => option.shape.type.value));
const SERVER_TYPES: ReadonlySet<string> = new Set(serverMessage.options.map((option) => option.shape.type.value));

function validateWith<T>(schema: z.ZodType<T>, knownTypes: ReadonlySet<string>, raw: unknown): T {
  const type = typeof raw === 'object' && raw !== null ? (raw as { type?: unknown }).type : undefined;
  if (typeof type !== 'string' || !knownTypes.has(type)) {
    // Only a string is echoed: any other value may be nested too deep for JSON.stringify.
    const shown = typeof type === 'string' ? JSON.stringify(type) : type === undefined || type === null ? 'null' : `of type ${Array.isArray(type) ? 'array' : typeof type}`;
    throw new UploadHubError('ERR_UNKNOWN_MESSAGE', `Unknown message type ${shown}`);
  }
  let result: ReturnType<typeof schema.safeParse>;
  try {
    result = schema.safeParse(raw);
  } catch (error) {
    // A recursive schema (a result's JSON) walks the value on the stack: nesting can overflow it.
    throw new UploadHubError('ERR_BAD_MESSAGE', `Invalid ${type} message: nested too deeply`, { cause: error });
  }
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new UploadHubError('ERR_BAD_MESSAGE', `Invalid ${type} message${where}: ${issue?.message ?? 'schema mismatch'}`);
  }
  return result.data;
}

/** Bytes `text` takes in UTF-8, counted without encoding it (a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8ByteLength(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: two units, four bytes.
      bytes += 2;
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/**
 * The one size rule for control messages, whatever carries them: at most `maxBytes` bytes of
 * UTF-8. Bytes as received (a raw WebSocket text frame) are counted as they are; text is
 * counted as its UTF-8 encoding, never as its UTF-16 length.
 */
export function assertMessageSize(message: string | Uint8Array, maxBytes: number): void {
  // A UTF-16 length over the limit is over it in UTF-8 too: no need to count.
  const size = typeof message === 'string' ? (message.length > maxBytes ? message.length : utf8ByteLength(message)) : message.byteLength;
  if (size > maxBytes) throw new UploadHubError('ERR_MESSAGE_TOO_LARGE', `Control message exceeds maxMessageBytes (${maxBytes} bytes)`);
}

const utf8 = new TextDecoder();

function parseJson(message: string | Uint8Array, maxBytes: number): unknown {
  assertMessageSize(message, maxBytes);
  try {
    return JSON.parse(typeof message === 'string' ? message : utf8.decode(message));
  } catch {
    throw new UploadHubError('ERR_BAD_MESSAGE', 'Message is not valid JSON');
  }
}

/** Validates a decoded client message (Socket.IO delivers objects, not text). */
export function validateClientMessage(raw: unknown): ClientMessage {
  return validateWith(clientMessage, CLIENT_TYPES, raw);
}

/** A client message from a text frame's bytes or its text; refused past `maxBytes` UTF-8 bytes before parsing. */
export function parseClientMessage(message: string | Uint8Array, maxBytes: number): ClientMessage {
  return validateClientMessage(parseJson(message, maxBytes));
}

/** Validates a decoded message from the hub. */
export function validateServerMessage(raw: unknown): ServerMessage {
  return validateWith(serverMessage, SERVER_TYPES, raw);
}

export function parseServerMessage(text: string): ServerMessage {
  return validateServerMessage(parseJson(text, Number.POSITIVE_INFINITY));
}

/**
 * Splits a `watching` reply into pieces of at most `maxBytes` UTF-8 bytes each, so that no
 * snapshot is one message a peer or a send buffer cannot take (a single status or event larger
 * than that travels alone). Events first, then statuses, each in order; every piece but the
 * last has `more: true`. joinWatching puts them back together.
 */
export function splitWatching(reply: WatchingMessage, maxBytes: number): WatchingMessage[] {
  const { uploads, events, more: _more, ...head } = reply;
  const empty = (): WatchingMessage => (events === undefined ? { ...head, uploads: [] } : { ...head, uploads: [], events: [] });
  // A piece's size: its envelope with empty lists and the flag, plus each item's JSON and a comma.
  const envelope = utf8ByteLength(JSON.stringify({ ...empty(), more: true }));
  const pieces: WatchingMessage[] = [];
  let piece = empty();
  let size = envelope;
  let items = 0;
  const room = (item: unknown): void => {
    const bytes = utf8ByteLength(JSON.stringify(item)) + 1;
    if (items > 0 && size + bytes > maxBytes) {
      pieces.push({ ...piece, more: true });
      piece = empty();
      size = envelope;
      items = 0;
    }
    size += bytes;
    items++;
  };
  for (const event of events ?? []) {
    room(event);
    piece.events?.push(event);
  }
  for (const upload of uploads) {
    room(upload);
    piece.uploads.push(upload);
  }
  pieces.push(piece);
  return pieces;
}

/** One `watching` reply from its pieces, in the order they came (see splitWatching). */
export function joinWatching(pieces: readonly WatchingMessage[]): WatchingMessage {
  const last = pieces.at(-1);
  if (!last) throw new UploadHubError('ERR_BAD_MESSAGE', 'A watching reply needs at least one piece');
  const { more: _more, ...head } = last;
  const joined: WatchingMessage = { ...head, uploads: pieces.flatMap((piece) => piece.uploads) };
  if (pieces.some((piece) => piece.events !== undefined)) joined.events = pieces.flatMap((piece) => piece.events ?? []);
  return joined;
}
