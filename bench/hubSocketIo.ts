// The hub over Socket.IO, through UploadClient({ transport: 'socket.io' }), against the same
// bare-ws baseline as ws-single-512MiB: one 512 MiB upload on one connection.
import { fileURLToPath } from 'node:url';
import { uploadOverOneSocket } from './baselines/wsClient.js';
import { hubSingleUpload, measureHub } from './hubWs.js';
import { measureServer } from './lib/measure.js';
import { registerCase } from './registry.js';

export const SOCKET_IO_SINGLE = 'socketio-single-512MiB';

registerCase({
  name: SOCKET_IO_SINGLE,
  baseline: ({ singleUploadMiB }) =>
    measureServer({ file: fileURLToPath(new URL('./baselines/wsServer.ts', import.meta.url)) }, (port, startMeasuring) =>
      uploadOverOneSocket({ url: `ws://127.0.0.1:${port}/`, totalMiB: singleUploadMiB }, startMeasuring),
    ),
  subject: ({ singleUploadMiB }) => measureHub((url, start) => hubSingleUpload(url, 'socket.io', singleUploadMiB, start)),
  targets: { mibPerSecRatioMin: 0.75 },
});
