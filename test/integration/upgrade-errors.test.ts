/**
 * No upgrade request can crash the hub: a client that resets its connection while the hub
 * answers its upgrade (to an unknown path, to `/ws`, to Socket.IO) leaves an 'error' on a socket
 * that must be handled. The hub runs in a child process, so a crash shows as its exit.
 */
import { connect } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startClient, tempDir } from '../helpers.js';
import { freePort, spawnHub } from '../protocolHelpers.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** Sends an upgrade request and resets the connection at once, before the answer is written. */
async function upgradeAndReset(port: number, path: string): Promise<void> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  socket.resetAndDestroy();
  await once(socket, 'close');
}

describe('upgrade requests reset by the client', () => {
  it('leave the hub serving: unknown paths, /ws and Socket.IO, many times over', async () => {
    const hub = await spawnHub(await tempDir(), await freePort());
    let exited = false;
    hub.process.once('exit', () => (exited = true));
    const port = Number(new URL(hub.url).port);

    for (let round = 0; round < 100 && !exited; round++) {
      await Promise.all(['/nope', '/ws', '/socket.io/?EIO=4&transport=websocket'].map((path) => upgradeAndReset(port, path)));
    }

    expect(exited).toBe(false);
    const client = startClient({ url: hub.url });
    const bytes = randomBytes(256 * 1024);
    const result = await client.upload(bytes, { name: 'after-resets.bin' }).done;
    expect(result.size).toBe(bytes.byteLength);
  });
});
