/**
 * Saves upload records so that a save is never lost: a failed save is retried with backoff
 * until it lands (or the hub closes), every failure is reported, and the hub's storage health
 * says "degraded" while any record's latest state is not on disk.
 *
 * Callers that must not announce before the record is durable (terminal states) await
 * `save()`; others fire and forget, and still get the retries.
 *
 * @example
 * const saver = new RecordSaver(store, { onFailure: (error, id) => log.warn({ id, error }) });
 * await saver.save(record); // resolves once this state (or a later one) is stored
 */
import { UploadHubError } from '../../shared/errors.js';
import type { UploadRecord } from '../store/UploadStore.js';

/** Where records are saved: the registry (which may refuse a save whose lease was lost). */
export interface RecordTarget {
  save(record: UploadRecord): Promise<void>;
}
import { storageError } from '../store/storageError.js';

/** Backoff between attempts to save one record, in ms; the last delay repeats. */
export const SAVE_RETRY_DELAYS_MS: readonly number[] = [50, 200, 1_000, 2_000, 5_000];

export interface RecordSaverInit {
  /** Every failed attempt, with the attempt's number (1 = the first try). */
  onFailure?: (error: UploadHubError, uploadId: string, attempt: number) => void;
  /** A record whose earlier attempts failed was stored at last. */
  onRecovered?: (uploadId: string) => void;
  retryDelaysMs?: readonly number[];
}

export interface StorageHealth {
  /** 'degraded' while some record's latest state could not be saved yet. */
  status: 'ok' | 'degraded';
  /** Records waiting for a retry. */
  failingRecords: number;
  /** Failed save attempts since start. */
  failedSaves: number;
  /** The latest failure, while degraded. */
  lastError?: { code: string; message: string };
}

interface Retrying {
  record: UploadRecord;
  attempt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  waiters: Array<{ resolve: () => void; reject: (error: UploadHubError) => void }>;
}

export class RecordSaver {
  private readonly retrying = new Map<string, Retrying>();
  private failedSaves = 0;
  private lastError: UploadHubError | undefined;
  private closed = false;
  private readonly delays: readonly number[];

  constructor(private readonly store: RecordTarget, private readonly init: RecordSaverInit = {}) {
    this.delays = init.retryDelaysMs ?? SAVE_RETRY_DELAYS_MS;
  }

  /**
   * Resolves once the record is stored as it is at that moment or later. Rejects only when the
   * saver closes before any attempt succeeded (shutdown).
   */
  save(record: UploadRecord): Promise<void> {
    if (this.closed) return Promise.reject(new UploadHubError('ERR_SHUTTING_DOWN', 'Record not saved: the hub is closing'));
    const retrying = this.retrying.get(record.id);
    if (retrying) {
      // A retry is scheduled: it saves the record's latest state, which includes this one.
      retrying.record = record;
      return new Promise((resolve, reject) => retrying.waiters.push({ resolve, reject }));
    }
    return this.store.save(record).catch((error: unknown) => {
      const failure = storageError(error, 'Saving the record');
      // Another node holds the upload now: this save can never land, and must not.
      if (failure.code === 'ERR_LEASE_LOST') throw failure;
      return this.retry(record, failure);
    });
  }

  get health(): StorageHealth {
    const health: StorageHealth = {
      status: this.retrying.size > 0 ? 'degraded' : 'ok',
      failingRecords: this.retrying.size,
      failedSaves: this.failedSaves,
    };
    if (this.retrying.size > 0 && this.lastError) health.lastError = { code: this.lastError.code, message: this.lastError.message };
    return health;
  }

  /** Stops retrying; waiters of records never saved are rejected with ERR_SHUTTING_DOWN. */
  close(): void {
    this.closed = true;
    const shutdown = new UploadHubError('ERR_SHUTTING_DOWN', 'Record not saved: the hub is closing');
    for (const retrying of this.retrying.values()) {
      clearTimeout(retrying.timer);
      for (const waiter of retrying.waiters) waiter.reject(shutdown);
    }
    this.retrying.clear();
  }

  private retry(record: UploadRecord, error: UploadHubError): Promise<void> {
    const already = this.retrying.get(record.id);
    if (already) {
      // Another save of this record failed at the same time and is being retried: join it.
      already.record = record;
      return new Promise((resolve, reject) => already.waiters.push({ resolve, reject }));
    }
    const retrying: Retrying = { record, attempt: 1, timer: undefined, waiters: [] };
    this.retrying.set(record.id, retrying);
    const saved = new Promise<void>((resolve, reject) => retrying.waiters.push({ resolve, reject }));
    this.failed(retrying, error);
    return saved;
  }

  private failed(retrying: Retrying, error: UploadHubError): void {
    this.failedSaves++;
    this.lastError = error;
    this.init.onFailure?.(error, retrying.record.id, retrying.attempt);
    if (this.closed) return;
    const delay = this.delays[Math.min(retrying.attempt - 1, this.delays.length - 1)] ?? 1_000;
    retrying.timer = setTimeout(() => this.attempt(retrying), delay);
    // A pending retry must not keep a process alive that is otherwise done.
    retrying.timer.unref?.();
  }

  private attempt(retrying: Retrying): void {
    retrying.timer = undefined;
    retrying.attempt++;
    this.store.save(retrying.record).then(
      () => {
        if (this.retrying.get(retrying.record.id) !== retrying) return;
        this.retrying.delete(retrying.record.id);
        this.init.onRecovered?.(retrying.record.id);
        for (const waiter of retrying.waiters) waiter.resolve();
      },
      (error: unknown) => {
        if (this.retrying.get(retrying.record.id) !== retrying) return;
        const failure = storageError(error, 'Saving the record');
        if (failure.code === 'ERR_LEASE_LOST') {
          this.retrying.delete(retrying.record.id);
          for (const waiter of retrying.waiters) waiter.reject(failure);
          return;
        }
        this.failed(retrying, failure);
      },
    );
  }
}
