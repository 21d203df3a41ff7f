/**
 * Raw WebSocket at `/ws`: JSON text frames for control messages, the binary chunk frame of
 * shared/frame.ts for bytes. A translator only: decode, hand to the Session, encode.
 */
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { UploadHubError, toHubError } from '../../shared/errors.js';
import { decodeChunkFrame } from '../../shared/frame.js';
import { parseClientMessage } from '../../shared/codec.js';
import type { ServerMessage } from '../../shared/messages.js';
import { derivedLimits } from '../config.js';
import { Session } from '../core/Session.js';
import type { Transport, TransportContext } from './Transport.js';

export const WS_PATH = '/ws';
/** Outgoing bytes above which the connection counts as congested (progress is held back). */
const CONGESTED_BYTES = 1024 * 1024;
/** Below this, a congested connection counts as drained again. */
const DRAINED_BYTES = 256 * 1024;

function toBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export function webSocketTransport({ hub, server, logger }: TransportContext): Transport {
  const wss = new WebSocketServer({ noServer: true, maxPayload: derivedLimits(hub.options).wsMaxPayload, perMessageDeflate: false });

  const onUpgrade = (request: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== WS_PATH) return; // another transport's (Socket.IO's) upgrade
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  };
  server.on('upgrade', onUpgrade);

  wss.on('connection', (ws: WebSocket) => {
    let congested = false;
    const afterSend = () => {
      if (congested && ws.bufferedAmount <= DRAINED_BYTES) {
        congested = false;
        session.drain();
      }
    };
    const session = new Session(hub, {
      send(message: ServerMessage) {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(JSON.stringify(message), afterSend);
      },
      congested() {
        congested ||= ws.bufferedAmount > CONGESTED_BYTES;
        return congested;
      },
      close(error: UploadHubError) {
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
      void session.chunk(frame.uploadId, frame.offset, frame.data).then((reply) => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(reply), afterSend);
      });
    });
    ws.on('error', (error) => logger.debug({ err: error }, 'websocket error'));
    ws.on('close', () => {
      clearInterval(heartbeat);
      session.close();
    });
  });

  return {
    name: 'ws',
    ownsUpgrade: (pathname) => pathname === WS_PATH,
    connections: () => wss.clients.size,
    async close() {
      server.off('upgrade', onUpgrade);
      const shutdown = new UploadHubError('ERR_SHUTTING_DOWN');
      for (const ws of wss.clients) ws.close(shutdown.closeCode, shutdown.code);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const ws of wss.clients) ws.terminate();
    },
  };
}
