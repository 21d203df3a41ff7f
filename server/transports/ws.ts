/**
 * Raw WebSocket at `/ws`: JSON text frames for control messages, the binary chunk frame of
 * shared/frame.ts for bytes. A translator only: decode, hand to the Session, encode. What the
 * socket holds unsent (`bufferedAmount`) is the Session's to bound. app.ts hands it the upgrades
 * to /ws that passed the Origin check (origin.ts).
 */
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { UploadHubError, toHubError } from '../../shared/errors.js';
import { decodeChunkFrame } from '../../shared/frame.js';
import { parseClientMessage } from '../../shared/codec.js';
import type { ServerMessage } from '../../shared/messages.js';
import { derivedLimits } from '../config.js';
import { Session } from '../protocol/Session.js';
import type { Transport, TransportContext } from './Transport.js';

export const WS_PATH = '/ws';

function toBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export function webSocketTransport({ hub, logger }: TransportContext): Transport {
  const wss = new WebSocketServer({ noServer: true, maxPayload: derivedLimits(hub.options).wsMaxPayload, perMessageDeflate: false });

  wss.on('connection', (ws: WebSocket) => {
    ws.on('error', (error) => logger.debug({ err: error }, 'websocket error'));
    // Called once a message has left for the kernel: what is still held may now be little.
    const afterSend = () => session.drain();
    const send = (message: ServerMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message), afterSend);
    };
    const session = new Session(hub, {
      send,
      bufferedBytes: () => ws.bufferedAmount,
      close(error: UploadHubError) {
        logger.debug({ code: error.code }, 'closing websocket');
        // The reason is the code alone: short, and machine-readable by the client.
        ws.close(error.closeCode, error.code);
      },
    });
    let alive = true;
    ws.on('pong', () => (alive = true));
    const heartbeat = hub.options.heartbeatMs > 0 ? setInterval(() => {
      if (!alive) return ws.terminate();
      alive = false;
      ws.ping();
    }, hub.options.heartbeatMs) : undefined;

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        let message;
        try {
          // The frame's bytes: their count is the size limit's measure, checked before decoding.
          message = parseClientMessage(toBytes(data), hub.options.maxMessageBytes);
        } catch (error) {
          session.reject(toHubError(error, 'ERR_BAD_MESSAGE'));
          return;
        }
        void session.handle(message);
        return;
      }
      let frame;
      try {
        frame = decodeChunkFrame(toBytes(data));
      } catch (error) {
        session.reject(toHubError(error, 'ERR_BAD_FRAME'));
        return;
      }
      session.chunk(frame.uploadId, frame.offset, frame.data, send);
    });
    ws.on('close', () => {
      clearInterval(heartbeat);
      session.close();
    });
  });

  return {
    name: 'ws',
    ownsUpgrade: (pathname) => pathname === WS_PATH,
    handleUpgrade(request, socket, head) {
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    },
    connections: () => wss.clients.size,
    async close() {
      const shutdown = new UploadHubError('ERR_SHUTTING_DOWN');
      for (const ws of wss.clients) ws.close(shutdown.closeCode, shutdown.code);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const ws of wss.clients) ws.terminate();
    },
  };
}
