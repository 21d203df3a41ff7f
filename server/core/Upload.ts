/**
 * One upload's byte path: offsets, the flow-control limit, the write queue and the running
 * sha256. It knows nothing of connections or events; UploadHub drives it and publishes.
 *
 * Offsets: `received` is the end of the last accepted chunk (queued or written); `committed`
 * the end of what the store has written. `limit` is the highest end offset the hub has granted;
 * bytes in memory are at most `limit - committed`, i.e. one window.
 */
import { createHash, type Hash } from 'node:crypto';
import type { ChunkStatus } from '../../shared/messages.js';
import { UploadHubError } from '../../shared/errors.js';
import type { ByteWriter, UploadRecord, UploadStore } from '../store/UploadStore.js';
import { storageError } from '../store/storageError.js';
import type { UploadCredit } from './FlowControl.js';

export type ChunkOutcome =
  | { status: ChunkStatus; committed: Promise<void> }
  | { status: 'rejected'; error: UploadHubError };

interface Waiter {
  end: number;
  resolve: () => void;
  reject: (error: UploadHubError) => void;
}

export class Upload {
  committed: number;
  received: number;
  limit: number;
  private writerOf: object | undefined;
  private writer: ByteWriter | undefined;
  private opening: Promise<ByteWriter> | undefined;
  private hash: Hash | undefined;
  private queue: Uint8Array[] = [];
  private waiters: Waiter[] = [];
  private writing: Promise<void> | undefined;
  private failure: UploadHubError | undefined;
  /** Bytes accepted and not yet written: queued, or in the write under way. Never negative. */
  private pending = 0;

  constructor(
    public record: UploadRecord,
    committed: number,
    private readonly store: UploadStore,
    /** Called after each write with the new committed offset. */
    private readonly onCommit: (upload: Upload) => void,
    /** Called once when a write fails: the store could not take the bytes (disk full, I/O error). */
    private readonly onWriteError: (upload: Upload, error: unknown) => void = () => undefined,
    /** This upload's window (FlowControl.ts); counted against the shared budget while it has an owner. */
    readonly credit: UploadCredit,
  ) {
    this.committed = committed;
    this.received = committed;
    this.limit = committed;
  }

  /** The attachment currently allowed to write (a connection, a multipart request). */
  get owner(): object | undefined {
    return this.writerOf;
  }

  set owner(owner: object | undefined) {
    this.writerOf = owner;
    this.credit.setAttached(owner !== undefined);
  }

  get id(): string {
    return this.record.id;
  }

  get complete(): boolean {
    return this.committed === this.record.size;
  }

  /** Why the upload stopped taking bytes (cancelled, failed, a write error); whoever set it ends the upload. */
  get halted(): UploadHubError | undefined {
    return this.failure;
  }

  /** Bytes accepted but not yet written. */
  get buffered(): number {
    return this.pending;
  }

  /**
   * Prepares for writing from the committed offset: opens the store and, after a restart,
   * re-hashes the bytes already stored (a hash's state cannot be persisted).
   */
  async open(): Promise<void> {
    // An upload being cancelled or failed is never reopened: its bytes are about to go.
    if (this.failure) throw this.failure;
    if (this.writer) return;
    this.opening ??= (async () => {
      if (!this.hash) {
        const hash = createHash('sha256');
        if (this.committed > 0) {
          for await (const piece of this.store.createReadStream(this.id, { start: 0, end: this.committed })) hash.update(piece as Buffer);
        }
        this.hash = hash;
      }
      return this.store.openWriter(this.id, this.committed);
    })();
    try {
      this.writer = await this.opening;
    } finally {
      this.opening = undefined;
    }
  }

  /** Grants credit up to `committed + window`. */
  grant(window: number): void {
    this.limit = Math.max(this.limit, this.committed + window);
  }

  /** Applies the offset rules to one chunk. Synchronous, so chunks are decided in arrival order. */
  accept(offset: number, data: Uint8Array): ChunkOutcome {
    if (this.failure) return { status: 'rejected', error: this.failure };
    const end = offset + data.byteLength;
    if (end > this.record.size) {
      return { status: 'rejected', error: new UploadHubError('ERR_SIZE_MISMATCH', `Chunk [${offset}, ${end}) passes the declared size ${this.record.size}`) };
    }
    if (end <= this.received && data.byteLength > 0) return { status: 'duplicate', committed: this.whenCommitted(end) };
    if (offset > this.received) return { status: 'gap', committed: Promise.resolve() };
    if (end > this.limit) {
      return { status: 'rejected', error: new UploadHubError('ERR_FLOW_CONTROL', `Chunk end ${end} passes the granted limit ${this.limit}`) };
    }
    if (!this.writer || !this.hash) {
      return { status: 'rejected', error: new UploadHubError('ERR_NOT_ATTACHED', 'Upload is not open for writing') };
    }
    // An overlapping chunk contributes only the bytes past what was already accepted.
    const fresh = offset < this.received ? data.subarray(this.received - offset) : data;
    if (fresh.byteLength > 0) {
      this.queue.push(fresh);
      this.pending += fresh.byteLength;
      this.received = end;
      // The write is dispatched first, so the disk works while this thread hashes.
      this.writing ??= this.drain();
      this.hash.update(fresh);
    }
    return { status: 'accepted', committed: this.whenCommitted(end) };
  }

  /** Resolves once everything accepted is written (or the upload failed). */
  async settled(): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
  }

  /** The sha256 of all bytes; only once complete. */
  digest(): string {
    if (!this.hash || !this.complete) throw new UploadHubError('ERR_INTERNAL', 'Digest requested before the upload is complete');
    return this.hash.copy().digest('hex');
  }

  /** Closes the writer once the queue is written; the upload stays resumable. */
  async release(): Promise<void> {
    await this.settled();
    const writer = this.writer;
    this.writer = undefined;
    this.limit = this.committed;
    await writer?.close();
  }

  /** Fails pending chunks and stops writing; used for cancel, failure and shutdown. */
  async abort(error: UploadHubError): Promise<void> {
    this.failure = error;
    // Queued bytes are dropped; a write under way still finishes and is counted out by drain().
    for (const chunk of this.queue) this.pending -= chunk.byteLength;
    this.queue = [];
    this.received = this.committed;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    await this.release().catch(() => undefined);
  }

  private whenCommitted(end: number): Promise<void> {
    if (end <= this.committed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.waiters.push({ end, resolve, reject }));
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.writer) {
        const batch = this.queue;
        this.queue = [];
        let batchBytes = 0;
        for (const chunk of batch) batchBytes += chunk.byteLength;
        try {
          this.committed += await this.writer.write(batch, this.committed);
        } finally {
          this.pending -= batchBytes;
        }
        while (this.waiters.length > 0 && (this.waiters[0] as Waiter).end <= this.committed) (this.waiters.shift() as Waiter).resolve();
        this.onCommit(this);
      }
    } catch (error) {
      const failure = storageError(error, 'Writing the upload');
      this.failure = failure;
      for (const chunk of this.queue) this.pending -= chunk.byteLength;
      this.queue = [];
      for (const waiter of this.waiters.splice(0)) waiter.reject(failure);
      this.onWriteError(this, failure);
    } finally {
      this.writing = undefined;
    }
  }
}
