// Baseline: the least an HTTP multipart upload server can do. express + busboy, each file part
// streamed to its own temp file, 200 JSON once every part is on disk.
// Run as a child process by the bench; prints {"port":N,"tempDir":"..."} when listening.
import { createWriteStream } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import express from 'express';
import { announceReady, cleanUpOnExit } from '../lib/serverLifecycle.js';
import { MiB } from '../lib/sizes.js';
import { makeBenchTempDir } from '../lib/tempDir.js';

const options = {
  host: '127.0.0.1',
  // Node's 16 KiB stream defaults cost several times the CPU at these sizes.
  streamHighWaterMark: MiB,
};

const tempDir = makeBenchTempDir('busboy');
let fileCount = 0;

const app = express();

app.post('/upload', (req, res) => {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers,
      highWaterMark: options.streamHighWaterMark,
      fileHwm: options.streamHighWaterMark,
    });
  } catch (error) {
    res.status(400).json({ error: String(error) });
    return;
  }

  const writes: Promise<{ name: string | undefined; bytes: number }>[] = [];
  parser.on('file', (_field, file, info) => {
    fileCount += 1;
    const target = path.join(tempDir, `upload-${fileCount}.bin`);
    const out = createWriteStream(target, { highWaterMark: options.streamHighWaterMark });
    writes.push(pipeline(file, out).then(() => ({ name: info.filename, bytes: out.bytesWritten })));
  });
  parser.on('close', () => {
    Promise.all(writes).then(
      (files) => res.json({ files }),
      (error: unknown) => res.status(500).json({ error: String(error) }),
    );
  });
  parser.on('error', (error) => {
    req.unpipe(parser);
    res.status(400).json({ error: String(error) });
  });
  req.pipe(parser);
});

const server = app.listen(0, options.host, () => {
  announceReady((server.address() as AddressInfo).port, tempDir);
});

cleanUpOnExit(tempDir, async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
