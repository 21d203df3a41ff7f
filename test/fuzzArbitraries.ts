/**
 * fast-check arbitraries for the protocol, shared by the decoder fuzz tests (unit) and the
 * transport fuzz tests (integration): valid messages and frames of every kind, the same with
 * fields mutated, and wild values (unicode, huge and deeply nested) to mutate them with.
 */
import fc from 'fast-check';
import { ERROR_CODE_LIST } from '../shared/errors.js';
import { encodeChunkFrame } from '../shared/frame.js';
import {
  CHUNK_STATUSES,
  LOG_LEVELS,
  PHASES,
  UPLOAD_STATES,
  type ClientMessage,
  type HubEvent,
  type JsonValue,
  type ServerMessage,
  type UploadStatus,
} from '../shared/messages.js';

/** A fixed seed, so a failure is reproducible; fast-check prints the seed and path on failure. */
export const FUZZ_SEED = 0x5eed_2010;

/** JSON turns -0 into 0: a value that must survive a round trip never is -0. */
const noNegativeZero = (value: number): number => (Object.is(value, -0) ? 0 : value);

export const finiteNumber = fc.double({ noNaN: true, noDefaultInfinity: true }).map(noNegativeZero);
export const uploadId = fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/);
export const offset = fc.oneof(fc.nat({ max: 1 << 24 }), fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER));
export const sha256 = fc.stringMatching(/^[0-9a-f]{64}$/);
/** Any UTF-16 code unit, lone surrogates included: what a hostile peer can put in a string. */
export const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
export const unicodeText = (maxLength: number) => fc.string({ unit: fc.oneof(anyUnit, fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), maxLength });
const boundedText = (minLength: number, maxLength: number) =>
  fc.string({ unit: 'grapheme', minLength, maxLength }).filter((text) => text.length >= minLength && text.length <= maxLength);
/**
 * zod's record copies keys onto a plain object, where `__proto__` is an accessor: that key is
 * dropped, so it cannot round-trip (and nothing can be polluted through it: values are strings).
 */
const metadataKey = boundedText(0, 40).filter((key) => key !== '__proto__');
export const metadata = fc.dictionary(metadataKey, boundedText(0, 200), { maxKeys: 6, noNullPrototype: true });
const reqId = boundedText(1, 64);
const smallJson: fc.Arbitrary<JsonValue> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>;

// ---------------------------------------------------------------------------------------------
// Client messages

export const helloMessage = fc.record({ type: fc.constant('hello' as const), version: fc.integer(), token: boundedText(0, 100) }, { requiredKeys: ['type', 'version'] });
export const createMessage = fc.record(
  {
    type: fc.constant('create' as const),
    reqId,
    name: boundedText(1, 200),
    size: offset,
    mimeType: boundedText(0, 60),
    metadata,
    sha256,
  },
  { requiredKeys: ['type', 'reqId', 'name', 'size'] },
);
/**
 * Every client message, with upload ids from `ids`: a transport test passes a placeholder it
 * replaces with the ids of uploads it created, so resume, cancel and watch meet real uploads.
 */
export function clientMessages(ids: fc.Arbitrary<string> = uploadId): fc.Arbitrary<ClientMessage> {
  return fc.oneof(
    helloMessage,
    createMessage,
    fc.record({ type: fc.constant('resume' as const), reqId, uploadId: ids }),
    fc.record({ type: fc.constant('cancel' as const), reqId, uploadId: ids }, { requiredKeys: ['type', 'uploadId'] }),
    fc.record(
      { type: fc.constant('watch' as const), reqId, uploadIds: fc.array(ids, { maxLength: 5 }), since: fc.maxSafeNat() },
      { requiredKeys: ['type'] },
    ),
    fc.record({ type: fc.constant('unwatch' as const), uploadIds: fc.array(ids, { maxLength: 5 }) }, { requiredKeys: ['type'] }),
    fc.record({ type: fc.constant('ping' as const), t: finiteNumber }),
  );
}

export const clientMessage: fc.Arbitrary<ClientMessage> = clientMessages();

// ---------------------------------------------------------------------------------------------
// Server messages

const percent = fc.double({ min: 0, max: 100, noNaN: true });
const errorInfo = fc.record({ code: fc.constantFrom(...ERROR_CODE_LIST), message: boundedText(0, 60), stage: boundedText(0, 20) }, { requiredKeys: ['code', 'message'] });

export const uploadStatus: fc.Arbitrary<UploadStatus> = fc.record(
  {
    id: uploadId,
    name: boundedText(0, 60),
    size: offset,
    mimeType: boundedText(0, 30),
    metadata,
    owner: boundedText(0, 20),
    state: fc.constantFrom(...UPLOAD_STATES),
    bytes: offset,
    percent,
    phase: fc.constantFrom(...PHASES),
    stage: boundedText(0, 20),
    stagePercent: percent,
    queuePosition: fc.integer({ min: 1, max: 1000 }),
    attached: fc.boolean(),
    sha256,
    createdAt: finiteNumber,
    updatedAt: finiteNumber,
    error: errorInfo,
    result: smallJson,
  },
  { requiredKeys: ['id', 'name', 'size', 'mimeType', 'metadata', 'owner', 'state', 'bytes', 'percent', 'phase', 'attached', 'createdAt', 'updatedAt'] },
);

const eventBase = { id: fc.integer({ min: 1, max: 2 ** 40 }), uploadId, at: finiteNumber };
export const hubEvent: fc.Arbitrary<HubEvent> = fc.oneof(
  fc.record({ ...eventBase, type: fc.constant('created' as const), upload: uploadStatus }),
  fc.record(
    {
      ...eventBase,
      type: fc.constant('progress' as const),
      bytes: offset,
      total: offset,
      percent,
      phase: fc.constantFrom(...PHASES),
      stage: boundedText(0, 20),
      stagePercent: percent,
      bytesPerSecond: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }),
      etaSeconds: fc.option(fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }), { nil: null }),
    },
    { requiredKeys: ['id', 'uploadId', 'at', 'type', 'bytes', 'total', 'percent', 'phase', 'bytesPerSecond', 'etaSeconds'] },
  ),
  fc.record({ ...eventBase, type: fc.constant('stage' as const), stage: boundedText(0, 20), index: fc.nat(10), count: fc.integer({ min: 1, max: 10 }) }),
  fc.record({ ...eventBase, type: fc.constant('log' as const), level: fc.constantFrom(...LOG_LEVELS), text: boundedText(0, 80), stage: boundedText(0, 20) }, { requiredKeys: ['id', 'uploadId', 'at', 'type', 'level', 'text'] }),
  fc.record({ ...eventBase, type: fc.constant('uploading' as const), bytes: offset }),
  fc.record({ ...eventBase, type: fc.constant('uploaded' as const), bytes: offset, sha256 }),
  fc.record({ ...eventBase, type: fc.constant('queued' as const), position: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ ...eventBase, type: fc.constant('processing' as const) }),
  fc.record({ ...eventBase, type: fc.constant('completed' as const), result: smallJson }, { requiredKeys: ['id', 'uploadId', 'at', 'type'] }),
  fc.record({ ...eventBase, type: fc.constant('failed' as const), error: errorInfo }),
  fc.record({ ...eventBase, type: fc.constant('cancelled' as const), stage: boundedText(0, 20) }, { requiredKeys: ['id', 'uploadId', 'at', 'type'] }),
  fc.record({ ...eventBase, type: fc.constant('expired' as const) }),
);

const limits = fc.record({
  maxFileSize: offset,
  maxChunkSize: fc.integer({ min: 1, max: 2 ** 31 }),
  chunkSize: fc.integer({ min: 1, max: 2 ** 31 }),
  maxUploadsPerConnection: fc.integer({ min: 1, max: 1000 }),
});

export const watchingMessage = fc.record(
  {
    type: fc.constant('watching' as const),
    reqId,
    uploads: fc.array(uploadStatus, { maxLength: 6 }),
    lastEventId: fc.maxSafeNat(),
    events: fc.array(hubEvent, { maxLength: 6 }),
  },
  { requiredKeys: ['type', 'uploads', 'lastEventId'] },
);

export const serverMessage: fc.Arbitrary<ServerMessage> = fc.oneof(
  fc.record({ type: fc.constant('welcome' as const), version: fc.integer(), principal: boundedText(0, 20), limits }),
  fc.record({ type: fc.constant('attached' as const), reqId, upload: uploadStatus, offset, window: fc.nat() }),
  fc.record({ type: fc.constant('ack' as const), uploadId, chunkOffset: offset, status: fc.constantFrom(...CHUNK_STATUSES), offset, window: fc.nat() }),
  fc.record({ type: fc.constant('event' as const), event: hubEvent }),
  watchingMessage,
  fc.record(
    { type: fc.constant('error' as const), code: fc.constantFrom(...ERROR_CODE_LIST), message: boundedText(0, 60), reqId, uploadId, chunkOffset: offset, offset },
    { requiredKeys: ['type', 'code', 'message'] },
  ),
  fc.record({ type: fc.constant('pong' as const), t: finiteNumber }),
  fc.record({ type: fc.constant('status' as const), reqId, upload: uploadStatus }),
);

// ---------------------------------------------------------------------------------------------
// Wild values and mutations

/**
 * Nested arrays deep enough to overflow a recursive walk (JSON.stringify, a recursive schema),
 * built once: fast-check's own report of them would overflow too, so they name themselves.
 */
function nested(depth: number): unknown[] {
  let value: unknown[] = [];
  for (let i = 0; i < depth; i++) value = [value];
  return Object.assign(value, { [fc.toStringMethod]: () => `<${depth} nested arrays>` });
}
export const DEEP_VALUES: readonly unknown[] = [nested(3_000), nested(12_000)];
export const deepNesting = fc.constantFrom(...DEEP_VALUES);
/** The same nesting as JSON text, for peers that send text. */
export const deepJsonText = fc.constantFrom(3_000, 40_000).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`);

/** What a hostile peer puts in a field: wrong types, edge numbers, unicode and huge strings. Serializable. */
export const wildValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 3, arbitrary: unicodeText(80) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(-1, 0, 1.5, -0.5, 2 ** 53, 2 ** 64, -(2 ** 53), Number.MAX_VALUE, Number.MIN_VALUE, 1e-300, '', '0', 'null', true, false, null, [], {}),
  },
  { weight: 1, arbitrary: fc.integer({ min: 60_000, max: 70_000 }).map((length) => 'é'.repeat(length / 2)) },
);

/** wildValue, and nesting too deep to serialize with JSON.stringify. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof({ weight: 8, arbitrary: wildValue }, { weight: 1, arbitrary: deepNesting });

/** A message with one field changed to a wild value, removed, added, or its type changed. */
export function mutatedMessage(valid: fc.Arbitrary<Record<string, unknown>>, values: fc.Arbitrary<unknown> = wildValue): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .tuple(valid, fc.nat(), values, fc.constantFrom('set', 'delete', 'add', 'type', 'typeOf'), boundedText(0, 12))
    .map(([message, pick, value, how, name]) => {
      const copy: Record<string, unknown> = { ...message };
      const keys = Object.keys(copy);
      const key = keys[pick % keys.length] as string;
      switch (how) {
        case 'set': copy[key] = value; break;
        case 'delete': delete copy[key]; break;
        case 'add': copy[name === '__proto__' ? 'proto' : name] = value; break;
        case 'type': copy.type = name; break;
        case 'typeOf': copy.type = value; break;
      }
      return copy;
    });
}

/** Text of a message with bytes flipped, cut short or spliced in. */
export function mutatedText(text: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(text, fc.nat(), fc.constantFrom('truncate', 'flip', 'insert'), unicodeText(4)).map(([source, at, how, piece]) => {
    const i = source.length === 0 ? 0 : at % source.length;
    if (how === 'truncate') return source.slice(0, i);
    if (how === 'insert') return source.slice(0, i) + piece + source.slice(i);
    return source.slice(0, i) + String.fromCharCode(source.charCodeAt(i) ^ (1 + (at % 127))) + source.slice(i + 1);
  });
}

/** A valid chunk frame for one of `ids` (or any id), at some offset, with a small payload. */
export function chunkFrame(ids: fc.Arbitrary<string> = uploadId, maxPayload = 2048): fc.Arbitrary<Uint8Array> {
  return fc.tuple(ids, fc.oneof(fc.nat({ max: 1 << 22 }), offset), fc.uint8Array({ maxLength: maxPayload })).map(([id, at, payload]) => encodeChunkFrame(id, at, payload));
}

/** A frame with bytes changed (the header most likely), its offset rewritten, cut short or extended. */
export function mutatedFrame(frame: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(frame, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.constantFrom('flip', 'header', 'offset', 'truncate', 'extend'), fc.uint8Array({ maxLength: 16 }))
    .map(([source, edits, how, extra]) => {
      const bytes = Uint8Array.from(source);
      const header = Math.min(bytes.byteLength, 2 + (bytes[1] ?? 0) + 8);
      switch (how) {
        case 'flip':
          for (const [at, value] of edits) if (bytes.byteLength > 0) bytes[at % bytes.byteLength] = value;
          return bytes;
        case 'header':
          for (const [at, value] of edits) if (header > 0) bytes[at % header] = value;
          return bytes;
        case 'offset': {
          const start = 2 + (bytes[1] ?? 0);
          for (const [at, value] of edits) if (start + 8 <= bytes.byteLength) bytes[start + (at % 8)] = value;
          return bytes;
        }
        case 'truncate':
          return bytes.subarray(0, (edits[0]?.[0] ?? 0) % (bytes.byteLength + 1));
        case 'extend': {
          const longer = new Uint8Array(bytes.byteLength + extra.byteLength);
          longer.set(bytes);
          longer.set(extra, bytes.byteLength);
          return longer;
        }
      }
    });
}

/** Bytes with a few changed, cut short, or with bytes spliced in: a damaged body. */
export function mutatedBytes(source: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(source, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.constantFrom('flip', 'truncate', 'splice'), fc.uint8Array({ minLength: 1, maxLength: 32 }))
    .map(([original, edits, how, extra]) => {
      const bytes = Uint8Array.from(original);
      if (bytes.byteLength === 0) return extra;
      const at = (edits[0]?.[0] ?? 0) % bytes.byteLength;
      if (how === 'truncate') return bytes.subarray(0, at);
      if (how === 'splice') return Uint8Array.from([...bytes.subarray(0, at), ...extra, ...bytes.subarray(at)]);
      for (const [where, value] of edits) bytes[where % bytes.byteLength] = value;
      return bytes;
    });
}
