/**
 * `upload-hub/client` in browsers: UploadClient over the browser's WebSocket (or Socket.IO),
 * with File/Blob, Uint8Array and ArrayBuffer sources, and a fingerprint store in localStorage.
 * The hub serves this module bundled at /assets/upload-hub.js (types at /assets/upload-hub.d.ts).
 *
 * @example
 * import { UploadClient, localStorageFingerprints } from '/assets/upload-hub.js';
 * const client = new UploadClient({ url: location.origin, fingerprints: localStorageFingerprints() });
 * const upload = client.upload(input.files[0]);
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

export type {
  UploadClientOptions, UploadOptions, UploadProgress, UploadResult, UploadHandle, UploadEvents, UploadLogLine, TransportName, TokenOption,
} from './UploadClient.js';
export type { Watcher, WatcherEvents } from './Watcher.js';
export { bytesSource, blobSource, type ChunkSource, type PortableSource } from './sources.js';
export { fingerprintOf, localStorageFingerprints, type FingerprintEntry, type FingerprintStore, type StorageLike } from './fingerprint.js';
export { UploadHubError } from '../shared/errors.js';
