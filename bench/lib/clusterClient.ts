// The project's UploadClient exactly as `upload-hub/client` builds it in Node (the ws connection
// of NODE_CONNECTIONS), with each connection it opens numbered and its chunk replies reported:
// the cluster cases count chunks and errors, and time the first chunk a new connection gets
// accepted after a node was killed.
import { NODE_CONNECTIONS } from '../../client/node.js';
import type { ConnectionFactory } from '../../client/connection/ClientConnection.js';
import { UploadClient, portableResolver, type UploadClientOptions } from '../../client/UploadClient.js';
import type { ChunkReply } from '../../shared/messages.js';

export interface ConnectionObserver {
  /** The client opens its `index`th connection (0 first; a reconnect opens the next). */
  opened?(index: number, at: number): void;
  /** A chunk handed to connection `index`'s socket at `sentAt` was answered at `at` (performance.now()). */
  answered?(index: number, reply: ChunkReply, bytes: number, sentAt: number, at: number): void;
}

export function observedClient(options: UploadClientOptions, observer: ConnectionObserver): UploadClient {
  const ws = NODE_CONNECTIONS.ws as ConnectionFactory;
  let opened = 0;
  const observed: ConnectionFactory = (connectionOptions) => {
    const index = opened++;
    observer.opened?.(index, performance.now());
    const connection = ws(connectionOptions);
    const sendChunk = connection.sendChunk.bind(connection);
    connection.sendChunk = (uploadId, offset, data) => {
      const sentAt = performance.now();
      const reply = sendChunk(uploadId, offset, data);
      reply.then(
        (answer) => observer.answered?.(index, answer, data.byteLength, sentAt, performance.now()),
        () => undefined, // a lost connection is the client's to handle (it reconnects)
      );
      return reply;
    };
    return connection;
  };
  return new UploadClient({ transport: 'ws', ...options }, { connections: { ws: observed }, resolveSource: portableResolver });
}

/** Counts of one side's chunks and errors, by kind, and (if asked) each accepted chunk's send-to-ack time. */
export class ChunkCount {
  accepted = 0;
  acceptedBytes = 0;
  readonly errors = new Map<string, number>();
  /** Send-to-ack times of accepted chunks, in ms; kept only when constructed with `timed`. */
  readonly ackMs: number[] = [];

  constructor(private readonly timed = false) {}

  readonly observer: ConnectionObserver = {
    answered: (_index, reply, bytes, sentAt, at) => {
      if (reply.type === 'error') this.error(`chunk: ${reply.code}`);
      else if (reply.status === 'accepted') {
        this.accepted++;
        this.acceptedBytes += bytes;
        if (this.timed) this.ackMs.push(at - sentAt);
      }
    },
  };

  error(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  get errorCount(): number {
    let total = 0;
    for (const count of this.errors.values()) total += count;
    return total;
  }

  describeErrors(): string {
    return this.errors.size === 0 ? 'none' : [...this.errors].map(([kind, count]) => `${kind} x${count}`).join(', ');
  }
}
