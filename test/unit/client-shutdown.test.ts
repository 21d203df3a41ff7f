/**
 * What the client does when its hub node says it is shutting down in ways a real hub only does
 * in a narrow window (test/integration/client-shutdown.test.ts covers the close itself): a chunk
 * answered ERR_SHUTTING_DOWN, an `error` ERR_SHUTTING_DOWN tied to no request (the Socket.IO
 * `error` event, a ws error message), a watch refused with it. Each is "go elsewhere": the
 * client lets go of the connection, opens another and resumes; nothing fails. The hub here is
 * a small in-memory fake behind the client's ConnectionFactory, so each answer is exact.
 */
import { describe, expect, it } from 'vitest';
import { UploadHubError } from '../../shared/errors.js';
import { PROTOCOL_VERSION, type ChunkReply, type UploadStatus, type WelcomeMessage } from '../../shared/messages.js';
import type { ClientConnection, ConnectionOptions, RequestMessage, RequestReply } from '../../client/connection/ClientConnection.js';
import { UploadClient, portableResolver } from '../../client/UploadClient.js';

const ID = 'AbCdEfGhIjKlMnOp';
const SIZE = 64 * 1024;
const CHUNK = 8 * 1024;
const T0 = 1_800_000_000_000;

/** How one connection of the fake hub misbehaves. */
interface Script {
  /** Answer the chunk at this offset with ERR_SHUTTING_DOWN (or `refuseWith`). */
  refuseChunkAt?: number;
  refuseWith?: 'ERR_SHUTTING_DOWN' | 'ERR_LEASE_LOST' | 'ERR_UNAVAILABLE';
  /** After this many acks, say ERR_SHUTTING_DOWN outside any request and answer nothing more. */
  announceAfterAcks?: number;
  /** Refuse `watch` with ERR_SHUTTING_DOWN. */
  refuseWatch?: boolean;
}

/** One upload's bytes and the connections that reached the hub, in order. */
class FakeHub {
  committed = 0;
  readonly connections: FakeConnection[] = [];
  readonly bytes = new Uint8Array(SIZE);

  constructor(private readonly scripts: Script[]) {}

  connect(options: ConnectionOptions): ClientConnection {
    const connection = new FakeConnection(this, options, this.scripts[this.connections.length] ?? {});
    this.connections.push(connection);
    return connection;
  }

  status(): UploadStatus {
    return {
      id: ID, name: 'a.bin', size: SIZE, mimeType: 'application/octet-stream', metadata: {}, owner: 'anonymous', state: this.committed > 0 ? 'uploading' : 'created',
      bytes: this.committed, percent: (this.committed / SIZE) * 100, phase: 'upload', attached: true, createdAt: T0, updatedAt: T0,
    };
  }
}

class FakeConnection implements ClientConnection {
  closed = false;
  readonly requests: RequestMessage['type'][] = [];
  private acks = 0;
  private silent = false;

  constructor(private readonly hub: FakeHub, private readonly options: ConnectionOptions, private readonly script: Script) {}

  open(): Promise<WelcomeMessage> {
    return Promise.resolve({ type: 'welcome', version: PROTOCOL_VERSION, principal: 'anonymous', limits: { maxFileSize: SIZE, maxChunkSize: CHUNK, chunkSize: CHUNK, maxUploadsPerConnection: 10 } });
  }

  request<M extends RequestMessage>(message: M): Promise<RequestReply<M>> {
    this.requests.push(message.type);
    if (this.closed) return Promise.reject(new UploadHubError('ERR_CONNECTION_LOST'));
    if (message.type === 'watch') {
      if (this.script.refuseWatch) return Promise.reject(new UploadHubError('ERR_SHUTTING_DOWN'));
      return Promise.resolve({ type: 'watching', uploads: [], lastEventId: 0 } as unknown as RequestReply<M>);
    }
    return Promise.resolve({ type: 'attached', reqId: 'r', upload: this.hub.status(), offset: this.hub.committed, window: 4 * CHUNK } as unknown as RequestReply<M>);
  }

  unwatch(): void {}

  ping(): Promise<number> {
    return Promise.resolve(0);
  }

  sendChunk(uploadId: string, offset: number, data: Uint8Array): Promise<ChunkReply> {
    if (this.closed || this.silent) return new Promise(() => undefined);
    if (offset === this.script.refuseChunkAt) {
      const code = this.script.refuseWith ?? 'ERR_SHUTTING_DOWN';
      return Promise.resolve({ type: 'error', code, message: new UploadHubError(code).message, uploadId, chunkOffset: offset });
    }
    if (offset === this.hub.committed) {
      this.hub.bytes.set(data, offset);
      this.hub.committed += data.byteLength;
    }
    const ack: ChunkReply = { type: 'ack', uploadId, chunkOffset: offset, status: 'accepted', offset: this.hub.committed, window: 4 * CHUNK };
    this.acks++;
    if (this.hub.committed === SIZE) queueMicrotask(() => this.options.handlers.event({ id: 1, uploadId, at: T0, type: 'completed' }));
    if (this.acks === this.script.announceAfterAcks) {
      this.silent = true;
      queueMicrotask(() => this.options.handlers.error({ type: 'error', code: 'ERR_SHUTTING_DOWN', message: 'The hub is shutting down' }));
    }
    return Promise.resolve(ack);
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
  }
}

function clientOf(hub: FakeHub): UploadClient {
  return new UploadClient(
    { url: 'http://hub.invalid', reconnectDelayMs: 1, maxReconnectAttempts: 3 },
    { connections: { ws: (options) => hub.connect(options) }, resolveSource: portableResolver },
  );
}

function file(): Uint8Array {
  return Uint8Array.from({ length: SIZE }, (_, i) => i % 251);
}

describe('ERR_SHUTTING_DOWN from the hub means "go elsewhere"', { timeout: 5_000 }, () => {
  // So does a cluster node whose Redis is unreachable, or that lost the upload to another node:
  // the client goes through the balancer again and resumes where the upload is held.
  it.each(['ERR_SHUTTING_DOWN', 'ERR_LEASE_LOST', 'ERR_UNAVAILABLE'] as const)('a chunk answered with %s: the upload continues on a new connection from the committed offset', async (code) => {
    const hub = new FakeHub([{ refuseChunkAt: 3 * CHUNK, refuseWith: code }]);
    const client = clientOf(hub);
    const reasons: string[] = [];
    client.on('disconnected', (reason) => reasons.push(reason.code));
    const upload = client.upload(file(), { name: 'a.bin' });
    const offsets: number[] = [];
    upload.on('attached', (offset) => offsets.push(offset));
    await upload.done;
    expect(hub.bytes).toEqual(file());
    expect(hub.connections.map((connection) => connection.closed)).toEqual([true, false]);
    expect(hub.connections[1]?.requests).toEqual(['resume']);
    expect(offsets).toEqual([0, 3 * CHUNK]);
    expect(reasons).toEqual([code]);
    client.close();
  });

  it('said outside any request (the Socket.IO `error` event): the client leaves that connection at once', async () => {
    const hub = new FakeHub([{ announceAfterAcks: 2 }]);
    const client = clientOf(hub);
    const upload = client.upload(file(), { name: 'a.bin' });
    await upload.done;
    expect(hub.bytes).toEqual(file());
    expect(hub.connections).toHaveLength(2);
    expect(hub.connections[0]?.closed).toBe(true);
    client.close();
  });

  it('a watch refused with it: no error, the watch is made again on the next connection', async () => {
    const hub = new FakeHub([{ refuseWatch: true }]);
    const client = clientOf(hub);
    const watcher = client.watch();
    const errors: UploadHubError[] = [];
    watcher.on('error', (error) => errors.push(error));
    await watcher.ready;
    expect(errors).toEqual([]);
    expect(hub.connections.map((connection) => [connection.closed, connection.requests])).toEqual([[true, ['watch']], [false, ['watch']]]);
    client.close();
  });
});
