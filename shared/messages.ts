/**
 * Every control message of the protocol, both ways, as zod schemas with the TypeScript types
 * inferred from them. The schema is the single definition: the server validates what it
 * receives with it, the client validates what it receives with it, and the Socket.IO event
 * maps are derived from the same types.
 *
 * Chunks are not control messages: on raw WebSocket they travel as the binary frame of
 * `frame.ts`; on Socket.IO as a binary attachment of the `chunk` event.
 */
import * as z from 'zod';
import { ERROR_CODE_LIST, type ErrorCode } from './errors.js';

/** Bumped on any incompatible change to a message or the binary frame. */
export const PROTOCOL_VERSION = 1;

/** Server-generated ids: URL- and path-safe, never derived from client input. */
export const UPLOAD_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

export const UPLOAD_STATES = [
  'created', 'uploading', 'uploaded', 'queued', 'processing', 'completed', 'failed', 'cancelled', 'expired',
] as const;
export type UploadState = (typeof UPLOAD_STATES)[number];

export const TERMINAL_STATES = ['completed', 'failed', 'cancelled', 'expired'] as const satisfies readonly UploadState[];
export type TerminalState = (typeof TERMINAL_STATES)[number];

export function isTerminalState(state: string): state is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

export const PHASES = ['upload', 'processing'] as const;
export type Phase = (typeof PHASES)[number];

export const LOG_LEVELS = ['info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const uploadId = z.string().regex(UPLOAD_ID_PATTERN);
const reqId = z.string().min(1).max(64);
const offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex sha256');
const metadata = z.record(z.string().max(256), z.string().max(4096));
const errorCode = z.enum(ERROR_CODE_LIST as [ErrorCode, ...ErrorCode[]]);

export const jsonValue: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(jsonValue), z.record(z.string(), jsonValue)]),
);
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export const errorInfo = z.object({ code: errorCode, message: z.string(), stage: z.string().optional() });
export type ErrorInfo = z.infer<typeof errorInfo>;

/** What the hub knows of one upload; the body of status responses and snapshots. */
export const uploadStatus = z.object({
  id: uploadId,
  name: z.string(),
  size: offset,
  mimeType: z.string(),
  metadata,
  owner: z.string(),
  state: z.enum(UPLOAD_STATES),
  /** Bytes the hub has committed to storage. */
  bytes: offset,
  /** Overall percent 0-100 across upload and processing. */
  percent: z.number().min(0).max(100),
  phase: z.enum(PHASES),
  stage: z.string().optional(),
  stagePercent: z.number().min(0).max(100).optional(),
  queuePosition: z.number().int().min(1).optional(),
  /**
   * Whether a writer (a socket, a multipart request) holds the upload now. An incomplete upload
   * that is not attached waits for its client to resume it.
   */
  attached: z.boolean(),
  sha256: sha256.optional(),
  createdAt: z.number(),
  updatedAt: z.number(),
  error: errorInfo.optional(),
  result: jsonValue.optional(),
});
export type UploadStatus = z.infer<typeof uploadStatus>;

// ---------------------------------------------------------------------------------------------
// Events: the hub's one ordered stream. Every watcher (socket, SSE, NDJSON, room) gets these.

const eventBase = { id: z.number().int().min(1), uploadId, at: z.number() };

export const progressEvent = z.object({
  ...eventBase,
  type: z.literal('progress'),
  bytes: offset,
  total: offset,
  percent: z.number().min(0).max(100),
  phase: z.enum(PHASES),
  stage: z.string().optional(),
  stagePercent: z.number().min(0).max(100).optional(),
  bytesPerSecond: z.number().min(0),
  /** Seconds to the end of the current phase at the current rate; null while unknown. */
  etaSeconds: z.number().min(0).nullable(),
});

export const hubEvent = z.discriminatedUnion('type', [
  z.object({ ...eventBase, type: z.literal('created'), upload: uploadStatus }),
  progressEvent,
  z.object({ ...eventBase, type: z.literal('stage'), stage: z.string(), index: z.number().int().min(0), count: z.number().int().min(1) }),
  z.object({ ...eventBase, type: z.literal('log'), level: z.enum(LOG_LEVELS), text: z.string(), stage: z.string().optional() }),
  z.object({ ...eventBase, type: z.literal('uploading'), bytes: offset }),
  z.object({ ...eventBase, type: z.literal('uploaded'), bytes: offset, sha256 }),
  z.object({ ...eventBase, type: z.literal('queued'), position: z.number().int().min(1) }),
  z.object({ ...eventBase, type: z.literal('processing') }),
  z.object({ ...eventBase, type: z.literal('completed'), result: jsonValue.optional() }),
  z.object({ ...eventBase, type: z.literal('failed'), error: errorInfo }),
  z.object({ ...eventBase, type: z.literal('cancelled'), stage: z.string().optional() }),
  z.object({ ...eventBase, type: z.literal('expired') }),
]);
export type HubEvent = z.infer<typeof hubEvent>;
export type HubEventType = HubEvent['type'];
export type ProgressEvent = Extract<HubEvent, { type: 'progress' }>;
/** An event before the bus stamps it with its id and time. */
export type HubEventBody = HubEvent extends infer E ? (E extends HubEvent ? Omit<E, 'id' | 'at'> : never) : never;

/** Event types that change an upload's state (every one is delivered, never throttled away). */
export const STATE_EVENT_TYPES = ['uploading', 'uploaded', 'queued', 'processing', 'completed', 'failed', 'cancelled', 'expired'] as const;

// ---------------------------------------------------------------------------------------------
// Client -> server

export const helloMessage = z.object({ type: z.literal('hello'), version: z.number().int(), token: z.string().max(4096).optional() });
export const createMessage = z.object({
  type: z.literal('create'),
  reqId,
  name: z.string().min(1).max(1024),
  size: offset,
  mimeType: z.string().max(255).optional(),
  metadata: metadata.optional(),
  sha256: sha256.optional(),
});
export const resumeMessage = z.object({ type: z.literal('resume'), reqId, uploadId });
export const cancelMessage = z.object({ type: z.literal('cancel'), reqId: reqId.optional(), uploadId });
/**
 * Watch every upload the principal may see (no uploadIds), or the listed ones. `since`: the
 * highest event id the client has seen (after a reconnect); the reply then carries the events
 * after it, if the hub still holds them all.
 */
export const watchMessage = z.object({
  type: z.literal('watch'),
  reqId: reqId.optional(),
  uploadIds: z.array(uploadId).max(1000).optional(),
  since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
export const unwatchMessage = z.object({ type: z.literal('unwatch'), uploadIds: z.array(uploadId).max(1000).optional() });
export const pingMessage = z.object({ type: z.literal('ping'), t: z.number() });

export const clientMessage = z.discriminatedUnion('type', [
  helloMessage, createMessage, resumeMessage, cancelMessage, watchMessage, unwatchMessage, pingMessage,
]);
export type ClientMessage = z.infer<typeof clientMessage>;
export type ClientMessageType = ClientMessage['type'];
export type CreateMessage = z.infer<typeof createMessage>;
export type CreateInput = Omit<CreateMessage, 'type' | 'reqId'>;

// ---------------------------------------------------------------------------------------------
// Server -> client

export const limitsInfo = z.object({
  maxFileSize: offset,
  maxChunkSize: z.number().int().min(1),
  /** The chunk size clients should use unless told otherwise. */
  chunkSize: z.number().int().min(1),
  maxUploadsPerConnection: z.number().int().min(1),
});
export type LimitsInfo = z.infer<typeof limitsInfo>;

export const welcomeMessage = z.object({ type: z.literal('welcome'), version: z.number().int(), principal: z.string(), limits: limitsInfo });
/** Reply to create or resume: send bytes from `offset`, never past `offset + window`. */
export const attachedMessage = z.object({
  type: z.literal('attached'),
  reqId,
  upload: uploadStatus,
  offset,
  window: z.number().int().min(0),
});
export const CHUNK_STATUSES = ['accepted', 'duplicate', 'gap'] as const;
export type ChunkStatus = (typeof CHUNK_STATUSES)[number];
/**
 * Reply to one chunk. `offset` is the committed offset; the client may send up to
 * `offset + window`. On `gap` the client rewinds to `offset`.
 */
export const ackMessage = z.object({
  type: z.literal('ack'),
  uploadId,
  /** Start offset of the chunk this acknowledges. */
  chunkOffset: offset,
  status: z.enum(CHUNK_STATUSES),
  offset,
  window: z.number().int().min(0),
});
export const eventMessage = z.object({ type: z.literal('event'), event: hubEvent });
/**
 * Reply to watch, in one or more pieces (each at most maxMessageBytes where it can be): every
 * piece but the last has `more: true`; together they hold the statuses and, when `since` was
 * honoured, the events after it.
 */
export const watchingMessage = z.object({
  type: z.literal('watching'),
  reqId: reqId.optional(),
  /** The statuses of what is watched (active uploads when watching all) as of `lastEventId`. */
  uploads: z.array(uploadStatus),
  /** The hub's last event id when the statuses were taken: every event it reflects has an id up to this. */
  lastEventId: z.number().int().min(0),
  /** Only when `since` was honoured: the events after `since` up to `lastEventId`, oldest first, progress merged to the latest. */
  events: z.array(hubEvent).optional(),
  /** More pieces of this reply follow. */
  more: z.literal(true).optional(),
});
export const errorMessage = z.object({
  type: z.literal('error'),
  code: errorCode,
  message: z.string(),
  reqId: reqId.optional(),
  uploadId: uploadId.optional(),
  /** Set when the error answers a chunk: that chunk's start offset. */
  chunkOffset: offset.optional(),
  /** The committed offset, when the error concerns an upload's bytes. */
  offset: offset.optional(),
});
export const pongMessage = z.object({ type: z.literal('pong'), t: z.number() });
/** Reply to a cancel that carried a reqId: the upload's status afterwards. */
export const statusMessage = z.object({ type: z.literal('status'), reqId, upload: uploadStatus });

export const serverMessage = z.discriminatedUnion('type', [
  welcomeMessage, attachedMessage, ackMessage, eventMessage, watchingMessage, errorMessage, pongMessage, statusMessage,
]);
export type ServerMessage = z.infer<typeof serverMessage>;
export type AckMessage = z.infer<typeof ackMessage>;
export type ErrorMessage = z.infer<typeof errorMessage>;
export type AttachedMessage = z.infer<typeof attachedMessage>;
export type WelcomeMessage = z.infer<typeof welcomeMessage>;
export type WatchingMessage = z.infer<typeof watchingMessage>;
export type StatusMessage = z.infer<typeof statusMessage>;
/** What a chunk is answered with: an ack, or an error naming the chunk. */
export type ChunkReply = AckMessage | ErrorMessage;
