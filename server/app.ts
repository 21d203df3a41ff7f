/**
 * Assembly: one HTTP server carrying express routes, raw WebSocket and Socket.IO, all on one
 * UploadHub. `createHubServer` is what main.ts, the tests and the benchmarks start.
 *
 * @example
 * const hub = await createHubServer({ options: { port: 0, dataDir: tmp } });
 * console.log(hub.url); // http://127.0.0.1:54321
 * await hub.close();
 */
import { createServer, STATUS_CODES, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { UploadHub, type UploadHubInit } from './core/UploadHub.js';
import { createLogger } from './logger.js';
import { resolveOptions } from './config.js';
import { configureAccess } from './auth/access.js';
import { accessLog, logUpgrade } from './transports/http/accessLog.js';
import type { Transport, TransportFactory } from './transports/Transport.js';
import { webSocketTransport } from './transports/ws.js';
import { socketIoTransport } from './transports/socketio.js';
import { httpTransport } from './transports/http.js';
import { pagesTransport } from './transports/pages.js';
import { originRefusal } from './transports/origin.js';
import { holdUpgrade } from './transports/connectionLimit.js';

/** Every transport the hub serves, in the order they are attached. */
export const TRANSPORTS: readonly TransportFactory[] = [webSocketTransport, socketIoTransport, pagesTransport, httpTransport];

export interface HubServerInit extends UploadHubInit {
  logger?: Logger;
  /** Defaults to TRANSPORTS. */
  transports?: readonly TransportFactory[];
}

export interface HubServer {
  hub: UploadHub;
  /** This node's name (leases, logs, /healthz). */
  nodeId: string;
  server: HttpServer;
  app: Express;
  transports: readonly Transport[];
  logger: Logger;
  /** http://host:port of the listening server. */
  url: string;
  port: number;
  close(): Promise<void>;
  /**
   * SIGTERM: /healthz turns 503 `draining`, new sockets are refused, unfinished uploads are
   * committed and released and their connections closed with ERR_SHUTTING_DOWN (clients resume
   * on another node), running stages get until shutdownTimeoutMs, then everything closes.
   */
  drain(): Promise<void>;
}

export async function createHubServer(init: HubServerInit = {}): Promise<HubServer> {
  const logger = init.logger ?? createLogger();
  const options = resolveOptions(init.options);
  // Scale-out: Redis (and everything that talks to it) is loaded only when asked for.
  const cluster = options.redisUrl !== undefined && init.registry === undefined
    ? await (await import('./store/redis/cluster.js')).connectCluster(options, logger)
    : undefined;
  let access: Awaited<ReturnType<typeof configureAccess>>;
  try {
    access = await configureAccess(options, init, logger);
  } catch (error) {
    await cluster?.abandon();
    throw error;
  }
  const hub = new UploadHub({
    ...init,
    ...(cluster ? { store: cluster.store, registry: cluster.registry, events: cluster.events } : {}),
    logger,
    ...(access.authenticate ? { authenticate: access.authenticate } : {}),
    ...(access.revalidate ? { revalidate: access.revalidate } : {}),
  });
  try {
    await hub.start();
  } catch (error) {
    access.close();
    await cluster?.abandon();
    throw error;
  }
  const app = express();
  app.disable('x-powered-by');
  app.use(accessLog(logger));
  const server = createServer(app);
  server.on('upgrade', (request) => logUpgrade(logger, request));
  const transports = (init.transports ?? TRANSPORTS).map((factory) => factory({ hub, server, app, logger, ...(cluster ? { socketIoAdapter: cluster.socketIoAdapter } : {}) }));
  // The one place upgrades are routed: to the transport that owns the path, once the upgrade
  // has passed the Origin check (before any WebSocket exists, so a refused page gets a 403 and
  // nothing else). An upgrade to an unknown path gets a 404 instead of hanging.
  // While shutting down, transports have stopped taking upgrades: refuse them all, or a client
  // reconnecting at that moment would hold a half-upgraded socket that server.close() awaits.
  let shuttingDown = false;
  server.on('upgrade', (request, socket, head: Buffer) => {
    const pathname = (request.url ?? '/').split('?')[0] as string;
    const owner = shuttingDown ? undefined : transports.find((transport) => transport.handleUpgrade !== undefined && transport.ownsUpgrade?.(pathname) === true);
    // Then maxConnectionsPerIp (transports/connectionLimit.ts): a slot held until the socket closes, or 429.
    const refused = owner === undefined ? undefined : originRefusal(request.headers, hub.options) ?? holdUpgrade(hub, request, socket);
    if (owner?.handleUpgrade !== undefined && refused === undefined) {
      owner.handleUpgrade(request, socket, head);
      return;
    }
    // Node takes its own 'error' listener off an upgraded socket: a client that resets while
    // this answer is written would otherwise crash the process.
    socket.on('error', () => socket.destroy());
    if (refused !== undefined) {
      const body = JSON.stringify({ error: refused.toJSON() });
      socket.end(`HTTP/1.1 ${refused.status} ${STATUS_CODES[refused.status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    socket.end(shuttingDown
      ? 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
      : 'HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(hub.options.port, hub.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    // Port taken, host unknown: nothing listens, so release what start() took (the data
    // directory's lock, timers, the SIGHUP listener) before saying so.
    await Promise.all(transports.map((transport) => transport.close()));
    await hub.close();
    await cluster?.close();
    access.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  const host = hub.options.host.includes(':') ? `[${hub.options.host}]` : hub.options.host;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;

  let closing: Promise<void> | undefined;
  const finish = async (): Promise<void> => {
    await cluster?.close();
    access.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    hub, server, app, transports, logger, url, port, nodeId: hub.nodeId,
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        await Promise.all(transports.map((transport) => transport.close()));
        await hub.close();
        await finish();
      })();
      return closing;
    },
    drain() {
      closing ??= (async () => {
        shuttingDown = true;
        await hub.drain(hub.options.shutdownTimeoutMs, async () => {
          await Promise.all(transports.map((transport) => transport.close()));
        });
        await finish();
      })();
      return closing;
    },
  };
}
