/**
 * Property-based fuzzing of every decoder in shared/ (and the HTTP list cursor): whatever the
 * input, a decoder returns a valid value or throws an UploadHubError with the code its caller
 * documents, never anything else (a RangeError from a deep value, a TypeError); and what an
 * encoder writes, the decoder reads back as it was.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assertMessageSize, joinWatching, parseClientMessage, parseServerMessage, splitWatching, utf8ByteLength, validateClientMessage, validateServerMessage } from '../../shared/codec.js';
import { UploadHubError, type ErrorCode } from '../../shared/errors.js';
import { decodeChunkFrame, encodeChunkFrame, MAX_FRAME_HEADER_BYTES } from '../../shared/frame.js';
import type { ClientMessage } from '../../shared/messages.js';
import { CLIENT_EVENTS, isClientEventName, messageOf, parseClientEvent, validateChunkEvent } from '../../shared/socketio.js';
import { decodeCursor, encodeCursor, queryList } from '../../server/transports/http/rest.js';
import {
  anyUnit,
  chunkFrame,
  clientMessage,
  DEEP_VALUES,
  deepJsonText,
  deepNesting,
  FUZZ_SEED,
  hostileValue,
  mutatedFrame,
  mutatedMessage,
  mutatedText,
  offset,
  serverMessage,
  unicodeText,
  uploadId,
  watchingMessage,
  wildValue,
} from '../fuzzArbitraries.js';

const MESSAGE_CODES: readonly ErrorCode[] = ['ERR_BAD_MESSAGE', 'ERR_UNKNOWN_MESSAGE', 'ERR_MESSAGE_TOO_LARGE'];
const FRAME_CODES: readonly ErrorCode[] = ['ERR_BAD_FRAME'];
const LIMIT = 64 * 1024;

function runs(numRuns: number): fc.Parameters<unknown> {
  return { seed: FUZZ_SEED, numRuns };
}

/** The decoder's value, or the coded error it threw; anything else thrown fails the property. */
function decode<T>(codes: readonly ErrorCode[], fn: () => T): { value: T } | { error: UploadHubError } {
  try {
    return { value: fn() };
  } catch (error) {
    if (error instanceof UploadHubError && codes.includes(error.code)) return { error };
    throw new Error(`expected an UploadHubError with one of ${codes.join(', ')}, got ${String(error)}`, { cause: error });
  }
}

function payloadOf(message: ClientMessage): Record<string, unknown> {
  const { type: _type, ...payload } = message;
  return payload;
}

/** Any JSON text, valid or not: JSON of wild values, mutated messages, and plain noise. */
const anyText = fc.oneof(
  fc.json({ maxDepth: 4 }),
  clientMessage.map((message) => JSON.stringify(message)),
  mutatedMessage(clientMessage as fc.Arbitrary<Record<string, unknown>>).map((message) => JSON.stringify(message)),
  mutatedText(clientMessage.map((message) => JSON.stringify(message))),
  unicodeText(200),
  deepJsonText.map((deep) => `{"type":${deep}}`),
  deepJsonText.map((deep) => `{"type":"create","reqId":"r","name":${deep},"size":1}`),
);

describe('chunk frame decoder', () => {
  it('takes any bytes: a frame that re-encodes to the same bytes, or ERR_BAD_FRAME', () => {
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), chunkFrame(), mutatedFrame(chunkFrame())), (bytes) => {
      const result = decode(FRAME_CODES, () => decodeChunkFrame(bytes));
      if ('value' in result) {
        const { uploadId: id, offset: at, data } = result.value;
        expect(encodeChunkFrame(id, at, data)).toEqual(bytes);
        expect(data.byteLength).toBe(bytes.byteLength - (2 + id.length + 8));
      }
    }), runs(2000));
  });

  it('round-trips every valid id, offset and payload; the header stays within MAX_FRAME_HEADER_BYTES', () => {
    fc.assert(fc.property(uploadId, offset, fc.uint8Array({ maxLength: 300 }), (id, at, payload) => {
      const frame = encodeChunkFrame(id, at, payload);
      expect(frame.byteLength - payload.byteLength).toBeLessThanOrEqual(MAX_FRAME_HEADER_BYTES);
      const decoded = decodeChunkFrame(frame);
      expect(decoded.uploadId).toBe(id);
      expect(decoded.offset).toBe(at);
      expect(decoded.data).toEqual(payload);
    }), runs(1500));
  });

  it('refuses to encode an invalid id or offset with ERR_BAD_FRAME only', () => {
    fc.assert(fc.property(fc.oneof(uploadId, unicodeText(80)), fc.oneof(offset, fc.double(), fc.integer()), (id, at) => {
      const result = decode(FRAME_CODES, () => encodeChunkFrame(id, at, new Uint8Array(3)));
      // -0 is a valid offset, 0.
      if ('value' in result) expect(decodeChunkFrame(result.value)).toMatchObject({ uploadId: id, offset: at === 0 ? 0 : at });
    }), runs(1500));
  });
});

describe('control message codec', () => {
  it('parses any text or bytes into a valid message or ERR_BAD_MESSAGE / ERR_UNKNOWN_MESSAGE / ERR_MESSAGE_TOO_LARGE', () => {
    const encoder = new TextEncoder();
    fc.assert(fc.property(anyText, fc.boolean(), fc.integer({ min: 1, max: LIMIT }), (text, asBytes, limit) => {
      const result = decode(MESSAGE_CODES, () => parseClientMessage(asBytes ? encoder.encode(text) : text, limit));
      // What parses is valid: parsing it again gives it back unchanged.
      if ('value' in result) expect(parseClientMessage(JSON.stringify(result.value), Number.POSITIVE_INFINITY)).toEqual(result.value);
      // The size rule is checked first, on UTF-8 bytes.
      if (encoder.encode(text).byteLength > limit) expect(result).toMatchObject({ error: { code: 'ERR_MESSAGE_TOO_LARGE' } });
    }), runs(1500));
  });

  it('parses any bytes, invalid UTF-8 included, without throwing anything uncoded', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      decode(MESSAGE_CODES, () => parseClientMessage(bytes, LIMIT));
    }), runs(1000));
  });

  it('round-trips every valid client message, as text and as bytes', () => {
    const encoder = new TextEncoder();
    fc.assert(fc.property(clientMessage, (message) => {
      const text = JSON.stringify(message);
      expect(parseClientMessage(text, Number.POSITIVE_INFINITY)).toEqual(message);
      expect(parseClientMessage(encoder.encode(text), Number.POSITIVE_INFINITY)).toEqual(message);
    }), runs(1500));
  });

  it('validates any decoded value, deep and mutated ones included, with coded errors only', () => {
    const value = fc.oneof(hostileValue, mutatedMessage(clientMessage as fc.Arbitrary<Record<string, unknown>>, hostileValue));
    fc.assert(fc.property(value, (raw) => {
      decode(['ERR_BAD_MESSAGE', 'ERR_UNKNOWN_MESSAGE'], () => validateClientMessage(raw));
    }), runs(1500));
  });

  it('validates any message from the hub, deep results included, with coded errors only; valid ones round-trip', () => {
    const deepResult = deepNesting.map((deep) => ({ type: 'event', event: { type: 'completed', id: 1, uploadId: 'AAAAAAAAAA', at: 1, result: deep } }));
    // Few deep ones: each overflows the stack, which is slow.
    const raw = fc.oneof({ weight: 10, arbitrary: wildValue }, { weight: 1, arbitrary: deepResult }, { weight: 10, arbitrary: mutatedMessage(serverMessage as fc.Arbitrary<Record<string, unknown>>, hostileValue) });
    fc.assert(fc.property(raw, (value) => {
      decode(['ERR_BAD_MESSAGE', 'ERR_UNKNOWN_MESSAGE'], () => validateServerMessage(value));
    }), runs(500));
    fc.assert(fc.property(serverMessage, (message) => {
      expect(parseServerMessage(JSON.stringify(message))).toEqual(message);
    }), runs(750));
  });

  it('counts UTF-8 bytes of any string, lone surrogates included, as the encoder does', () => {
    fc.assert(fc.property(fc.string({ unit: anyUnit, maxLength: 300 }), fc.nat({ max: 1200 }), (text, limit) => {
      const bytes = Buffer.byteLength(text, 'utf8');
      expect(utf8ByteLength(text)).toBe(bytes);
      const result = decode(['ERR_MESSAGE_TOO_LARGE'], () => assertMessageSize(text, limit));
      expect('error' in result).toBe(bytes > limit);
    }), runs(2500));
  });

  it('splits any watching reply into pieces within the limit that join back to it', () => {
    fc.assert(fc.property(watchingMessage, fc.integer({ min: 64, max: 8192 }), (reply, limit) => {
      const pieces = splitWatching(reply, limit);
      for (const [i, piece] of pieces.entries()) {
        expect(validateServerMessage(JSON.parse(JSON.stringify(piece)))).toEqual(piece);
        expect(piece.more).toBe(i < pieces.length - 1 ? true : undefined);
        const items = piece.uploads.length + (piece.events?.length ?? 0);
        if (items > 1) expect(Buffer.byteLength(JSON.stringify(piece))).toBeLessThanOrEqual(limit);
      }
      expect(joinWatching(pieces)).toEqual(reply);
    }), runs(300));
    expect(decode(['ERR_BAD_MESSAGE'], () => joinWatching([]))).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
  });
});

describe('Socket.IO payload checks', () => {
  /** What socket.io-parser can hand a handler: JSON values, binary attachments, nothing. */
  const payload = fc.oneof(
    { weight: 4, arbitrary: hostileValue },
    { weight: 3, arbitrary: mutatedMessage(clientMessage as fc.Arbitrary<Record<string, unknown>>, hostileValue) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ reqId: 'r', name: Buffer.from(bytes), size: bytes.byteLength })) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );

  it('checks any chunk event arguments: a chunk, or ERR_BAD_FRAME', () => {
    const binary = fc.oneof(fc.uint8Array({ maxLength: 32 }), fc.uint8Array({ maxLength: 32 }).map((bytes) => Buffer.from(bytes)), fc.uint8Array({ maxLength: 32 }).map((bytes) => bytes.buffer));
    fc.assert(fc.property(fc.oneof(uploadId, hostileValue), fc.oneof(offset, hostileValue), fc.oneof(binary, hostileValue), (id, at, data) => {
      const result = decode(FRAME_CODES, () => validateChunkEvent(id, at, data));
      if ('value' in result) {
        expect(result.value).toMatchObject({ uploadId: id, offset: at });
        expect(result.value.data).toBeInstanceOf(Uint8Array);
      }
    }), runs(1500));
  });

  it('parses any payload of every client event into its message or a coded error; valid ones round-trip', () => {
    fc.assert(fc.property(fc.constantFrom(...CLIENT_EVENTS), payload, fc.integer({ min: 1, max: LIMIT }), (type, raw, limit) => {
      const result = decode(MESSAGE_CODES, () => parseClientEvent(type, raw, limit));
      if ('value' in result) expect(result.value.type).toBe(type);
      decode(['ERR_BAD_MESSAGE'], () => messageOf(type, raw));
    }), runs(1500));
    fc.assert(fc.property(clientMessage.filter((message) => message.type !== 'hello'), (message) => {
      expect(parseClientEvent(message.type as Exclude<ClientMessage['type'], 'hello'>, payloadOf(message), LIMIT * 16)).toEqual(message);
    }), runs(1000));
  });

  it('names only the protocol\'s events, whatever the string (inherited names included)', () => {
    fc.assert(fc.property(fc.oneof(unicodeText(20), fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'chunk', 'hello', ...CLIENT_EVENTS)), (name) => {
      expect(isClientEventName(name)).toBe((CLIENT_EVENTS as readonly string[]).includes(name));
    }), runs(1000));
  });
});

describe('HTTP list cursor', () => {
  it('decodes any string into a position or ERR_BAD_MESSAGE; encoded positions round-trip', () => {
    fc.assert(fc.property(fc.oneof(unicodeText(60), fc.base64String({ maxLength: 80 }).map((text) => text.replace(/=+$/, ''))), (cursor) => {
      decode(['ERR_BAD_MESSAGE'], () => decodeCursor(cursor));
    }), runs(1500));
    fc.assert(fc.property(fc.maxSafeNat(), uploadId, (createdAt, id) => {
      expect(decodeCursor(encodeCursor({ createdAt, id }))).toEqual({ createdAt, id });
    }), runs(1000));
  });

  it('reads any query value as a list of strings', () => {
    fc.assert(fc.property(fc.oneof(hostileValue, fc.array(hostileValue, { maxLength: 4 })), (value) => {
      for (const item of queryList(value)) expect(typeof item).toBe('string');
    }), runs(1000));
  });
});

describe('regressions found by fuzzing', () => {
  const deep = DEEP_VALUES.at(-1);

  it('a message whose type is nested too deep to print is ERR_UNKNOWN_MESSAGE, not a RangeError', () => {
    expect(decode(['ERR_UNKNOWN_MESSAGE'], () => validateClientMessage({ type: deep }))).toMatchObject({ error: { code: 'ERR_UNKNOWN_MESSAGE' } });
    expect(decode(['ERR_UNKNOWN_MESSAGE'], () => validateServerMessage({ type: deep }))).toMatchObject({ error: { code: 'ERR_UNKNOWN_MESSAGE' } });
  });

  it('a hub message whose result is nested too deep for the schema is ERR_BAD_MESSAGE, not a RangeError', () => {
    const event = { type: 'completed', id: 1, uploadId: 'AAAAAAAAAA', at: 1, result: deep };
    expect(decode(['ERR_BAD_MESSAGE'], () => validateServerMessage({ type: 'event', event }))).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
  });

  it('a Socket.IO payload nested too deep to measure is ERR_BAD_MESSAGE, like the same message over raw WebSocket', () => {
    expect(decode(MESSAGE_CODES, () => parseClientEvent('create', { reqId: 'r', name: deep, size: 1 }, LIMIT))).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
    const text = `{"type":"create","reqId":"r","name":${'['.repeat(3_000)}${']'.repeat(3_000)},"size":1}`;
    expect(decode(MESSAGE_CODES, () => parseClientMessage(text, LIMIT))).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
  });
});
