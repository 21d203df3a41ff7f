/**
 * `upload-hub/client` in Node: UploadClient over `ws` (or Socket.IO), with file paths and
 * readable streams as sources besides Buffers and Blobs.
 */
import { WebSocket } from 'ws';
import { WsConnection, type WebSocketConstructor } from './connection/WsConnection.js';
import { SocketIoConnection } from './connection/SocketIoConnection.js';
import { nodeSource } from './node/sources.js';
import { portableSource, unsupportedSource } from './sources.js';
import { UploadClient as BaseClient, type TransportName, type UploadClientOptions } from './UploadClient.js';
import type { ConnectionFactory } from './connection/ClientConnection.js';

/** The socket transports available in Node, by name. */
export const NODE_CONNECTIONS: Partial<Record<TransportName, ConnectionFactory>> = {
  ws: (connectionOptions) => new WsConnection(connectionOptions, WebSocket as unknown as WebSocketConstructor, true),
  'socket.io': (connectionOptions) => new SocketIoConnection(connectionOptions),
};

export class UploadClient extends BaseClient {
  constructor(options: UploadClientOptions) {
    super(options, {
      connections: NODE_CONNECTIONS,
      resolveSource: async (source, uploadOptions) =>
        portableSource(source) ?? (await nodeSource(source, uploadOptions.size)) ?? unsupportedSource(),
    });
  }
}

export type { UploadClientOptions, UploadOptions, UploadProgress, UploadResult, UploadHandle, UploadLogLine, TransportName } from './UploadClient.js';
export type { Watcher } from './Watcher.js';
export { bytesSource, blobSource, type ChunkSource } from './sources.js';
export { fileSource, streamSource } from './node/sources.js';
export { UploadHubError } from '../shared/errors.js';
