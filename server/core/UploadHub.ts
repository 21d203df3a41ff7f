/**
 * The core: uploads, their state machine, offsets, processing and events. It knows no
 * transport. Transports (ws, Socket.IO, HTTP) call it and forward what it publishes; every
 * rule — limits, ownership, windows, state changes — lives here once.
 *
 * @example
 * const hub = new UploadHub({ options: { dataDir: './data' } });
 * await hub.start();
 * const status = await hub.create(ANONYMOUS, { name: 'a.bin', size: 3 });
 */
import { randomBytes } from 'node:crypto';
import { UploadHubError, toHubError, type ErrorCode } from '../../shared/errors.js';
import {
  isTerminalState,
  type ChunkReply,
  type TerminalState,
  type CreateInput,
  type HubEvent,
  type HubEventBody,
  type JsonValue,
  type LogLevel,
  type Phase,
  type UploadState,
  type UploadStatus,
} from '../../shared/messages.js';
import { processingPercent, RateMeter, uploadPercent, type ProgressPlan } from '../../shared/progress.js';
import { resolveOptions, type HubOptions, type HubOptionsInput } from '../config.js';
import { DiskStore } from '../store/DiskStore.js';
import type { UploadRecord, UploadStore } from '../store/UploadStore.js';
import { Pipeline } from '../processing/Pipeline.js';
import { ProcessingQueue, type ProcessingHost } from '../processing/ProcessingQueue.js';
import type { Stage, StageUpload } from '../processing/Stage.js';
import { ANONYMOUS, mayCreate, maySee, mayWrite, roleOf, type Authenticate, type Principal } from './auth.js';
import { EventBus } from './EventBus.js';
import { LogLimiter } from './LogLimiter.js';
import { Upload } from './Upload.js';
import { Limits } from './Limits.js';
import { FlowControl } from './FlowControl.js';
import { RecordSaver, type StorageHealth } from './RecordSaver.js';
import { storageError } from '../store/storageError.js';
import type { Logger } from 'pino';

/** Whoever writes an upload's bytes: a socket session, a multipart request. */
export interface Attachment {
  /** The hub took the upload away (cancel, failure, completion, another attachment resumed it). */
  detached(uploadId: string, reason: UploadHubError | undefined): void;
}

export interface UploadHubInit {
  options?: HubOptionsInput;
  /** Defaults to a DiskStore on options.dataDir. */
  store?: UploadStore;
  /** Absent: every connection is ANONYMOUS. */
  authenticate?: Authenticate;
  /**
   * The principal as the authority sees it now (its role may have changed), or null when it
   * was revoked. Asked before an upload is finalized, so a writer whose token was revoked
   * mid-upload does not complete it. Absent: principals are not re-checked.
   */
  revalidate?: (principal: Principal) => Principal | null | Promise<Principal | null>;
  /** Stages to run after the bytes are in. Absent or empty: uploads complete when the last byte is written. */
  pipeline?: Pipeline | readonly Stage[];
  /** Where the hub reports what no caller hears (a record save that failed). Absent: nowhere. */
  logger?: Logger;
}

/** Where a page of `list()` starts: after this upload in the list's order (createdAt, then id). */
export interface ListPosition {
  createdAt: number;
  id: string;
}

export interface ListFilter {
  state?: UploadState | readonly UploadState[];
  /** At most this many uploads. Absent: all of them. */
  limit?: number;
  /** Only uploads after this one in the list's order, as given by the last of a previous page. */
  after?: ListPosition;
  /** `asc` (default): oldest first; `desc`: newest first, as a dashboard shows them. */
  order?: ListOrder;
}

export type ListOrder = 'asc' | 'desc';

/** Runtime view of an upload beyond its record: where its bar is. */
interface Live {
  upload: Upload;
  plan: ProgressPlan;
  stages: Stage[];
  percent: number;
  phase: Phase;
  stage: string | undefined;
  stagePercent: number | undefined;
  queuePosition: number | undefined;
  rate: RateMeter;
  logs: LogLimiter;
  /** Set once finalizing started; resolves when it is over. */
  finalizing: Promise<void> | undefined;
  /** Set when a write failed; resolves once the upload is failed, saved and published. */
  writeFailure: Promise<void> | undefined;
  /** The principal of the latest writer, re-checked before the upload is finalized. */
  writer: Principal | undefined;
}

function compareListPosition(a: ListPosition, b: ListPosition): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function newId(): string {
  return randomBytes(16).toString('base64url');
}

export class UploadHub {
  readonly options: HubOptions;
  readonly store: UploadStore;
  readonly events: EventBus;
  readonly pipeline: Pipeline;
  private readonly authenticateHook: Authenticate | undefined;
  private readonly revalidate: UploadHubInit['revalidate'];
  private readonly uploads = new Map<string, Live>();
  private readonly processing: ProcessingQueue;
  /** Cancels under way, by upload id, so a second cancel joins the first. */
  private readonly cancelling = new Map<string, Promise<UploadStatus>>();
  private sweepTimer: ReturnType<typeof setInterval> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly saver: RecordSaver;
  /** One line per lifecycle step of each upload, with its id. */
  private readonly logger: Logger | undefined;
  /** Windows from each upload's measured rate, sharing maxBufferedBytes among attached uploads. */
  private readonly flow: FlowControl;
  /** Abuse limits (Limits.ts): per principal, per declared upload, and its first bytes' type. */
  readonly limits: Limits;
  private started = false;
  private closing = false;

  constructor(init: UploadHubInit = {}) {
    this.options = resolveOptions(init.options);
    this.store = init.store ?? new DiskStore(this.options.dataDir);
    this.authenticateHook = init.authenticate;
    this.revalidate = init.revalidate;
    this.pipeline = init.pipeline instanceof Pipeline ? init.pipeline : new Pipeline(init.pipeline ?? []);
    this.events = new EventBus(this.options.eventHistorySize);
    this.flow = new FlowControl(this.options);
    this.limits = new Limits(this.options, this.store, async (id, error) => {
      const live = this.uploads.get(id);
      if (live) await this.fail(live, error);
    });
    const logger = init.logger;
    this.logger = logger;
    this.saver = new RecordSaver(this.store, {
      onFailure: (error, uploadId, attempt) => logger?.error({ uploadId, code: error.code, attempt, err: error.message }, 'saving the upload record failed; retrying'),
      onRecovered: (uploadId) => logger?.info({ uploadId }, 'upload record saved after retries'),
    });
    this.processing = new ProcessingQueue(this.processingHost(), {
      concurrency: this.options.processingConcurrency,
      stageTimeoutMs: this.options.stageTimeoutMs,
      abortDeadlineMs: this.options.abortDeadlineMs,
    });
  }

  /** Loads every stored upload: incomplete ones become resumable, interrupted processing restarts. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const record of await this.store.init()) {
      const stored = await this.restoredBytes(record);
      const live = this.track(record, stored);
      if (record.state === 'uploaded' || record.state === 'queued' || record.state === 'processing') {
        // The bytes are all in; processing starts over since a stage's progress cannot be resumed.
        live.upload.committed = record.size;
        live.upload.received = record.size;
        record.state = 'uploaded';
        this.enqueueProcessing(live);
      } else if ((record.state === 'uploading' || record.state === 'created') && stored === record.size && record.size > 0) {
        // Killed between the last write and finalizing: finish now.
        this.background(this.finalize(live));
      }
    }
    const sweepEvery = Math.min(60_000, Math.max(1_000, Math.min(this.options.uploadTtlMs || 60_000, this.options.finishedRetentionMs || 60_000)));
    this.sweepTimer = setInterval(() => this.background(this.sweep()), sweepEvery);
    this.sweepTimer.unref();
  }

  /**
   * Where a stored upload stands, so a restart never moves it backwards: bytes all in once
   * uploaded, the saved count once finished, else what the store holds (and an upload with
   * bytes is `uploading`, last touched when its bytes were).
   */
  private async restoredBytes(record: UploadRecord): Promise<number> {
    if (record.state === 'completed' || record.state === 'uploaded' || record.state === 'queued' || record.state === 'processing') return record.size;
    if (isTerminalState(record.state)) return record.bytes ?? 0;
    const stored = await this.store.stat(record.id);
    const bytes = Math.min(stored.bytes, record.size);
    if (bytes > 0) {
      record.state = 'uploading';
      record.updatedAt = Math.max(record.updatedAt, stored.modifiedAt);
    }
    return bytes;
  }

  /** Stops processing and timers; incomplete uploads stay resumable on the next start. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.sweepTimer);
    await this.processing.close();
    const shutdown = new UploadHubError('ERR_SHUTTING_DOWN');
    await Promise.all(
      [...this.uploads.values()].map(async (live) => {
        const owner = live.upload.owner as Attachment | undefined;
        live.upload.owner = undefined;
        owner?.detached(live.upload.id, shutdown);
        await live.upload.release().catch(() => undefined);
      }),
    );
    // Finalizations and failures under way end with a record save; let them land first.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    // Incomplete uploads are saved as they stand (state, bytes, updatedAt), once: a failing disk
    // must not hold the shutdown, and a restart falls back on the stored bytes.
    await Promise.allSettled([...this.uploads.values()].filter((live) => !isTerminalState(live.upload.record.state)).map((live) => {
      this.stamp(live);
      return this.store.save(live.upload.record);
    }));
    this.saver.close();
    await this.store.flush();
    await this.store.close?.();
  }

  /** Work started without a caller to await it; close() waits for it. */
  private background(work: Promise<void>): void {
    const tracked = work.catch(() => undefined);
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  async authenticate(token: string | undefined): Promise<Principal> {
    if (!this.authenticateHook) return ANONYMOUS;
    let principal: Principal | null;
    try {
      principal = await this.authenticateHook(token);
    } catch (error) {
      throw toHubError(error, 'ERR_UNAUTHORIZED');
    }
    if (!principal) throw new UploadHubError('ERR_UNAUTHORIZED', token ? 'Token refused' : 'A token is required');
    return principal;
  }

  // ------------------------------------------------------------------------------------------
  // Uploads

  /**
   * @param options.sizeKnown false when `input.size` is only an upper bound (a multipart part of
   *                          unknown length): minFreeDiskBytes cannot be judged from it.
   */
  async create(principal: Principal, input: CreateInput, options: { sizeKnown?: boolean } = {}): Promise<UploadStatus> {
    this.assertOpen();
    if (!mayCreate(principal)) throw new UploadHubError('ERR_FORBIDDEN', `The ${roleOf(principal)} role may not create uploads`);
    if (input.size > this.options.maxFileSize) {
      throw new UploadHubError('ERR_FILE_TOO_LARGE', `File of ${input.size} bytes exceeds maxFileSize ${this.options.maxFileSize}`);
    }
    const id = newId();
    await this.limits.admit(principal, input, id, options.sizeKnown);
    const now = Date.now();
    const record: UploadRecord = {
      id,
      name: input.name,
      size: input.size,
      mimeType: input.mimeType || 'application/octet-stream',
      metadata: { ...(input.metadata ?? {}) },
      owner: principal.id,
      state: 'created',
      createdAt: now,
      updatedAt: now,
      percent: 0,
    };
    if (input.sha256) record.expectedSha256 = input.sha256;
    try {
      await this.store.save(record);
    } catch (error) {
      this.limits.closed(principal.id, id);
      throw storageError(error, 'Saving the new upload');
    }
    const live = this.track(record, 0);
    const status = this.statusOf(live);
    this.publish({ type: 'created', uploadId: record.id, upload: status });
    this.logger?.info({ uploadId: record.id, owner: record.owner, name: record.name, size: record.size, mimeType: record.mimeType }, 'upload created');
    return status;
  }

  /** Status for a principal; ERR_NOT_FOUND when the upload is unknown or invisible to it. */
  status(principal: Principal, id: string): UploadStatus {
    return this.statusOf(this.visible(principal, id));
  }

  /**
   * The uploads `principal` may see, oldest first (createdAt, then id: a stable order to page
   * through), or newest first with `order: 'desc'`. Only the page's own statuses are built,
   * however many uploads match.
   */
  list(principal: Principal, filter: ListFilter = {}): UploadStatus[] {
    const states = filter.state === undefined ? undefined : new Set<UploadState>(typeof filter.state === 'string' ? [filter.state] : filter.state);
    const { after } = filter;
    const direction = filter.order === 'desc' ? -1 : 1;
    const matching: Live[] = [];
    for (const live of this.uploads.values()) {
      const { record } = live.upload;
      if (!maySee(principal, record.owner)) continue;
      if (states && !states.has(record.state)) continue;
      if (after && direction * compareListPosition(record, after) <= 0) continue;
      matching.push(live);
    }
    matching.sort((a, b) => direction * compareListPosition(a.upload.record, b.upload.record));
    const page = filter.limit === undefined ? matching : matching.slice(0, Math.max(0, filter.limit));
    return page.map((live) => this.statusOf(live));
  }

  /** The principal that owns an upload, or undefined when the hub does not know it. */
  ownerOf(uploadId: string): string | undefined {
    return this.uploads.get(uploadId)?.upload.record.owner;
  }

  /** Whether `principal` may see this upload's events. */
  canSee(principal: Principal, uploadId: string): boolean {
    const live = this.uploads.get(uploadId);
    return live !== undefined && maySee(principal, live.upload.record.owner);
  }

  /**
   * Makes `attachment` the one writer of an upload (taking it from any previous one, as when a
   * client resumes on a new connection) and returns where to continue.
   */
  async attach(principal: Principal, id: string, attachment: Attachment): Promise<{ upload: UploadStatus; offset: number; window: number }> {
    this.assertOpen();
    const live = this.owned(principal, id);
    const { upload } = live;
    const previous = upload.owner as Attachment | undefined;
    if (previous && previous !== attachment) {
      upload.owner = undefined;
      previous.detached(id, undefined);
    }
    if (isTerminalState(upload.record.state) || upload.complete) {
      // Nothing left to send: the caller gets the status and waits for (or already has) the end.
      // An empty file is complete from the start; finalizing it is what a last chunk would do.
      if (upload.complete && (upload.record.state === 'created' || upload.record.state === 'uploading')) this.background(this.finalize(live));
      return { upload: this.statusOf(live), offset: upload.committed, window: 0 };
    }
    upload.owner = attachment;
    live.writer = principal;
    // Bytes a previous connection left in the queue are written before the new one continues.
    await upload.settled();
    await upload.open();
    if (upload.owner !== attachment) throw new UploadHubError('ERR_UPLOAD_STATE', 'The upload was taken over or ended while resuming');
    upload.record.updatedAt = Date.now();
    const window = upload.credit.restart(upload.committed, Date.now());
    upload.limit = upload.committed;
    upload.grant(window);
    return { upload: this.statusOf(live), offset: upload.committed, window };
  }

  /** Releases the upload if `attachment` still holds it; it stays resumable. */
  async detach(id: string, attachment: Attachment): Promise<void> {
    const live = this.uploads.get(id);
    if (!live || live.upload.owner !== attachment) return;
    live.upload.owner = undefined;
    if (!live.finalizing) await live.upload.release().catch(() => undefined);
  }

  /**
   * Applies the offset rules to one chunk and resolves, once its bytes are committed, with the
   * reply for the sender: an ack carrying the committed offset and the window, or an error.
   */
  async receive(attachment: Attachment, principal: Principal, id: string, offset: number, data: Uint8Array): Promise<ChunkReply> {
    const live = this.uploads.get(id);
    const fail = (code: ErrorCode, message?: string, committed?: number): ChunkReply => {
      const reply: ChunkReply = { type: 'error', code, message: message ?? new UploadHubError(code).message, uploadId: id, chunkOffset: offset };
      if (committed !== undefined) reply.offset = committed;
      return reply;
    };
    // An upload the writer's principal may not see is answered exactly as an unknown one: no
    // state, no offset, nothing to tell that the id exists.
    if (!live || !maySee(principal, live.upload.record.owner)) return fail('ERR_NOT_FOUND', `No upload ${id}`);
    const { upload } = live;
    if (data.byteLength > this.options.maxChunkSize) {
      return fail('ERR_CHUNK_TOO_LARGE', `Chunk of ${data.byteLength} bytes exceeds maxChunkSize ${this.options.maxChunkSize}`, upload.committed);
    }
    if (upload.record.state === 'cancelled') return fail('ERR_CANCELLED', undefined, upload.committed);
    if (isTerminalState(upload.record.state)) return fail('ERR_UPLOAD_STATE', `Upload is ${upload.record.state}`, upload.committed);
    if (upload.owner !== attachment) return fail('ERR_NOT_ATTACHED', undefined, upload.committed);
    const outcome = upload.accept(offset, data);
    if (outcome.status === 'rejected') return fail(outcome.error.code, outcome.error.message, upload.committed);
    if (outcome.status === 'accepted' && upload.record.state === 'created') {
      // Not saved on its own: a restart treats created and uploading alike, and the next
      // state change saves it with the rest.
      upload.record.state = 'uploading';
      this.publish({ type: 'uploading', uploadId: id, bytes: upload.committed });
    }
    try {
      await outcome.committed;
    } catch (error) {
      // The writer hears of a failed write once the upload is failed for everyone.
      await live.writeFailure;
      const hubError = toHubError(error);
      return fail(hubError.code, hubError.message, upload.committed);
    }
    const window = upload.owner === attachment ? upload.credit.ack(offset + data.byteLength, upload.committed, Date.now()) : 0;
    upload.grant(window);
    return { type: 'ack', uploadId: id, chunkOffset: offset, status: outcome.status, offset: upload.committed, window };
  }

  /**
   * For writers that learn the exact size only at the end (a multipart part): the stream ended,
   * so the upload is as long as what was committed. Finalizes it (hash check, processing).
   * The size given at create must have been an upper bound.
   */
  async endOfStream(attachment: Attachment, id: string): Promise<void> {
    const live = this.uploads.get(id);
    if (!live || live.upload.owner !== attachment) throw new UploadHubError('ERR_NOT_ATTACHED');
    await live.upload.settled();
    if (isTerminalState(live.upload.record.state)) return;
    if (live.upload.committed !== live.upload.record.size) {
      live.upload.record.size = live.upload.committed;
      this.advance(live, uploadPercent(live.plan, live.upload.committed, live.upload.committed));
      this.publishProgress(live);
    }
    await this.finalize(live);
  }

  /**
   * Ends an upload its writer cannot complete (a multipart part over the limit, an aborted
   * request): bytes are removed and the upload fails with `error`'s code.
   */
  async abort(attachment: Attachment, id: string, error: UploadHubError): Promise<void> {
    const live = this.uploads.get(id);
    if (!live || live.upload.owner !== attachment) return;
    await this.fail(live, error);
  }

  /**
   * Cancels an upload wherever it is: receiving stops, a running stage's signal fires and is
   * awaited (up to abortDeadlineMs), bytes and outputs are deleted, `cancelled` is published.
   * Idempotent: a cancel while one is under way joins it (one `cancelled`, both resolve when
   * it is done); cancelling a finished upload returns its status unchanged.
   */
  async cancel(principal: Principal, id: string): Promise<UploadStatus> {
    const live = this.owned(principal, id);
    const inFlight = this.cancelling.get(id);
    if (inFlight) return inFlight;
    if (isTerminalState(live.upload.record.state)) return this.statusOf(live);
    const cancelling = this.stopAndRemove(live).finally(() => this.cancelling.delete(id));
    this.cancelling.set(id, cancelling);
    return cancelling;
  }

  private async stopAndRemove(live: Live): Promise<UploadStatus> {
    const { upload } = live;
    const cancelled = new UploadHubError('ERR_CANCELLED');
    // Receiving stops first: no chunk is written, and no writer reopens the file, while a
    // running stage is being stopped (which may take up to abortDeadlineMs).
    this.endAttachment(live, cancelled);
    const halted = upload.abort(cancelled);
    const stopped = await this.processing.cancel(upload.id);
    await halted;
    if (isTerminalState(upload.record.state)) return this.statusOf(live);
    const stage = stopped?.stage;
    await this.discard(live, cancelled);
    if (stage !== undefined) upload.record.stage = stage;
    await this.end(live, 'cancelled', stage === undefined ? {} : { stage });
    return this.statusOf(live);
  }

  /** Writes a stage's log line, limited to logLinesPerSecond per upload. */
  log(id: string, level: LogLevel, text: string, stage?: string): void {
    const live = this.uploads.get(id);
    if (!live || isTerminalState(live.upload.record.state)) return;
    live.logs.push(stage === undefined ? { level, text } : { level, text, stage });
  }

  /** Active = not terminal. For metrics and the dashboard. */
  counts(): Record<UploadState, number> {
    const counts = { created: 0, uploading: 0, uploaded: 0, queued: 0, processing: 0, completed: 0, failed: 0, cancelled: 0, expired: 0 };
    for (const live of this.uploads.values()) counts[live.upload.record.state]++;
    return counts;
  }

  /** Bytes accepted but not yet written, across all uploads: bounded by maxBufferedBytes. */
  get bufferedBytes(): number {
    let total = 0;
    for (const live of this.uploads.values()) total += live.upload.buffered;
    return total;
  }

  /** The stored bytes of a completed upload, for routes that serve them. */
  dataPath(id: string): string {
    return this.store.dataPath(id);
  }

  // ------------------------------------------------------------------------------------------
  // Internals

  private assertOpen(): void {
    if (this.closing) throw new UploadHubError('ERR_SHUTTING_DOWN');
    if (!this.started) throw new UploadHubError('ERR_INTERNAL', 'UploadHub.start() was not awaited');
  }

  private visible(principal: Principal, id: string): Live {
    const live = this.uploads.get(id);
    // An upload the principal may not see is reported as missing: ids are not to be probed.
    if (!live || !maySee(principal, live.upload.record.owner)) throw new UploadHubError('ERR_NOT_FOUND', `No upload ${id}`);
    return live;
  }

  /**
   * An upload the principal may write (resume, cancel). One it may not even see is missing, as
   * in visible(); one it sees but may not write (a watcher's) is ERR_FORBIDDEN.
   */
  private owned(principal: Principal, id: string): Live {
    const live = this.visible(principal, id);
    if (!mayWrite(principal, live.upload.record.owner)) {
      throw new UploadHubError('ERR_FORBIDDEN', `The ${roleOf(principal)} role may not change upload ${id}`);
    }
    return live;
  }

  private track(record: UploadRecord, committed: number): Live {
    const stages = this.pipeline.plan(record);
    const plan: ProgressPlan = { uploadShare: stages.length === 0 ? 100 : this.options.uploadShare, stageWeights: stages.map((s) => s.weight ?? 1) };
    const upload = new Upload(record, committed, this.store, () => this.onCommit(live), (_upload, error) => {
      // The store refused the bytes (disk full, I/O error): this upload fails now, bytes removed.
      live.writeFailure = this.fail(live, storageError(error, 'Writing the upload'));
      this.background(live.writeFailure);
    }, this.flow.credit());
    const live: Live = {
      upload,
      plan,
      stages,
      percent: Math.max(record.percent ?? 0, uploadPercent(plan, committed, record.size)),
      phase: 'upload',
      stage: record.stage,
      stagePercent: undefined,
      queuePosition: undefined,
      rate: new RateMeter(),
      logs: new LogLimiter(this.options.logLinesPerSecond, (line) => this.publish({ type: 'log', uploadId: record.id, ...line })),
      finalizing: undefined,
      writeFailure: undefined,
      writer: undefined,
    };
    this.uploads.set(record.id, live);
    if (!isTerminalState(record.state)) this.limits.opened(record.owner, record.id);
    return live;
  }

  private onCommit(live: Live): void {
    const { upload } = live;
    const now = Date.now();
    upload.record.updatedAt = now;
    live.rate.sample(now, upload.committed);
    this.advance(live, uploadPercent(live.plan, upload.committed, upload.record.size));
    this.publishProgress(live);
    // allowedTypes: the first bytes are sniffed once enough are in; a refused type fails the upload.
    const typeCheck = this.limits.checkContent(upload.record, upload.committed, upload.complete);
    if (typeCheck?.started) this.background(typeCheck.refused.then(() => undefined));
    if (upload.complete && !live.finalizing) this.background(this.finalize(live));
  }

  /** The bar never goes back. */
  private advance(live: Live, percent: number): void {
    live.percent = Math.max(live.percent, percent);
  }

  private publishProgress(live: Live): void {
    const { upload } = live;
    const body: HubEventBody = {
      type: 'progress',
      uploadId: upload.id,
      bytes: upload.committed,
      total: upload.record.size,
      percent: live.percent,
      phase: live.phase,
      bytesPerSecond: live.phase === 'upload' ? Math.round(live.rate.rate()) : 0,
      etaSeconds: live.phase === 'upload' ? live.rate.eta(upload.committed, upload.record.size) : live.rate.eta(live.percent, 100),
    };
    if (live.stage !== undefined && live.phase === 'processing') {
      body.stage = live.stage;
      body.stagePercent = live.stagePercent ?? 0;
    }
    this.publish(body);
  }

  /** Checks and completes the bytes phase once; every caller gets the same run. */
  private finalize(live: Live): Promise<void> {
    live.finalizing ??= this.finalizeOnce(live);
    return live.finalizing;
  }

  private async finalizeOnce(live: Live): Promise<void> {
    const { upload } = live;
    try {
      await upload.open();
      await upload.settled();
      if (isTerminalState(upload.record.state)) return;
      // allowedTypes: bytes of a refused type never count as uploaded (the check fails the upload).
      if (await this.limits.checkContent(upload.record, upload.committed, true)?.refused) return;
      const sha256 = upload.digest();
      this.endAttachment(live, undefined);
      await upload.release();
      if (isTerminalState(upload.record.state)) return;
      const revoked = await this.writerRevoked(live);
      if (revoked) {
        await this.fail(live, revoked);
        return;
      }
      upload.record.sha256 = sha256;
      if (upload.record.expectedSha256 && upload.record.expectedSha256 !== sha256) {
        await this.fail(live, new UploadHubError('ERR_CHECKSUM_MISMATCH', `Received bytes hash to ${sha256}, not the declared ${upload.record.expectedSha256}`));
        return;
      }
      this.setState(live, 'uploaded', { bytes: upload.committed, sha256 });
      this.enqueueProcessing(live);
    } catch (error) {
      // Halted (cancelled, or a write failed): whoever halted it ends it, not this.
      if (upload.halted) return;
      await this.fail(live, storageError(error, 'Finishing the upload'));
    }
  }

  /** Why the upload's writer may no longer complete it (token revoked, role changed), if so. */
  private async writerRevoked(live: Live): Promise<UploadHubError | undefined> {
    if (!this.revalidate || !live.writer) return undefined;
    let now: Principal | null;
    try {
      now = await this.revalidate(live.writer);
    } catch (error) {
      return toHubError(error, 'ERR_UNAUTHORIZED');
    }
    if (!now) return new UploadHubError('ERR_UNAUTHORIZED', `The token of ${live.writer.id} was revoked before the upload completed`);
    if (!mayWrite(now, live.upload.record.owner)) return new UploadHubError('ERR_FORBIDDEN', `The ${roleOf(now)} role may not complete upload ${live.upload.id}`);
    return undefined;
  }

  private enqueueProcessing(live: Live): void {
    const { upload } = live;
    const record = upload.record;
    if (live.stages.length === 0) {
      this.background(this.end(live, 'completed', {}));
      return;
    }
    // Shutting down: the upload stays `uploaded` and the next start processes it.
    if (this.closing) return;
    const stageUpload: StageUpload = {
      id: record.id, name: record.name, size: record.size, mimeType: record.mimeType, metadata: record.metadata, sha256: record.sha256 ?? '',
    };
    this.processing.enqueue({
      upload: stageUpload,
      stages: live.stages,
      path: this.store.dataPath(record.id),
      createReadStream: () => this.store.createReadStream(record.id),
      outputDir: () => this.store.outputDir(record.id),
    });
  }

  private processingHost(): ProcessingHost {
    const active = (id: string): Live | undefined => {
      const live = this.uploads.get(id);
      return live && !isTerminalState(live.upload.record.state) ? live : undefined;
    };
    return {
      queued: (id, position) => {
        const live = active(id);
        if (!live || live.queuePosition === position) return;
        live.queuePosition = position;
        this.setState(live, 'queued', { position });
      },
      started: (id) => {
        const live = active(id);
        if (!live) return;
        live.queuePosition = undefined;
        live.phase = 'processing';
        this.setState(live, 'processing', {});
      },
      stageStarted: (id, index, stage, count) => {
        const live = active(id);
        if (!live) return;
        live.stage = stage.name;
        live.stagePercent = 0;
        live.rate.reset();
        this.publish({ type: 'stage', uploadId: id, stage: stage.name, index, count });
        this.advance(live, processingPercent(live.plan, index, 0));
        this.publishProgress(live);
      },
      stageProgress: (id, index, stageFraction) => {
        const live = active(id);
        if (!live) return;
        live.stagePercent = Math.round(stageFraction * 10000) / 100;
        this.advance(live, processingPercent(live.plan, index, stageFraction));
        live.rate.sample(Date.now(), live.percent);
        this.publishProgress(live);
      },
      log: (id, level, text, stage) => this.log(id, level, text, stage),
      completed: (id, result) => {
        const live = active(id);
        if (!live) return;
        live.stagePercent = 100;
        this.advance(live, 100);
        this.publishProgress(live);
        live.upload.record.result = result;
        this.background(this.end(live, 'completed', { result }));
      },
      failed: (id, error) => {
        const live = active(id);
        if (live) this.background(this.fail(live, error));
      },
    };
  }

  private async fail(live: Live, error: UploadHubError): Promise<void> {
    if (isTerminalState(live.upload.record.state)) return;
    // Partial bytes and outputs of a failed upload are of no use to anyone; the record stays,
    // and the failure is reported even if deleting them failed.
    await this.discard(live, error).catch(() => undefined);
    const info = error.toJSON();
    live.upload.record.error = info;
    if (error.stage !== undefined) live.upload.record.stage = error.stage;
    await this.end(live, 'failed', { error: info });
  }

  /**
   * Ends an upload's bytes for good: the writer is told, pending chunks fail, bytes and outputs
   * are deleted. Callers publish the terminal state after it, so whoever hears `cancelled`,
   * `failed` or `expired` may rely on the bytes being gone.
   */
  private async discard(live: Live, error: UploadHubError): Promise<void> {
    this.endAttachment(live, error);
    await live.upload.abort(error);
    await this.store.removeData(live.upload.id);
  }

  /** Tells the attached writer it no longer holds the upload. */
  private endAttachment(live: Live, reason: UploadHubError | undefined): void {
    const owner = live.upload.owner as Attachment | undefined;
    live.upload.owner = undefined;
    owner?.detached(live.upload.id, reason);
  }

  /** A state change on the way: saved in the background (retried until it lands), published at once. */
  private setState(live: Live, state: Exclude<UploadState, TerminalState>, extra: Record<string, JsonValue | undefined>): void {
    const record = live.upload.record;
    if (isTerminalState(record.state)) return;
    record.state = state;
    record.updatedAt = Date.now();
    this.stamp(live);
    // A failure is retried and reported by the saver (health, log); nobody waits on this one.
    this.saver.save(record).catch(() => undefined);
    this.publish({ type: state, uploadId: record.id, ...extra } as HubEventBody);
    this.logger?.info({ uploadId: record.id, state, ...(state === 'uploaded' ? { bytes: live.upload.committed } : {}) }, `upload ${state}`);
  }

  /**
   * The end of an upload: final at once in memory (of two racing ends, a double cancel or
   * cancel vs. a failing stage, only the first counts), published only once the record is
   * saved, so whoever hears `completed`, `failed` or `cancelled` can rely on it after a restart.
   */
  private async end(live: Live, state: TerminalState, extra: Record<string, JsonValue | undefined>): Promise<void> {
    const record = live.upload.record;
    if (isTerminalState(record.state)) return;
    record.state = state;
    this.limits.closed(record.owner, record.id);
    record.updatedAt = Date.now();
    if (state === 'completed') this.advance(live, 100);
    this.stamp(live);
    // Subscribers learn how many log lines they missed before the upload's last event.
    live.logs.flush();
    live.logs.close();
    try {
      await this.saver.save(record);
    } catch {
      // Only when the hub closed before the record could be saved: it was never final on disk,
      // so it is not announced; the next start finds the upload where its record left it.
      return;
    }
    this.publish({ type: state, uploadId: record.id, ...extra } as HubEventBody);
    this.logEnd(live);
  }

  private logEnd(live: Live): void {
    if (!this.logger) return;
    const record = live.upload.record;
    const durationMs = Math.max(0, record.updatedAt - record.createdAt);
    if (record.state === 'completed') {
      const bytesPerSecond = durationMs > 0 ? Math.round((record.size * 1000) / durationMs) : null;
      this.logger.info({ uploadId: record.id, size: record.size, durationMs, bytesPerSecond, sha256: record.sha256 }, 'upload completed');
    } else {
      const error = record.error ?? { code: record.state === 'cancelled' ? 'ERR_CANCELLED' : 'ERR_EXPIRED', message: '' };
      this.logger.info({ uploadId: record.id, bytes: live.upload.committed, durationMs, code: error.code, reason: error.message, ...(record.stage === undefined ? {} : { stage: record.stage }) }, `upload ${record.state}`);
    }
  }

  /** Copies what the record carries of the live upload, before a save. */
  private stamp(live: Live): void {
    live.upload.record.percent = live.percent;
    live.upload.record.bytes = live.upload.committed;
  }

  /** How the hub's storage is doing: 'degraded' while a record save is failing. */
  get storageHealth(): StorageHealth {
    return this.saver.health;
  }

  private publish(body: HubEventBody): HubEvent {
    return this.events.publish(body);
  }

  private statusOf(live: Live): UploadStatus {
    const { record } = live.upload;
    const status: UploadStatus = {
      id: record.id,
      name: record.name,
      size: record.size,
      mimeType: record.mimeType,
      metadata: record.metadata,
      owner: record.owner,
      state: record.state,
      bytes: live.upload.committed,
      percent: live.percent,
      phase: live.phase,
      attached: live.upload.owner !== undefined,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
    };
    const stage = live.stage ?? record.stage;
    if (stage !== undefined) status.stage = stage;
    if (live.stagePercent !== undefined) status.stagePercent = live.stagePercent;
    if (live.queuePosition !== undefined) status.queuePosition = live.queuePosition;
    if (record.sha256) status.sha256 = record.sha256;
    if (record.error) status.error = record.error;
    if (record.result !== undefined) status.result = record.result;
    return status;
  }

  /** Expires abandoned incomplete uploads and forgets old finished ones. */
  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const live of [...this.uploads.values()]) {
      const record = live.upload.record;
      if (isTerminalState(record.state)) {
        if (this.options.finishedRetentionMs > 0 && now - record.updatedAt > this.options.finishedRetentionMs) {
          this.uploads.delete(record.id);
          await this.store.remove(record.id).catch(() => undefined);
        }
      } else if (
        this.options.uploadTtlMs > 0 && !live.upload.owner && (record.state === 'created' || record.state === 'uploading') &&
        now - record.updatedAt > this.options.uploadTtlMs
      ) {
        const expired = new UploadHubError('ERR_EXPIRED');
        await this.discard(live, expired).catch(() => undefined);
        record.error = expired.toJSON();
        await this.end(live, 'expired', {});
      }
    }
  }
}
