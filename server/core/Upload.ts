/**
 * One upload's byte path: offsets, the flow-control limit, the write queue and the running
 * sha256. It knows nothing of connections or events; UploadHub drives it and publishes.
 *
 * Offsets, owned here and changed by no one else: `received` is the end of the last accepted
 * chunk (queued or written); `committed` the end of what the store has written and the
 * registry recorded. `limit` is the highest end offset the hub has granted; bytes in memory are
 * at most `limit - committed`, i.e. one window.
 */
import { createHash, type Hash } from 'node:crypto';
import type { ChunkStatus } from '../../shared/messages.js';
import { UploadHubError } from '../../shared/errors.js';
import type { ByteWriter, UploadRecord, UploadStore } from '../store/UploadStore.js';
import { storageError } from '../store/storageError.js';
import type { UploadCredit } from './FlowControl.js';
import type { Lease } from './Registry.js';

/**
 * Whoever sends an upload's bytes: a socket session, an HTTP request. At most one writer is
 * attached to an upload at a time; the upload's owner is the principal it belongs to.
 */
export interface Writer {
  /** The hub took the upload away (cancel, failure, completion, another writer resumed it). */
  detached(uploadId: string, reason: UploadHubError | undefined): void;
}

/** How an upload reaches the registry: its lease, and the record of each commit under it. */
export interface UploadLedger {
  lease: Lease;
  /** Clustered: bytes are opened with the lease's fencing token. */
  fenced: boolean;
  /** Called after each write, before the bytes count as committed (the registry's offset). */
  commit(committed: number): Promise<void>;
}

export type ChunkOutcome =
  | { status: ChunkStatus; committed: Promise<void> }
  | { status: 'rejected'; error: UploadHubError };

interface Waiter {
  end: number;
  resolve: () => void;
  reject: (error: UploadHubError) => void;
}

export class Upload {
  private committedTo: number;
  private receivedTo: number;
  private limitTo: number;
  private attached: Writer | undefined;
  private file: ByteWriter | undefined;
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
    /** This upload's window (FlowControl.ts); counted against the shared budget while it has a writer. */
    readonly credit: UploadCredit,
    readonly ledger: UploadLedger,
  ) {
    this.committedTo = committed;
    this.receivedTo = committed;
    this.limitTo = committed;
  }

  get committed(): number {
    return this.committedTo;
  }

  get received(): number {
    return this.receivedTo;
  }

  get limit(): number {
    return this.limitTo;
  }

  /** The writer currently allowed to send bytes (a connection, a multipart request). */
  get writer(): Writer | undefined {
    return this.attached;
  }

  set writer(writer: Writer | undefined) {
    this.attached = writer;
    this.credit.setAttached(writer !== undefined);
  }

  /** A restart found every byte in (the upload was past its bytes phase). */
  restoreComplete(): void {
    this.committedTo = this.receivedTo = this.limitTo = this.record.size;
  }

  /** A writer (re)attached: credit starts over from the committed offset with `window`. */
  restart(window: number): void {
    this.limitTo = this.committedTo;
    this.grant(window);
  }

  /** A writer learned the exact size at the end (multipart): the upload is as long as what was committed. */
  truncateToCommitted(): void {
    this.record.size = this.committedTo;
  }

  get id(): string {
    return this.record.id;
  }

  get complete(): boolean {
    return this.committedTo === this.record.size;
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
    if (this.file) return;
    this.opening ??= (async () => {
      if (!this.hash) {
        const hash = createHash('sha256');
        if (this.committedTo > 0) {
          for await (const piece of this.store.createReadStream(this.id, { start: 0, end: this.committedTo })) hash.update(piece as Buffer);
        }
        this.hash = hash;
      }
      return this.store.openWriter(this.id, this.committedTo, this.ledger.fenced ? this.ledger.lease.fence : undefined);
    })();
    try {
      this.file = await this.opening;
    } finally {
      this.opening = undefined;
    }
  }

  /** Grants credit up to `committed + window`. */
  grant(window: number): void {
    this.limitTo = Math.max(this.limitTo, this.committedTo + window);
  }

  /** Applies the offset rules to one chunk. Synchronous, so chunks are decided in arrival order. */
  accept(offset: number, data: Uint8Array): ChunkOutcome {
    if (this.failure) return { status: 'rejected', error: this.failure };
    const end = offset + data.byteLength;
    if (end > this.record.size) {
      return { status: 'rejected', error: new UploadHubError('ERR_SIZE_MISMATCH', `Chunk [${offset}, ${end}) passes the declared size ${this.record.size}`) };
    }
    if (end <= this.receivedTo && data.byteLength > 0) return { status: 'duplicate', committed: this.whenCommitted(end) };
    if (offset > this.receivedTo) return { status: 'gap', committed: Promise.resolve() };
    if (end > this.limitTo) {
      return { status: 'rejected', error: new UploadHubError('ERR_FLOW_CONTROL', `Chunk end ${end} passes the granted limit ${this.limitTo}`) };
    }
    if (!this.file || !this.hash) {
      return { status: 'rejected', error: new UploadHubError('ERR_NOT_ATTACHED', 'Upload is not open for writing') };
    }
    // An overlapping chunk contributes only the bytes past what was already accepted.
    const fresh = offset < this.receivedTo ? data.subarray(this.receivedTo - offset) : data;
    if (fresh.byteLength > 0) {
      this.queue.push(fresh);
      this.pending += fresh.byteLength;
      this.receivedTo = end;
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
    const writer = this.file;
    this.file = undefined;
    this.limitTo = this.committedTo;
    await writer?.close();
  }

  /** Fails pending chunks and stops writing; used for cancel, failure and shutdown. */
  async abort(error: UploadHubError): Promise<void> {
    this.failure = error;
    // Queued bytes are dropped; a write under way still finishes and is counted out by drain().
    for (const chunk of this.queue) this.pending -= chunk.byteLength;
    this.queue = [];
    this.receivedTo = this.committedTo;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    await this.release().catch(() => undefined);
  }

  private whenCommitted(end: number): Promise<void> {
    if (end <= this.committedTo) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.waiters.push({ end, resolve, reject }));
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.file) {
        const batch = this.queue;
        this.queue = [];
        let batchBytes = 0;
        for (const chunk of batch) batchBytes += chunk.byteLength;
        try {
          // A node that can no longer be sure of its lease (not renewed in time: Redis unreachable)
          // waits until it is renewed; one that lost it stops writing (ERR_LEASE_LOST).
          if (!this.ledger.lease.valid) await this.ledger.lease.whenValid();
          const end = this.committedTo + (await this.file.write(batch, this.committedTo));
          // Acknowledged bytes are recorded first: whoever takes the upload over resumes from here.
          await this.ledger.commit(end);
          this.committedTo = end;
        } finally {
          this.pending -= batchBytes;
        }
        while (this.waiters.length > 0 && (this.waiters[0] as Waiter).end <= this.committedTo) (this.waiters.shift() as Waiter).resolve();
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
