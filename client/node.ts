/**
 * `upload-hub/client` in Node: UploadClient over `ws` (or Socket.IO), with file paths and
 * readable streams as sources besides Buffers and Blobs, and a fingerprint store in a JSON file.
 *
 * @example
 * const client = new UploadClient({ url: 'http://127.0.0.1:3000', fingerprints: fileFingerprints() });
 * await client.upload('big.iso').done; // run it again after a crash: it resumes
 */
import { WebSocket } from 'ws';
import { WsConnection, type WebSocketConstructor } from './connection/WsConnection.js';
import { SocketIoConnection } from './connection/SocketIoConnection.js';
import { fileSource, nodeSource } from './node/sources.js';
import { fingerprintOfSource } from './fingerprint.js';
import { portableSource, unsupportedSource, type PortableSource } from './sources.js';
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

/**
 * The fingerprint of a file (see the browser's fingerprintOf): also takes a file path, whose
 * mtime is its last-modified time. Not a stream, which reading would consume.
 */
export async function fingerprintOf(source: PortableSource | string, name?: string): Promise<string> {
  if (typeof source !== 'string') {
    const resolved = portableSource(source);
    if (!resolved) throw new TypeError('fingerprintOf takes a file path, Buffer, Blob, ArrayBuffer or ChunkSource');
    return fingerprintOfSource(resolved, name);
  }
  const file = await fileSource(source);
  try {
    return await fingerprintOfSource(file, name);
  } finally {
    await file.close?.();
  }
}

export type {
  UploadClientOptions, UploadOptions, UploadProgress, UploadResult, UploadHandle, UploadEvents, UploadLogLine, TransportName, TokenOption,
} from './UploadClient.js';
export type { Watcher, WatcherEvents } from './Watcher.js';
export { bytesSource, blobSource, type ChunkSource, type PortableSource } from './sources.js';
export { fileSource, streamSource } from './node/sources.js';
export { fileFingerprints, defaultFingerprintsPath } from './node/fingerprints.js';
export type { FingerprintEntry, FingerprintStore } from './fingerprint.js';
export { UploadHubError } from '../shared/errors.js';
