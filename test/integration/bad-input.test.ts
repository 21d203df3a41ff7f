/**
 * Garbage on one connection gets coded errors (and, where a frame cannot be parsed at all, a
 * close with the code's close code) while a healthy upload on another connection completes.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ERROR_CODES } from '../../shared/errors.js';
import { PROTOCOL_VERSION, type ServerMessage } from '../../shared/messages.js';
import type { UploadProgress } from '../../client/UploadClient.js';
import { onCleanup, sha256File, sha256Of, startClient, startHub, waitFor, storedPath } from '../helpers.js';
import { gatedStream } from '../protocolHelpers.js';

const MiB = 1024 * 1024;

/** A raw WebSocket that queues what the hub says, for precise request/answer steps. */
async function rawSocket(url: string) {
  const socket = new WebSocket(`${url.replace('http', 'ws')}/ws`);
  onCleanup(() => socket.terminate());
  const inbox: ServerMessage[] = [];
  const waiting: Array<(message: ServerMessage) => void> = [];
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    const message = JSON.parse(data.toString()) as ServerMessage;
    const next = waiting.shift();
    if (next) next(message);
    else inbox.push(message);
  });
  const closed = once(socket, 'close') as Promise<[number, Buffer]>;
  await once(socket, 'open');
  return {
    socket,
    closed: closed.then(([code, reason]) => ({ code, reason: reason.toString() })),
    next: () => new Promise<ServerMessage>((resolve) => (inbox.length > 0 ? resolve(inbox.shift() as ServerMessage) : waiting.push(resolve))),
    send: (data: string | Buffer) => socket.send(data),
  };
}

describe('bad input over raw WebSocket', () => {
  it('answers malformed, unknown and oversized messages with codes and keeps the connection', async () => {
    const hub = await startHub({ options: { maxMessageBytes: 4096 } });
    const client = startClient({ url: hub.url });
    const bytes = randomBytes(16 * MiB);
    const gated = gatedStream(bytes, 4 * MiB);
    const healthy = client.upload(gated.stream, { size: bytes.byteLength, name: 'healthy.bin' });
    await waitFor<UploadProgress>((fn) => healthy.on('progress', fn), (p) => p.bytes >= 4 * MiB);

    const raw = await rawSocket(hub.url);
    raw.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION }));
    expect(await raw.next()).toMatchObject({ type: 'welcome', principal: 'anonymous' });
    raw.send('{not json');
    expect(await raw.next()).toMatchObject({ type: 'error', code: 'ERR_BAD_MESSAGE' });
    raw.send(JSON.stringify({ type: 'teleport' }));
    expect(await raw.next()).toMatchObject({ type: 'error', code: 'ERR_UNKNOWN_MESSAGE' });
    raw.send(JSON.stringify({ type: 'create', reqId: 'r1', name: '', size: -1 }));
    expect(await raw.next()).toMatchObject({ type: 'error', code: 'ERR_BAD_MESSAGE' });
    raw.send(JSON.stringify({ type: 'ping', t: 1, padding: 'x'.repeat(5000) }));
    expect(await raw.next()).toMatchObject({ type: 'error', code: 'ERR_MESSAGE_TOO_LARGE' });
    raw.send(JSON.stringify({ type: 'resume', reqId: 'r2', uploadId: 'AAAAAAAAAAAAAAAAAAAAAA' }));
    expect(await raw.next()).toMatchObject({ type: 'error', code: 'ERR_NOT_FOUND', reqId: 'r2' });
    raw.send(JSON.stringify({ type: 'ping', t: 42 }));
    expect(await raw.next()).toEqual({ type: 'pong', t: 42 });

    // A binary frame that is not a chunk frame cannot be attributed to any upload: coded error, then close.
    raw.send(randomBytes(100));
    expect(await raw.next()).toMatchObject({ type: 'error', code: 'ERR_BAD_FRAME' });
    expect(await raw.closed).toEqual({ code: ERROR_CODES.ERR_BAD_FRAME.closeCode, reason: 'ERR_BAD_FRAME' });

    gated.release();
    const result = await healthy.done;
    expect(await sha256File(storedPath(hub, result.id))).toBe(sha256Of(bytes));
  });

  it('refuses anything before hello, and a wrong protocol version, with a close code', async () => {
    const hub = await startHub();
    const early = await rawSocket(hub.url);
    early.send(randomBytes(64));
    expect(await early.next()).toMatchObject({ type: 'error', code: 'ERR_HELLO_REQUIRED' });
    expect((await early.closed).code).toBe(ERROR_CODES.ERR_HELLO_REQUIRED.closeCode);

    const wrongVersion = await rawSocket(hub.url);
    wrongVersion.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION + 1 }));
    expect(await wrongVersion.next()).toMatchObject({ type: 'error', code: 'ERR_UNSUPPORTED_VERSION' });
    expect((await wrongVersion.closed).code).toBe(ERROR_CODES.ERR_UNSUPPORTED_VERSION.closeCode);
  });

  it('closes a connection whose frame exceeds maxPayload (derived from maxChunkSize)', async () => {
    const hub = await startHub({ options: { maxChunkSize: 64 * 1024, chunkSize: 64 * 1024, minWindow: 64 * 1024 } });
    const raw = await rawSocket(hub.url);
    raw.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION }));
    await raw.next();
    raw.send(randomBytes(256 * 1024));
    // ws itself closes with 1009 (message too big) before the frame reaches the hub.
    expect((await raw.closed).code).toBe(1009);
  });
});

describe('upgrades', () => {
  it('answers an upgrade to a path no transport owns with 404 instead of hanging', async () => {
    const hub = await startHub();
    const socket = new WebSocket(`${hub.url.replace('http', 'ws')}/nowhere`);
    onCleanup(() => socket.terminate());
    const [error] = (await once(socket, 'error')) as [Error];
    expect(error.message).toContain('404');
  });
});
