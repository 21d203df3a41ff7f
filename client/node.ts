/**
 * `upload-hub/client` in Node: UploadClient over `ws` (or Socket.IO), with file paths and
 * readable streams as sources besides Buffers and Blobs.
 */
import { WebSocket } from 'ws';
import { WsConnection, type WebSocketConstructor } from './connection/WsConnection.js';
import { nodeSource } from './node/sources.js';
import { portableSource, unsupportedSource } from './sources.js';
import { UploadClient as BaseClient, type UploadClientOptions } from './UploadClient.js';

export class UploadClient extends BaseClient {
  constructor(options: UploadClientOptions) {
    super(options, {
      connections: {
        ws: (connectionOptions) => new WsConnection(connectionOptions, WebSocket as unknown as WebSocketConstructor),
      },
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
