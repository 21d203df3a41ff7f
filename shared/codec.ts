/**
 * Parsing of control messages: text or a decoded object in, a validated message or a coded
 * error out. Both sides use it, so "malformed" and "unknown" mean the same thing everywhere.
 */
import { UploadHubError } from './errors.js';
import { clientMessage, serverMessage, type ClientMessage, type ServerMessage } from './messages.js';
import type { z } from 'zod';

const CLIENT_TYPES: ReadonlySet<string> = new Set(clientMessage.options.map((option) => option.shape.type.value));
const SERVER_TYPES: ReadonlySet<string> = new Set(serverMessage.options.map((option) => option.shape.type.value));

function validateWith<T>(schema: z.ZodType<T>, knownTypes: ReadonlySet<string>, raw: unknown): T {
  const type = typeof raw === 'object' && raw !== null ? (raw as { type?: unknown }).type : undefined;
  if (typeof type !== 'string' || !knownTypes.has(type)) {
    throw new UploadHubError('ERR_UNKNOWN_MESSAGE', `Unknown message type ${JSON.stringify(type ?? null)}`);
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new UploadHubError('ERR_BAD_MESSAGE', `Invalid ${type} message${where}: ${issue?.message ?? 'schema mismatch'}`);
  }
  return result.data;
}

function parseJson(text: string, maxBytes: number): unknown {
  // UTF-16 length bounds the UTF-8 byte length from below: enough to refuse before parsing.
  if (text.length > maxBytes) throw new UploadHubError('ERR_MESSAGE_TOO_LARGE', `Control message exceeds ${maxBytes} bytes`);
  try {
    return JSON.parse(text);
  } catch {
    throw new UploadHubError('ERR_BAD_MESSAGE', 'Message is not valid JSON');
  }
}

/** Validates a decoded client message (Socket.IO delivers objects, not text). */
export function validateClientMessage(raw: unknown): ClientMessage {
  return validateWith(clientMessage, CLIENT_TYPES, raw);
}

export function parseClientMessage(text: string, maxBytes: number): ClientMessage {
  return validateClientMessage(parseJson(text, maxBytes));
}

/** Validates a decoded message from the hub. */
export function validateServerMessage(raw: unknown): ServerMessage {
  return validateWith(serverMessage, SERVER_TYPES, raw);
}

export function parseServerMessage(text: string): ServerMessage {
  return validateServerMessage(parseJson(text, Number.POSITIVE_INFINITY));
}
