/**
 * Where an upload's bytes and state live. The core talks only to this interface; the disk
 * store is the default, and every store runs the same conformance suite
 * (test/integration/store.conformance.test.ts).
 */
import type { Readable } from 'node:stream';
import type { ErrorInfo, JsonValue, Phase, UploadState } from '../../shared/messages.js';

/** The durable part of an upload: everything needed to resume it after a restart. */
export interface UploadRecord {
  id: string;
  name: string;
  size: number;
  mimeType: string;
  metadata: Record<string, string>;
  owner: string;
  state: UploadState;
  /** sha256 the client declared, checked when the last byte is in. */
  expectedSha256?: string;
  /** sha256 of the received bytes, once all are in. */
  sha256?: string;
  createdAt: number;
  updatedAt: number;
  error?: ErrorInfo;
  result?: JsonValue;
  /** Stage the upload was in when it stopped (failed or cancelled while processing). */
  stage?: string;
  /** Overall percent when last saved, so a restarted hub reports where it was. */
  percent?: number;
  /** Bytes committed when last saved: what a finished upload reports after a restart. */
  bytes?: number;
  /** The bar's phase and stage percent when last saved, for statuses built from the record. */
  phase?: Phase;
  stagePercent?: number;
}

/** Appends bytes to one upload's data. */
export interface ByteWriter {
  /** Writes `chunks` back to back starting at `position`; resolves with the bytes written. */
  write(chunks: readonly Uint8Array[], position: number): Promise<number>;
  /** Flushes to stable storage and releases the handle. */
  close(): Promise<void>;
}

export interface UploadStore {
  /** Prepares storage and returns every record it holds. */
  init(): Promise<UploadRecord[]>;
  /** One stored record, or undefined when there is none. */
  load(id: string): Promise<UploadRecord | undefined>;
  /** Persists a record atomically: a crash leaves the old or the new one, never a torn one. */
  save(record: UploadRecord): Promise<void>;
  /** Resolves when every save started so far has finished (shutdown). */
  flush(): Promise<void>;
  /** Releases what init() took (the disk store's data directory lock); called once, after flush(). */
  close?(): Promise<void>;
  /** Deletes record, bytes and outputs. */
  remove(id: string): Promise<void>;
  /** Deletes bytes and outputs, keeps the record (a cancelled upload stays visible). */
  removeData(id: string): Promise<void>;
  /** Bytes stored for the upload so far, and when they were last written (ms since epoch; 0 when none). */
  stat(id: string): Promise<{ bytes: number; modifiedAt: number }>;
  /**
   * Opens the upload's data for appending at `offset`; anything stored past it is discarded.
   * With a fencing token (several nodes share the bytes), a writer opened with an older token
   * than the latest refuses to write (ERR_LEASE_LOST).
   */
  openWriter(id: string, offset: number, fence?: number): Promise<ByteWriter>;
  /** Reads stored bytes [start, end). */
  createReadStream(id: string, range?: { start?: number; end?: number }): Readable;
  /** A directory a processing stage may write its outputs to; removed with the upload. */
  outputDir(id: string): Promise<string>;
  /**
   * Bytes still free where uploads are written, for minFreeDiskBytes: a create that would go
   * below it is refused before any byte. Absent: the hub does not check.
   */
  freeBytes?(): Promise<number>;
}
