/**
 * `upload-hub/client` in browsers: UploadClient over the browser's WebSocket (or Socket.IO),
 * with File/Blob, Uint8Array and ArrayBuffer sources.
 */
import { WsConnection, type WebSocketConstructor } from './connection/WsConnection.js';
import { SocketIoConnection } from './connection/SocketIoConnection.js';
import { UploadClient as BaseClient, portableResolver, type UploadClientOptions } from './UploadClient.js';

export class UploadClient extends BaseClient {
  constructor(options: UploadClientOptions) {
    super(options, {
      connections: {
        ws: (connectionOptions) => new WsConnection(connectionOptions, globalThis.WebSocket as unknown as WebSocketConstructor),
        'socket.io': (connectionOptions) => new SocketIoConnection(connectionOptions),
      },
      resolveSource: portableResolver,
    });
  }
}

export type { UploadClientOptions, UploadOptions, UploadProgress, UploadResult, UploadHandle, UploadLogLine, TransportName } from './UploadClient.js';
export type { Watcher } from './Watcher.js';
export { bytesSource, blobSource, type ChunkSource } from './sources.js';
export { UploadHubError } from '../shared/errors.js';
