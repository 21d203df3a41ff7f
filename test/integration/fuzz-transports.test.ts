/**
 * Fuzzing every handler through each transport, against a hub in a child process: at least
 * 10,000 generated and mutated frames, events or requests per transport (fixed seed, so a
 * failure is reproducible from the seed fast-check prints). For each one the hub answers with
 * a coded error (or the reply the message asks for), or closes the connection with the
 * documented code; it never crashes; and a healthy upload on its own connection, started before
 * the fuzzing and finished after it, is stored byte for byte.
 *
 * Messages go in batches, pipelined on one connection; a connection is replaced only after
 * the hub closed it (each close is counted and its code checked). What the hub must answer is
 * predicted with the shared decoders (fuzzed on their own in test/unit/fuzz-decoders.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { io, type Socket } from 'socket.io-client';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseClientMessage, validateServerMessage } from '../../shared/codec.js';
import { ERROR_CODES, UploadHubError, type ErrorCode } from '../../shared/errors.js';
import { decodeChunkFrame } from '../../shared/frame.js';
import { PROTOCOL_VERSION, type ClientMessage, type ServerMessage } from '../../shared/messages.js';
import { CLIENT_EVENTS, CLOSING_EVENT, isClientEventName, parseClientEvent, validateChunkEvent } from '../../shared/socketio.js';
import type { TransportName, UploadProgress } from '../../client/UploadClient.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import { sha256File, sha256Of, startClient, startHub, tempDir, waitFor } from '../helpers.js';
import { freePort, spawnHub, type ChildHub } from '../protocolHelpers.js';
import {
  chunkFrame,
  clientMessages,
  createMessage,
  deepJsonText,
  FUZZ_SEED,
  metadata,
  mutatedBytes,
  mutatedFrame,
  mutatedMessage,
  mutatedText,
  sha256,
  unicodeText,
  uploadId,
  wildValue,
} from '../fuzzArbitraries.js';

const MiB = 1024 * 1024;
/** The hub's default maxMessageBytes: the size rule the predictions apply. */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** Every transport gets at least this many generated or mutated messages. */
const MIN_MESSAGES = 10_000;
const BATCH = { minLength: 220, maxLength: 260 };
const RUNS = 50;
/** How long the hub may take to answer one batch on a loaded machine. */
const ANSWER_MS = 60_000;
/** Stands for an upload id; replaced, when sent, by the id of an upload this connection created. */
const SLOT = 'SLOTSLOTSLOTSLOTSLOT00';
const ids = fc.oneof({ weight: 3, arbitrary: fc.constant(SLOT) }, { weight: 1, arbitrary: uploadId });
const messages = clientMessages(ids);

function fuzzParameters(): fc.Parameters<[unknown]> {
  // No shrinking against a live hub: the failing batch, the seed and its path are reported as they are.
  return { seed: FUZZ_SEED, numRuns: RUNS, endOnFailure: true };
}

// -----------------------------------------------------------------------------------------------
// The hub, and the healthy upload beside the fuzzing

/** A readable over `bytes` that lets out one more of `steps` pieces per step(), so an upload runs alongside the batches. */
function steppedStream(bytes: Buffer, steps: number) {
  const piece = Math.ceil(bytes.byteLength / steps);
  let released = 1;
  let wake: (() => void) | undefined;
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let i = 0; i < steps; i++) {
      while (i >= released) await new Promise<void>((resolve) => (wake = resolve));
      yield bytes.subarray(i * piece, Math.min((i + 1) * piece, bytes.byteLength));
    }
  }
  const release = (count: number) => {
    released = count;
    wake?.();
    wake = undefined;
  };
  return { stream: Readable.from(pieces(), { objectMode: false }), step: () => release(released + 1), finish: () => release(steps) };
}

interface FuzzHub {
  child: ChildHub;
  dataDir: string;
  /** Lets the healthy upload go on a little; called after each batch. */
  step(): void;
  /** Lets the healthy upload finish, then checks it is stored byte for byte and the hub still runs. */
  finish(): Promise<void>;
}

async function fuzzHub(healthyTransport: TransportName): Promise<FuzzHub> {
  const dataDir = await tempDir();
  const child = await spawnHub(dataDir, await freePort(), {
    // Watch replies listing every upload the fuzzing created, pipelined, must not trip the slow-consumer bound.
    env: { WATCHER_MAX_BUFFERED_BYTES: String(16 * MiB) },
  });
  const client = startClient({ url: child.url, transport: healthyTransport });
  const bytes = randomBytes(6 * MiB);
  const stepped = steppedStream(bytes, RUNS + 1);
  const upload = client.upload(stepped.stream, { size: bytes.byteLength, name: 'healthy.bin', sha256: sha256Of(bytes) });
  await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes > 0);
  return {
    child,
    dataDir,
    step: stepped.step,
    async finish() {
      stepped.finish();
      const result = await upload.done;
      expect(result.sha256).toBe(sha256Of(bytes));
      expect(await sha256File(join(dataDir, 'uploads', `${result.id}.data`))).toBe(sha256Of(bytes));
      expect(child.process.exitCode, child.output()).toBeNull();
      expect(child.process.signalCode, child.output()).toBeNull();
      expect((await fetch(`${child.url}/healthz`)).status).toBe(200);
    },
  };
}

/** Runs the fuzzing; if it fails, says what the hub printed last (a crash's stack, say). */
async function reportingHub<T>(hub: FuzzHub, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const state = hub.child.process.exitCode ?? hub.child.process.signalCode;
    const tail = hub.child.output().slice(-4000);
    throw new Error(`${(error as Error).message}\n--- hub ${state === null ? 'still running' : `exited (${state})`}; its last output:\n${tail}`, { cause: error });
  }
}

// -----------------------------------------------------------------------------------------------
// What the hub must answer, and what it did

/** Answers a connection must get: bare errors by code, replies by reqId, chunk replies, pongs. */
class Ledger {
  readonly bare = new Map<string, number>();
  readonly reqIds = new Set<string>();
  readonly chunks = new Map<string, number>();
  readonly pongs = new Map<string, number>();

  static chunkKey(id: string, offset: number): string {
    return `${id}@${offset}`;
  }

  /** The answers a control message that the shared decoder read as `message` (or refused with `error`) asks for. */
  expectMessage(outcome: { message: ClientMessage } | { error: UploadHubError }): void {
    if ('error' in outcome) return add(this.bare, outcome.error.code);
    const message = outcome.message;
    if (message.type === 'ping') add(this.pongs, JSON.stringify(message.t));
    else if ('reqId' in message && message.reqId !== undefined) this.reqIds.add(message.reqId);
  }
}

function add(counts: Map<string, number>, key: string, by = 1): void {
  counts.set(key, (counts.get(key) ?? 0) + by);
}

/** What one connection received, each message checked against the protocol's schema. */
class Inbox {
  readonly seen = new Ledger();
  readonly problems: string[] = [];
  readonly attachedIds: string[] = [];
  received = 0;
  private readonly waiters = new Set<() => void>();

  record(raw: unknown): void {
    this.received++;
    let message: ServerMessage;
    try {
      message = validateServerMessage(raw);
    } catch (error) {
      this.problems.push(`not a protocol message (${(error as Error).message}): ${JSON.stringify(raw)?.slice(0, 300)}`);
      return;
    }
    const reqId = 'reqId' in message ? message.reqId : undefined;
    if (reqId !== undefined) this.seen.reqIds.add(reqId);
    if (message.type === 'attached' && message.window > 0) this.attachedIds.push(message.upload.id);
    if (message.type === 'pong') add(this.seen.pongs, JSON.stringify(message.t));
    if (message.type === 'ack') add(this.seen.chunks, Ledger.chunkKey(message.uploadId, message.chunkOffset));
    if (message.type === 'error') {
      if (message.chunkOffset !== undefined && message.uploadId !== undefined) add(this.seen.chunks, Ledger.chunkKey(message.uploadId, message.chunkOffset));
      else if (reqId === undefined && message.uploadId === undefined) add(this.seen.bare, message.code);
    }
    for (const waiter of [...this.waiters]) waiter();
  }

  /** What of `expected` has not come yet, or undefined when all of it has. */
  missing(expected: Ledger): string | undefined {
    const lacking: string[] = [];
    for (const [code, count] of expected.bare) if ((this.seen.bare.get(code) ?? 0) < count) lacking.push(`${count - (this.seen.bare.get(code) ?? 0)} error(s) ${code}`);
    for (const reqId of expected.reqIds) if (!this.seen.reqIds.has(reqId)) lacking.push(`reply to reqId ${JSON.stringify(reqId)}`);
    for (const [key, count] of expected.chunks) if ((this.seen.chunks.get(key) ?? 0) < count) lacking.push(`chunk reply ${key}`);
    for (const [t, count] of expected.pongs) if ((this.seen.pongs.get(t) ?? 0) < count) lacking.push(`pong ${t}`);
    return lacking.length === 0 ? undefined : `${lacking.length} answers missing: ${lacking.slice(0, 8).join('; ')}`;
  }

  /** Resolves once everything expected has come; rejects when `closed` settles first or time runs out. */
  until(expected: Ledger, closed: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        this.waiters.delete(check);
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (this.problems.length > 0) done(new Error(this.problems.join('\n')));
        else if (this.missing(expected) === undefined) done();
      };
      const timer = setTimeout(() => done(new Error(`no complete answer within ${ANSWER_MS} ms: ${this.missing(expected)}`)), ANSWER_MS);
      void closed.then((how) => done(new Error(`the hub closed the connection (${JSON.stringify(how)}) before answering: ${this.missing(expected)}`)));
      this.waiters.add(check);
      check();
    });
  }

  /** The next upload this connection attached, in turn, for a SLOT; SLOT itself (unknown to the hub) while there is none. */
  pickId(counter: number): string {
    return this.attachedIds.length === 0 ? SLOT : (this.attachedIds[counter % this.attachedIds.length] as string);
  }
}

/** `promise`'s value, or undefined after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function decodeOutcome(decode: () => ClientMessage): { message: ClientMessage } | { error: UploadHubError } {
  try {
    return { message: decode() };
  } catch (error) {
    if (error instanceof UploadHubError) return { error };
    throw error;
  }
}

// -----------------------------------------------------------------------------------------------
// Raw WebSocket

interface WsPeer {
  socket: WebSocket;
  inbox: Inbox;
  closed: Promise<{ code: number; reason: string }>;
}

async function openWs(url: string): Promise<WsPeer> {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/ws`);
  const inbox = new Inbox();
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  socket.on('error', () => undefined);
  let welcomed: () => void = () => undefined;
  const welcome = new Promise<void>((resolve) => (welcomed = resolve));
  socket.on('message', (data, isBinary) => {
    if (isBinary) return inbox.problems.push('a binary frame from the hub');
    const text = (data as Buffer).toString();
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return inbox.problems.push(`not JSON from the hub: ${text.slice(0, 200)}`);
    }
    if ((raw as { type?: unknown }).type === 'welcome') welcomed();
    inbox.record(raw);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  socket.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION }));
  await welcome;
  return { socket, inbox, closed };
}

type WsItem = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Uint8Array };

const wsText: fc.Arbitrary<string> = fc.oneof(
  { weight: 30, arbitrary: messages.map((message) => JSON.stringify(message)) },
  { weight: 40, arbitrary: mutatedMessage(messages as fc.Arbitrary<Record<string, unknown>>).map((message) => JSON.stringify(message)) },
  { weight: 20, arbitrary: mutatedText(messages.map((message) => JSON.stringify(message))) },
  { weight: 20, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 10, arbitrary: unicodeText(100) },
  { weight: 1, arbitrary: deepJsonText.map((deep) => `{"type":"watch","uploadIds":${deep}}`) },
);

const wsBatch = fc.record({
  items: fc.array(
    fc.oneof(
      { weight: 7, arbitrary: wsText.map((text): WsItem => ({ kind: 'text', text })) },
      { weight: 2, arbitrary: chunkFrame(ids, 4096).map((bytes): WsItem => ({ kind: 'binary', bytes })) },
      { weight: 2, arbitrary: mutatedFrame(chunkFrame(ids)).map((bytes): WsItem => ({ kind: 'binary', bytes })) },
    ),
    BATCH,
  ),
  /** How the batch ends: the connection stays, or a frame the hub cannot parse, or text that is not UTF-8. */
  ender: fc.constantFrom('none', 'none', 'frame', 'utf8'),
  junk: fc.uint8Array({ minLength: 1, maxLength: 24 }),
});

/** Puts the ids of this connection's uploads in place of SLOT, in text or in a frame's bytes. */
function fillSlots(inbox: Inbox, counter: { n: number }, text: string): string {
  return text.includes(SLOT) ? text.replaceAll(SLOT, () => inbox.pickId(counter.n++)) : text;
}

function fillFrameSlot(inbox: Inbox, counter: { n: number }, bytes: Uint8Array): Uint8Array {
  const buffer = Buffer.from(bytes);
  const at = buffer.indexOf(SLOT);
  if (at >= 0) buffer.write(inbox.pickId(counter.n++), at, 'latin1');
  return buffer;
}

describe('fuzzing the raw WebSocket transport', () => {
  it('answers 10,000 generated and mutated text and binary frames with codes or documented closes; a healthy upload completes', async () => {
    const hub = await fuzzHub('ws');
    const stats = { sent: 0, connections: 0, closes: new Map<string, number>() };
    let peer: WsPeer | undefined;
    let expected = new Ledger();
    const counter = { n: 0 };
    await reportingHub(hub, async () => {
      await fc.assert(fc.asyncProperty(wsBatch, async ({ items, ender, junk }) => {
        hub.step();
        if (!peer) {
          peer = await openWs(hub.child.url);
          stats.connections++;
          expected = new Ledger();
        }
        const { socket, inbox } = peer;
        let unparsable: Uint8Array | undefined;
        for (const item of items) {
          if (item.kind === 'text') {
            const text = fillSlots(inbox, counter, item.text);
            expected.expectMessage(decodeOutcome(() => parseClientMessage(Buffer.from(text), MAX_MESSAGE_BYTES)));
            socket.send(text);
            stats.sent++;
            continue;
          }
          const bytes = fillFrameSlot(inbox, counter, item.bytes);
          let frame;
          try {
            frame = decodeChunkFrame(bytes);
          } catch {
            // A frame the hub cannot parse ends the connection: it can only come last.
            unparsable ??= bytes;
            continue;
          }
          add(expected.chunks, Ledger.chunkKey(frame.uploadId, frame.offset));
          socket.send(bytes);
          stats.sent++;
        }
        const sentinel = { type: 'ping' as const, t: 1e15 + stats.sent };
        expected.expectMessage({ message: sentinel });
        socket.send(JSON.stringify(sentinel));
        await inbox.until(expected, peer.closed);
        if (ender === 'none') return;
        if (ender === 'frame') {
          // The kind byte 0 makes the junk unparsable whatever follows.
          socket.send(unparsable ?? Uint8Array.from([0, ...junk]));
          add(expected.bare, 'ERR_BAD_FRAME');
        } else {
          socket.send(Buffer.from([0x22, 0xff, ...junk, 0x22]), { binary: false });
        }
        stats.sent++;
        const closed = await within(peer.closed, ANSWER_MS);
        if (ender === 'frame') {
          // The documented close: 4000 + the code's status, the code as the reason, after the error.
          expect(closed).toEqual({ code: ERROR_CODES.ERR_BAD_FRAME.closeCode, reason: 'ERR_BAD_FRAME' });
          expect(inbox.missing(expected)).toBeUndefined();
        } else {
          // WebSocket's own code for a text frame that is not UTF-8 (the ws library answers it).
          expect(closed?.code).toBe(1007);
        }
        add(stats.closes, String(closed?.code));
        expect(inbox.problems).toEqual([]);
        peer = undefined;
      }), fuzzParameters());
    });
    peer?.socket.close();
    expect(stats.sent).toBeGreaterThanOrEqual(MIN_MESSAGES);
    // A new connection only after the hub closed the previous one.
    expect(stats.connections).toBe([...stats.closes.values()].reduce((sum, n) => sum + n, 0) + (peer ? 1 : 0));
    expect(stats.closes.size).toBe(2);
    await hub.finish();
  });
});

// -----------------------------------------------------------------------------------------------
// Socket.IO

interface SioPeer {
  socket: Socket;
  inbox: Inbox;
  /** The disconnect reason, and the `closing` payload that came before it, if any. */
  closed: Promise<{ reason: string; closing: unknown }>;
}

async function openSio(url: string): Promise<SioPeer> {
  const socket: Socket = io(url, { transports: ['websocket'], auth: { version: PROTOCOL_VERSION }, reconnection: false, forceNew: true });
  const inbox = new Inbox();
  let closing: unknown;
  const closed = new Promise<{ reason: string; closing: unknown }>((resolve) => socket.once('disconnect', (reason) => resolve({ reason, closing })));
  socket.onAny((name: string, ...args: unknown[]) => {
    if (name === CLOSING_EVENT) {
      closing = args[0];
      return;
    }
    const payload = args[0];
    if (args.length !== 1 || typeof payload !== 'object' || payload === null) {
      inbox.problems.push(`event ${name} with arguments ${JSON.stringify(args).slice(0, 200)}`);
      return;
    }
    inbox.record({ ...payload, type: name });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('welcome', () => resolve());
    socket.once('connect_error', reject);
  });
  return { socket, inbox, closed };
}

/** What a value becomes on its way through socket.io-parser: JSON, with binary kept as Buffers. */
function transit(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : transit(item)));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // JSON.parse makes `__proto__` an own key, not the prototype.
      if (item !== undefined) Object.defineProperty(out, key, { value: transit(item), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value + 0 : null;
  return value;
}

/** SLOT replaced in every string of a (shallow, serializable) value. */
function fillValue(inbox: Inbox, counter: { n: number }, value: unknown): unknown {
  if (typeof value === 'string') return fillSlots(inbox, counter, value);
  if (Array.isArray(value)) return value.map((item) => fillValue(inbox, counter, item));
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) Object.defineProperty(out, key, { value: fillValue(inbox, counter, item), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}

/** Event names socket.io-client refuses to emit (they are its own). */
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

type SioItem = { kind: 'emit'; name: string; args: unknown[] } | { kind: 'chunk'; args: unknown[] } | { kind: 'raw'; text: string };

const binary = fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes));
const payloadOf = (message: Record<string, unknown>): [string, Record<string, unknown>] => {
  const { type, ...payload } = message;
  return [typeof type === 'string' ? type : String(type), payload];
};
const sioItem: fc.Arbitrary<SioItem> = fc.oneof(
  { weight: 30, arbitrary: messages.map((message): SioItem => {
    const [name, payload] = payloadOf(message);
    return { kind: 'emit', name, args: [payload] };
  }) },
  { weight: 35, arbitrary: mutatedMessage(messages as fc.Arbitrary<Record<string, unknown>>).map((message): SioItem => {
    const [name, payload] = payloadOf(message);
    return { kind: 'emit', name, args: [payload] };
  }) },
  { weight: 15, arbitrary: fc.record({
    name: fc.oneof(fc.constantFrom(...CLIENT_EVENTS, 'hello', 'ack', 'welcome', 'error', 'closing', '__proto__', 'toString', ''), unicodeText(20)),
    args: fc.array(fc.oneof(wildValue, binary, fc.record({ reqId: fc.constant('bin'), name: binary, size: fc.nat(), metadata })), { maxLength: 3 }),
  }).map(({ name, args }): SioItem => ({ kind: 'emit', name, args })) },
  { weight: 15, arbitrary: fc.tuple(ids, fc.nat({ max: 1 << 22 }), binary).map((args): SioItem => ({ kind: 'chunk', args })) },
  { weight: 5, arbitrary: fc.tuple(fc.oneof(ids, wildValue), fc.oneof(fc.nat(), wildValue), fc.oneof(binary, wildValue), fc.nat({ max: 4 })).map(([id, at, data, count]): SioItem => ({ kind: 'chunk', args: [id, at, data, 'extra'].slice(0, count) })) },
  { weight: 1, arbitrary: deepJsonText.map((deep): SioItem => ({ kind: 'raw', text: `2["create",{"reqId":"deep","name":${deep},"size":1}]` })) },
).filter((item) => item.kind !== 'emit' || (!RESERVED.has(item.name) && item.name !== 'chunk'));

/** Text that is no Socket.IO packet (unknown type, reserved name, not an array, cut JSON). */
const badPacket = fc.oneof(
  fc.string({ maxLength: 20 }).map((rest) => `9${rest}`),
  fc.constantFrom('2["disconnect",{}]', '2["connect"]', '2{"not":"an array"}', '2["create",{', '2[]', '51-["chunk","AAAAAAAAAA",0,{"_placeholder":true,"num":0}]2["ping",{"t":1}]'),
);

const sioBatch = fc.record({ items: fc.array(sioItem, BATCH), ender: fc.constantFrom('none', 'none', 'chunk', 'packet'), packet: badPacket });

describe('fuzzing the Socket.IO transport', () => {
  it('answers 10,000 generated and mutated events, payloads and binary attachments with codes or documented closes; a healthy upload completes', async () => {
    const hub = await fuzzHub('socket.io');
    const stats = { sent: 0, connections: 0, closes: new Map<string, number>() };
    let peer: SioPeer | undefined;
    let expected = new Ledger();
    const counter = { n: 0 };
    await reportingHub(hub, async () => {
      await fc.assert(fc.asyncProperty(sioBatch, async ({ items, ender, packet }) => {
        hub.step();
        if (!peer) {
          peer = await openSio(hub.child.url);
          stats.connections++;
          expected = new Ledger();
        }
        const { socket, inbox } = peer;
        let fatalChunk: unknown[] | undefined;
        for (const item of items) {
          if (item.kind === 'raw') {
            const [name, payload] = JSON.parse(item.text.slice(1)) as [string, unknown];
            expected.expectMessage(decodeOutcome(() => parseClientEvent(name as (typeof CLIENT_EVENTS)[number], payload, MAX_MESSAGE_BYTES)));
            socket.io.engine.send(item.text);
          } else if (item.kind === 'emit') {
            const args = fillValue(inbox, counter, item.args) as unknown[];
            if (isClientEventName(item.name)) {
              const name = item.name;
              expected.expectMessage(decodeOutcome(() => parseClientEvent(name, transit(args[0]), MAX_MESSAGE_BYTES)));
            } else {
              add(expected.bare, 'ERR_UNKNOWN_MESSAGE');
            }
            socket.emit(item.name, ...args);
          } else {
            const args = fillValue(inbox, counter, item.args) as unknown[];
            const [id, at, data] = transit(args) as unknown[];
            let frame;
            try {
              if (args.length !== 3) throw new UploadHubError('ERR_BAD_FRAME');
              frame = validateChunkEvent(id, at, data);
            } catch {
              // Malformed chunk arguments end the connection: they can only come last.
              fatalChunk ??= args;
              continue;
            }
            add(expected.chunks, Ledger.chunkKey(frame.uploadId, frame.offset));
            socket.emit('chunk', ...args, (reply: unknown) => inbox.record(reply));
          }
          stats.sent++;
        }
        const sentinel = { type: 'ping' as const, t: 1e15 + stats.sent };
        expected.expectMessage({ message: sentinel });
        socket.emit('ping', { t: sentinel.t });
        await inbox.until(expected, peer.closed);
        if (ender === 'none') return;
        if (ender === 'chunk') {
          socket.emit('chunk', ...(fatalChunk ?? ['not an id', -1, 'not bytes']), (reply: unknown) => inbox.record(reply));
          add(expected.bare, 'ERR_BAD_FRAME');
        } else {
          socket.io.engine.send(packet);
        }
        stats.sent++;
        const closed = await within(peer.closed, ANSWER_MS);
        if (ender === 'chunk') {
          // The documented close: error, then `closing` with the code, then the hub's disconnect.
          expect(closed).toEqual({ reason: 'io server disconnect', closing: { code: 'ERR_BAD_FRAME', message: expect.any(String) } });
          expect(inbox.missing(expected)).toBeUndefined();
        } else {
          // A packet Socket.IO cannot parse: Engine.IO closes the connection, without `closing`.
          expect(closed).toEqual({ reason: 'transport close', closing: undefined });
        }
        add(stats.closes, closed?.reason ?? 'none');
        expect(inbox.problems).toEqual([]);
        socket.close();
        peer = undefined;
      }), fuzzParameters());
    });
    peer?.socket.close();
    expect(stats.sent).toBeGreaterThanOrEqual(MIN_MESSAGES);
    expect(stats.connections).toBe([...stats.closes.values()].reduce((sum, n) => sum + n, 0) + (peer ? 1 : 0));
    expect(stats.closes.size).toBe(2);
    await hub.finish();
  });
});

// -----------------------------------------------------------------------------------------------
// HTTP

interface HttpItem {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
}

/** Percent-encodes every byte of the UTF-8 (lone surrogates become U+FFFD) but the unreserved ones. */
function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text)) out += /[A-Za-z0-9_.~-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).padStart(2, '0')}`;
  return out;
}

const ascii = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength });
const segment = fc.oneof(
  { weight: 3, arbitrary: fc.constant(SLOT) },
  { weight: 2, arbitrary: uploadId },
  { weight: 2, arbitrary: unicodeText(12).map(percentEncode) },
  { weight: 2, arbitrary: fc.constantFrom('%', '%E0%A4%A', '%%', '%2e%2e', '..', 'multipart', 'events', '%00', '%2F', 'a;b', 'A'.repeat(300), '') },
);
const path = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('/api/uploads', '/api/uploads/multipart', '/api/events', '/api', '/api/', '/api/uploads/') },
  { weight: 4, arbitrary: segment.map((id) => `/api/uploads/${id}`) },
  { weight: 2, arbitrary: segment.map((id) => `/api/uploads/${id}/events`) },
  { weight: 1, arbitrary: segment.map((name) => `/api/${name}`) },
  { weight: 1, arbitrary: fc.tuple(segment, segment).map(([a, b]) => `/api/uploads/${a}/${b}`) },
);
const queryKey = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('state', 'limit', 'cursor', 'order', 'upload', 'wait', 'lastEventId', 'token') },
  { weight: 1, arbitrary: fc.oneof(unicodeText(6).map(percentEncode), fc.constantFrom('state[a]', 'limit[]', '__proto__', '')) },
);
const queryValue = fc.oneof(
  fc.constantFrom('completed', 'uploading,failed', 'asc', 'desc', '-1', '0', '1', '1000', '1001', '1e3', 'abc', '%', '%ZZ', '', SLOT),
  uploadId,
  unicodeText(10).map(percentEncode),
  fc.nat().map(String),
);
const query = fc.array(fc.tuple(queryKey, queryValue), { maxLength: 5 }).map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([key, value]) => `${key}=${value}`).join('&')}`));
const headers = fc.record(
  {
    'content-type': fc.oneof(
      fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=utf-16', 'application/json; charset=koi8-r', 'multipart/form-data', 'multipart/form-data; boundary=', 'text/plain', 'application/x-www-form-urlencoded', '*/*', ''),
      ascii(30),
    ),
    accept: fc.constantFrom('text/event-stream', 'application/x-ndjson', '*/*', 'application/json', 'text/html', 'application/x-ndjson;q=0.5, text/event-stream;q=0.1'),
    authorization: fc.oneof(fc.constantFrom('Bearer ', 'Bearer x', 'Basic abc'), ascii(40)),
    cookie: fc.oneof(fc.constantFrom('upload_hub_token=%E0', 'upload_hub_token="x"'), ascii(40)),
    'last-event-id': fc.oneof(fc.constantFrom('0', '1', '99999999999999999', '-1', 'abc'), ascii(10)),
    'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'foo', 'gzip, gzip'),
    origin: fc.constantFrom('http://evil.example', 'null'),
    'x-fuzz': ascii(100),
  },
  { requiredKeys: [] },
);

const field = fc.oneof(fc.constantFrom('file', 'size', 'sha256', 'note'), unicodeText(8));
const multipart = fc
  .record({
    boundary: fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/),
    fields: fc.array(fc.tuple(field, unicodeText(30)), { maxLength: 3 }),
    files: fc.array(
      fc.record({
        field,
        filename: fc.oneof(boundedAscii(20), unicodeText(12), fc.constant('')),
        type: fc.constantFrom('application/octet-stream', 'text/plain', 'image/png'),
        content: fc.uint8Array({ maxLength: 4096 }),
        declare: fc.constantFrom('none', 'size', 'wrong size', 'sha256', 'wrong sha256'),
        wrongSha: sha256,
      }),
      { maxLength: 3 },
    ),
  })
  .map(({ boundary, fields, files }) => {
    const parts: Buffer[] = [];
    const text = (name: string, value: string) => parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
    for (const [name, value] of fields) text(name, value);
    for (const file of files) {
      if (file.declare === 'size' || file.declare === 'wrong size') text('size', String(file.content.byteLength + (file.declare === 'size' ? 0 : 7)));
      if (file.declare === 'sha256' || file.declare === 'wrong sha256') text('sha256', file.declare === 'sha256' ? sha256Of(file.content) : file.wrongSha);
      parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.field}"; filename="${file.filename}"\r\nContent-Type: ${file.type}\r\n\r\n`), Buffer.from(file.content), Buffer.from('\r\n'));
    }
    parts.push(Buffer.from(`--${boundary}--\r\n`));
    return { bytes: new Uint8Array(Buffer.concat(parts)), type: `multipart/form-data; boundary=${boundary}` };
  });
function boundedAscii(maxLength: number) {
  return fc.stringMatching(new RegExp(`^[A-Za-z0-9 ._-]{0,${maxLength}}$`));
}

const createBody = createMessage.map(({ type: _type, reqId: _reqId, ...body }) => ({ ...body, size: body.size % (1 << 20) }));
const json = (value: unknown) => new Uint8Array(Buffer.from(JSON.stringify(value)));
const body: fc.Arbitrary<{ bytes: Uint8Array; type?: string } | undefined> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: createBody.map((value) => ({ bytes: json(value), type: 'application/json' })) },
  { weight: 3, arbitrary: mutatedMessage(createBody as fc.Arbitrary<Record<string, unknown>>).map((value) => ({ bytes: json(value), type: 'application/json' })) },
  { weight: 2, arbitrary: fc.json({ maxDepth: 3 }).map((text) => ({ bytes: new Uint8Array(Buffer.from(text)), type: 'application/json' })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((bytes) => ({ bytes })) },
  { weight: 3, arbitrary: multipart },
  { weight: 3, arbitrary: fc.tuple(mutatedBytes(multipart.map((form) => form.bytes)), multipart).map(([bytes, form]) => ({ bytes, type: form.type })) },
  { weight: 1, arbitrary: fc.constant({ bytes: json({ name: 'é'.repeat(40_000), size: 1 }), type: 'application/json' }) },
  { weight: 1, arbitrary: deepJsonText.map((deep) => ({ bytes: new Uint8Array(Buffer.from(`{"name":${deep},"size":1}`)), type: 'application/json' })) },
);

const httpItem: fc.Arbitrary<HttpItem> = fc
  .record({
    method: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'DELETE') },
      { weight: 1, arbitrary: fc.constantFrom('PUT', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND', 'PURGE', 'LOCK', 'SEARCH') },
    ),
    path,
    query,
    headers,
    body,
    typed: fc.boolean(),
  })
  .map(({ method, path: route, query: search, headers: fields, body: content, typed }) => {
    const all: Record<string, string> = { ...fields };
    // Mostly the type that fits the body, sometimes whatever the generator picked.
    if (content?.type !== undefined && (typed || all['content-type'] === undefined)) all['content-type'] = content.type;
    return { method, path: `${route}${search}`, headers: all, body: content?.bytes };
  });

const STREAM_TYPES = ['text/event-stream', 'application/x-ndjson'];

/** What is wrong with an answer, if anything: errors are JSON `{ error: { code } }` with that code's status. */
function judge(item: HttpItem, status: number, type: string, text: string | undefined): string | undefined {
  if (status >= 200 && status < 300) {
    if (status === 204 || item.method === 'OPTIONS' || STREAM_TYPES.some((stream) => type.startsWith(stream))) return undefined;
    if (!type.startsWith('application/json')) return `${status} with ${type || 'no Content-Type'}`;
    if (text === undefined) return undefined;
    try {
      JSON.parse(text);
      return undefined;
    } catch {
      return `${status} with a body that is not JSON: ${text.slice(0, 200)}`;
    }
  }
  if (status < 400) return `status ${status}`;
  if (!type.startsWith('application/json')) return `${status} with ${type || 'no Content-Type'}: ${text?.slice(0, 200)}`;
  if (text === undefined) return undefined;
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
  } catch {
    return `${status} with a body that is not JSON: ${text.slice(0, 200)}`;
  }
  if (typeof code !== 'string' || !Object.hasOwn(ERROR_CODES, code)) return `${status} without a known code: ${text.slice(0, 200)}`;
  if (ERROR_CODES[code as ErrorCode].status !== status) return `${status} with ${code}, whose status is ${ERROR_CODES[code as ErrorCode].status}`;
  return undefined;
}

/** Sends one request; resolves with what is wrong with its answer, if anything. Streams are closed once they start. */
function exchange(url: string, agent: Agent, item: HttpItem, created: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    const describe = (problem: string) => `${item.method} ${item.path} ${JSON.stringify(item.headers)} body ${item.body?.byteLength ?? 0} bytes: ${problem}`;
    let settled = false;
    const settle = (problem: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(problem === undefined ? undefined : describe(problem));
    };
    const timer = setTimeout(() => {
      settle(`no answer within ${ANSWER_MS} ms`);
      req.destroy();
    }, ANSWER_MS);
    // Node's client frames no body of a GET or DELETE by itself: the length says where it ends.
    const headers = item.body === undefined ? item.headers : { ...item.headers, 'content-length': String(item.body.byteLength) };
    // The path as it is: a URL object would resolve `%2e%2e` as `..` before sending.
    const { hostname, port } = new URL(url);
    const req = httpRequest({ hostname, port, path: item.path, method: item.method, headers, agent }, (res) => {
      const type = String(res.headers['content-type'] ?? '');
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300 && STREAM_TYPES.some((stream) => type.startsWith(stream))) {
        settle(undefined);
        res.destroy();
        return;
      }
      const pieces: Buffer[] = [];
      res.on('data', (piece: Buffer) => pieces.push(piece));
      res.on('error', () => undefined);
      res.on('end', () => {
        const text = item.method === 'HEAD' ? undefined : Buffer.concat(pieces).toString();
        if (status === 201 && text !== undefined) created.push((JSON.parse(text) as { id: string }).id);
        if (text !== undefined && item.path.startsWith('/api/uploads/multipart') && type.startsWith('application/json')) {
          for (const upload of (JSON.parse(text) as { uploads?: Array<{ id?: string }> }).uploads ?? []) if (upload.id) created.push(upload.id);
        }
        settle(judge(item, status, type, text));
      });
    });
    req.on('error', (error) => settle(`no answer: ${error.message}`));
    req.end(item.body);
  });
}

describe('fuzzing the HTTP routes', () => {
  it('answers 10,000 generated and mutated requests to every route under /api with a coded JSON error or a success; a healthy upload completes', async () => {
    const hub = await fuzzHub('ws');
    const agent = new Agent({ keepAlive: true, maxSockets: 6 });
    const created: string[] = [];
    let sent = 0;
    let turn = 0;
    const fill = (item: HttpItem): HttpItem => ({
      ...item,
      path: item.path.replaceAll(SLOT, () => (created.length === 0 ? SLOT : (created[turn++ % created.length] as string))),
    });
    await reportingHub(hub, async () => {
      await fc.assert(fc.asyncProperty(fc.array(httpItem, BATCH), async (items) => {
        hub.step();
        const problems: string[] = [];
        const queue = items.map(fill);
        sent += queue.length;
        await Promise.all(Array.from({ length: 6 }, async () => {
          for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
            const problem = await exchange(hub.child.url, agent, item, created);
            if (problem !== undefined) problems.push(problem);
          }
        }));
        expect(problems).toEqual([]);
      }), fuzzParameters());
    }).finally(() => agent.destroy());
    expect(sent).toBeGreaterThanOrEqual(MIN_MESSAGES);
    await hub.finish();
  });
});

describe('regressions found by fuzzing the HTTP routes', () => {
  async function answer(url: string, method: string, path: string, headers: Record<string, string> = {}, content?: Buffer) {
    const item: HttpItem = { method, path, headers, body: content === undefined ? undefined : new Uint8Array(content) };
    return exchange(url, new Agent(), item, []);
  }

  it('answers a method or path no route takes under /api with a JSON 404 ERR_NOT_FOUND, not an HTML page', async () => {
    const hub = await startHub();
    for (const [method, path] of [['PUT', '/api/uploads'], ['PATCH', '/api/uploads/AAAAAAAAAAAAAAAAAAAAAA'], ['GET', '/api/nope'], ['GET', '/api'], ['POST', '/api/events'], ['HEAD', '/api/nope']] as const) {
      expect(await answer(hub.url, method, path)).toBeUndefined();
      const response = await fetch(`${hub.url}${path}`, { method });
      expect(response.status).toBe(404);
      if (method !== 'HEAD') expect(await response.json()).toMatchObject({ error: { code: 'ERR_NOT_FOUND' } });
    }
  });

  it('answers a path that does not decode, on every route with an id, with a JSON 400 ERR_BAD_MESSAGE', async () => {
    const hub = await startHub();
    for (const [method, path] of [['GET', '/api/uploads/%E0%A4%A'], ['DELETE', '/api/uploads/%%'], ['GET', '/api/uploads/%E0%A4%A/events']] as const) {
      expect(await answer(hub.url, method, path)).toBeUndefined();
      const response = await fetch(`${hub.url}${path}`, { method });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
    }
  });

  it('answers a JSON body that does not inflate with 400 ERR_BAD_MESSAGE, not 500 ERR_INTERNAL', async () => {
    const hub = await startHub();
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const response = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': encoding }, body: randomBytes(64) });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
    }
  });

  it('answers HEAD on the watcher streams with their headers at once instead of holding a stream that never answers', async () => {
    const hub = await startHub();
    const id = (await hub.hub.create(ANONYMOUS, { name: 'a.bin', size: 10 })).id;
    for (const path of ['/api/events', `/api/uploads/${id}/events`]) {
      for (const accept of ['text/event-stream', 'application/x-ndjson']) {
        const response = await fetch(`${hub.url}${path}`, { method: 'HEAD', headers: { accept }, signal: AbortSignal.timeout(10_000) });
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toBe(`${accept}; charset=utf-8`);
      }
    }
    const unknown = await fetch(`${hub.url}/api/uploads/AAAAAAAAAAAAAAAAAAAAAA/events`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    expect(unknown.status).toBe(404);
  });
});
