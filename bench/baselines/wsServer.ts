// Baseline: the least a WebSocket upload server can do. Each binary frame is appended to a
// per-connection file and acknowledged with a tiny JSON text frame once the write completed.
// Run as a child process by the bench; prints {"port":N,"tempDir":"..."} when listening.
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { WebSocketServer, type RawData } from 'ws';
import { announceReady, cleanUpOnExit } from '../lib/serverLifecycle.js';
import { MiB } from '../lib/sizes.js';
import { makeBenchTempDir } from '../lib/tempDir.js';

const options = {
  host: '127.0.0.1',
  // 1 MiB frames plus headroom; anything bigger is a client bug.
  maxPayload: 2 * MiB,
  // Node's default 16 KiB write-stream buffer makes writes return false constantly and costs
  // several times the CPU; a few frames' worth keeps the file stream out of the way.
  writeHighWaterMark: 8 * MiB,
};

const tempDir = makeBenchTempDir('ws');
const openFiles = new Set<WriteStream>();
let connectionCount = 0;

// ws picks up bufferutil by itself when it is installed; compression would only burn CPU
// on incompressible upload data.
const server = new WebSocketServer({
  host: options.host,
  port: 0,
  perMessageDeflate: false,
  maxPayload: options.maxPayload,
});

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

server.on('connection', (socket) => {
  connectionCount += 1;
  const file = createWriteStream(path.join(tempDir, `upload-${connectionCount}.bin`), {
    highWaterMark: options.writeHighWaterMark,
  });
  openFiles.add(file);
  let offset = 0;

  file.on('error', (error) => {
    console.error('ws baseline: write failed', error);
    socket.close(1011, 'write failed');
  });
  socket.on('message', (data, isBinary) => {
    if (!isBinary) return;
    const chunk = asBuffer(data);
    offset += chunk.length;
    const ackedOffset = offset;
    // Write callbacks fire in order, so acks leave in frame order.
    file.write(chunk, (error) => {
      if (error === null || error === undefined) socket.send(JSON.stringify({ o: ackedOffset }));
    });
  });
  socket.on('close', () => {
    file.end();
    file.once('close', () => openFiles.delete(file));
  });
});

server.on('listening', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address');
  announceReady(address.port, tempDir);
});

cleanUpOnExit(tempDir, async () => {
  for (const client of server.clients) client.terminate();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.all(
    [...openFiles].map((file) => new Promise<void>((resolve) => file.close(() => resolve()))),
  );
});
