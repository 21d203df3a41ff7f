/**
 * Tokens that expire mid-upload: the client's `token` may be a function, asked again on every
 * (re)connect, so an upload outlives the token it started with; a token the hub refuses on a
 * reconnect ends the pending uploads with ERR_UNAUTHORIZED at once, with no further attempts.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ChunkSource } from '../../client/sources.js';
import { sha256File, sha256Of, startClient, startHub, waitFor, storedPath } from '../helpers.js';
import { TRANSPORT_NAMES } from '../protocolHelpers.js';

const MiB = 1024 * 1024;

/** The TCP sockets `server` accepts from now on, to cut every connection from the hub's side. */
function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return sockets;
}

/** A source whose reads past `gateAt` wait for release(). */
function gatedSource(bytes: Buffer, gateAt: number) {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reachedGate: () => void = () => {};
  const reached = new Promise<void>((resolve) => (reachedGate = resolve));
  const source: ChunkSource = {
    size: bytes.byteLength,
    name: 'gated.bin',
    async read(offset, length) {
      if (offset + length > gateAt) {
        reachedGate();
        await gate;
      }
      return bytes.subarray(offset, offset + length);
    },
  };
  return { source, release, reached };
}

describe.each(TRANSPORT_NAMES)('a token function over %s', (transport) => {
  it('is called on every reconnect, and the upload completes on the fresh token', async () => {
    const issued = new Set<string>();
    const revoked = new Set<string>();
    const hub = await startHub({
      authenticate: (token) => (token && issued.has(token) && !revoked.has(token) ? { id: 'alice' } : null),
    });
    const sockets = trackSockets(hub.server);
    let calls = 0;
    const token = async () => {
      calls++;
      const fresh = `token-${calls}`;
      issued.add(fresh);
      return fresh;
    };
    const client = startClient({ url: hub.url, transport, token, reconnectDelayMs: 20 });
    const bytes = randomBytes(4 * MiB);
    const gated = gatedSource(bytes, 1 * MiB);
    const handle = client.upload(gated.source, { chunkSize: 256 * 1024 });
    await gated.reached;
    expect(calls).toBe(1);

    // The first token expires, and the hub drops the connection.
    revoked.add('token-1');
    for (const round of [1, 2]) {
      const reconnected = waitFor<void>((fn) => client.on('reconnected', fn));
      for (const socket of sockets) socket.destroy();
      await reconnected;
      expect(calls).toBe(round + 1);
      await client.ping();
    }
    gated.release();
    const result = await handle.done;
    expect(result.sha256).toBe(sha256Of(bytes));
    expect(await sha256File(storedPath(hub, result.id))).toBe(sha256Of(bytes));
    expect(await hub.hub.status({ id: 'alice' }, result.id)).toMatchObject({ state: 'completed', owner: 'alice' });
  });

  it('a token the hub refuses on reconnect rejects the pending uploads with ERR_UNAUTHORIZED, without retrying', async () => {
    let allowed = true;
    const hub = await startHub({ authenticate: (token) => (allowed && token === 'secret' ? { id: 'alice' } : null) });
    const sockets = trackSockets(hub.server);
    let calls = 0;
    const token = async () => {
      calls++;
      return 'secret';
    };
    const client = startClient({ url: hub.url, transport, token, reconnectDelayMs: 20, maxReconnectAttempts: 50 });
    const reconnecting: number[] = [];
    client.on('reconnecting', (attempt) => reconnecting.push(attempt));
    const gated = gatedSource(randomBytes(2 * MiB), 512 * 1024);
    const first = client.upload(gated.source, { chunkSize: 128 * 1024 });
    const second = client.upload(randomBytes(1000), { name: 'small.bin' });
    const secondPaused = waitFor<void>((fn) => second.on('paused', fn));
    second.pause();
    await gated.reached;
    await secondPaused;

    allowed = false;
    for (const socket of sockets) socket.destroy();
    await expect(first.done).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED' });
    await expect(second.done).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED' });
    // One attempt, refused; no more.
    expect(reconnecting).toEqual([1]);
    expect(calls).toBe(2);
  });

  it('a token function that throws an UploadHubError(ERR_UNAUTHORIZED) fails the upload at once; a plain string still works', async () => {
    const hub = await startHub({ authenticate: (token) => (token === 'secret' ? { id: 'alice' } : null) });
    const { UploadHubError } = await import('../../shared/errors.js');
    const refusing = startClient({
      url: hub.url,
      transport,
      token: async () => {
        throw new UploadHubError('ERR_UNAUTHORIZED', 'signed out');
      },
    });
    await expect(refusing.upload(randomBytes(10)).done).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED', message: 'signed out' });
    const plain = startClient({ url: hub.url, transport, token: 'secret' });
    expect((await plain.upload(randomBytes(10), { name: 'a.bin' }).done).name).toBe('a.bin');
  });
});
