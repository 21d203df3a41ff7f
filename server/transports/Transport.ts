/**
 * A transport translates between a wire and the core. It is created with the hub and the HTTP
 * server it rides on, and is closed before the hub. Adding one touches app.ts's list, never the core.
 */
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Express } from 'express';
import type { Logger } from 'pino';
import type { ServerOptions } from 'socket.io';
import type { UploadHub } from '../core/UploadHub.js';

export interface TransportContext {
  hub: UploadHub;
  server: HttpServer;
  app: Express;
  logger: Logger;
  /** Several nodes: the Socket.IO adapter that carries Socket.IO's own messages between them. */
  socketIoAdapter?: ServerOptions['adapter'];
}

export interface Transport {
  readonly name: string;
  /** Whether an HTTP upgrade to this path is this transport's; upgrades no transport owns get 404. */
  ownsUpgrade?(pathname: string): boolean;
  /**
   * Takes an upgrade it owns. app.ts calls it once the upgrade has passed the hub's checks (the
   * Origin check, shutdown); a transport never listens for 'upgrade' itself.
   */
  handleUpgrade?(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Live connections or streams, for metrics and leak checks. */
  connections(): number;
  /** Ends every connection and releases every listener. */
  close(): Promise<void>;
}

export type TransportFactory = (context: TransportContext) => Transport;
