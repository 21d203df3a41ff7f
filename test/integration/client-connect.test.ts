/**
 * The client retries its first connection too (issue 8, item 5): a connection that never
 * opened goes through the same backoff as a dropped one, and after maxReconnectAttempts every
 * pending upload's `done` rejects with ERR_CONNECTION_LOST, on either socket transport.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sha256Of, onCleanup, startClient, startHub } from '../helpers.js';
import { freePort, TRANSPORT_NAMES } from '../protocolHelpers.js';

/** An HTTP server that is not a hub: 200 to every request, and to every upgrade too. */
async function notAHub(): Promise<string> {
  const server = createHttpServer((_request, response) => response.end('hello'));
  server.on('upgrade', (_request, socket: Socket) => {
    socket.on('error', () => undefined);
    socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A TCP server that accepts connections and never says a word. */
async function silentServer(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  }));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

const unreachable: Array<[string, () => Promise<string>]> = [
  ['nothing listening', async () => `http://127.0.0.1:${await freePort()}`],
  ['a name that does not resolve', async () => 'http://upload-hub.invalid:3000'],
  ['the wrong scheme (https to a plain http hub)', async () => (await startHub()).url.replace('http:', 'https:')],
  ['a URL without an http scheme', async () => `127.0.0.1:${(await startHub()).port}`],
  ['a path that is not the hub', async () => `${(await startHub()).url}/not-the-hub`],
  ['a server that is not a hub', notAHub],
  ['a server that accepts and never answers', silentServer],
];

describe.each(TRANSPORT_NAMES)('the first connection over %s', (transport) => {
  it.each(unreachable)('is retried with backoff, then every upload rejects with ERR_CONNECTION_LOST: %s', async (_name, target) => {
    const url = await target();
    const client = startClient({ url, transport, maxReconnectAttempts: 3, reconnectDelayMs: 10, maxReconnectDelayMs: 50, requestTimeoutMs: 500 });
    const attempts: number[] = [];
    client.on('reconnecting', (attempt) => attempts.push(attempt));
    const uploads = [client.upload(randomBytes(1000), { name: 'a.bin' }), client.upload(randomBytes(2000), { name: 'b.bin' })];
    for (const upload of uploads) {
      await expect(upload.done).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
      expect(upload.id).toBeUndefined();
    }
    expect(attempts).toEqual([1, 2, 3]);
  }, 30_000);

  it('uploads once the hub comes up while the client is backing off', async () => {
    const port = await freePort();
    const client = startClient({ url: `http://127.0.0.1:${port}`, transport, maxReconnectAttempts: 100, reconnectDelayMs: 20, maxReconnectDelayMs: 100 });
    const firstRetry = new Promise<void>((resolve) => client.on('reconnecting', () => resolve()));
    const bytes = randomBytes(300_000);
    const upload = client.upload(bytes, { name: 'late.bin' });
    await firstRetry;
    await startHub({ options: { port } });
    const result = await upload.done;
    expect(result.sha256).toBe(sha256Of(bytes));
  }, 30_000);

  it('an upload started after the client gave up tries again from the start', async () => {
    const port = await freePort();
    const client = startClient({ url: `http://127.0.0.1:${port}`, transport, maxReconnectAttempts: 1, reconnectDelayMs: 10 });
    await expect(client.upload(randomBytes(10), { name: 'first.bin' }).done).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    await startHub({ options: { port } });
    const bytes = randomBytes(10);
    expect((await client.upload(bytes, { name: 'second.bin' }).done).sha256).toBe(sha256Of(bytes));
  }, 30_000);
});
