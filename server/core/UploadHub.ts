/**
 * The core's façade: what transports call. It knows no transport and no wire format; it
 * returns domain results, checks who may do what, and hands the work to small units:
 * - the registry (records, offsets, leases: LocalRegistry in-process, RedisRegistry shared);
 * - Holdings: the uploads this node works on, each an Upload (offsets, writes, hash) with its
 *   ProgressBar, under its lease; nothing else is held in memory;
 * - the Finalizer: hash check, processing hand-off, every end;
 * - Handover: moves between nodes (resume elsewhere, cancel passed on, takeover);
 * - the Sweeper: expiry and retention; ingest(): streaming writers;
 * - FlowControl, Limits and the event log.
 *
 * @example
 * const hub = new UploadHub({ options: { dataDir: './data' } });
 * await hub.start();
 * const status = await hub.create(ANONYMOUS, { name: 'a.bin', size: 3 });
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { UploadHubError, toHubError } from '../../shared/errors.js';
import {
  isTerminalState,
  type ChunkStatus,
  type CreateInput,
  type LogLevel,
  type UploadState,
  type UploadStatus,
} from '../../shared/messages.js';
import { resolveOptions, type HubOptions, type HubOptionsInput } from '../config.js';
import { Pipeline } from '../processing/Pipeline.js';
import { ProcessingQueue } from '../processing/ProcessingQueue.js';
import type { Stage } from '../processing/Stage.js';
import { DiskStore } from '../store/DiskStore.js';
import { storageError } from '../store/storageError.js';
import type { UploadRecord, UploadStore } from '../store/UploadStore.js';
import { activeStatus, recordStatus, type ActiveUpload } from './ActiveUpload.js';
import { ANONYMOUS, mayCreate, maySee, mayWrite, roleOf, type Authenticate, type Principal } from './auth.js';
import { EventBus } from './EventBus.js';
import { Finalizer } from './Finalizer.js';
import { FlowControl } from './FlowControl.js';
import { Limits } from './Limits.js';
import { LocalRegistry } from './LocalRegistry.js';
import { RecordSaver, type StorageHealth } from './RecordSaver.js';
import type { Lease, ListOrder, ListPosition, UploadRegistry } from './Registry.js';
import type { Writer } from './Upload.js';
import { Handover } from './Handover.js';
import { Holdings } from './Holdings.js';
import { PAST_BYTES, type HubParts } from './HubParts.js';
import { ingest, type IngestOptions } from './ingest.js';
import { joinOrStart } from './joinOrStart.js';
import { Sweeper } from './Sweeper.js';

export type { Writer } from './Upload.js';
export type { ListOrder, ListPosition } from './Registry.js';

export interface UploadHubInit {
  options?: HubOptionsInput;
  /** Defaults to a DiskStore on options.dataDir. */
  store?: UploadStore;
  /** Defaults to one node's registry over the store. Several nodes share a RedisRegistry. */
  registry?: UploadRegistry;
  /** Defaults to this node's own log. Several nodes share a RedisEventLog. */
  events?: EventBus;
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

export interface ListFilter {
  state?: UploadState | readonly UploadState[];
  /** At most this many uploads. Absent: all of them. */
  limit?: number;
  /** Only uploads after this one in the list's order, as given by the last of a previous page. */
  after?: ListPosition;
  /** `asc` (default): oldest first; `desc`: newest first, as a dashboard shows them. */
  order?: ListOrder;
}

/** Where a writer continues: the committed offset and the bytes it may send past it. */
export interface Attached {
  upload: UploadStatus;
  offset: number;
  window: number;
}

/** What became of one chunk: the domain result a protocol turns into its reply. */
export type ChunkResult =
  | { ok: true; status: ChunkStatus; committed: number; window: number }
  | { ok: false; error: UploadHubError; committed?: number };

function newId(): string {
  return randomBytes(16).toString('base64url');
}

export class UploadHub {
  readonly options: HubOptions;
  readonly store: UploadStore;
  readonly registry: UploadRegistry;
  readonly events: EventBus;
  readonly pipeline: Pipeline;
  /** Abuse limits (Limits.ts): per principal, per declared upload, and its first bytes' type. */
  readonly limits: Limits;
  private readonly authenticateHook: Authenticate | undefined;
  private readonly revalidate: UploadHubInit['revalidate'];
  /** The uploads this node works on, under their leases. */
  private readonly active: Holdings;
  private readonly processing: ProcessingQueue;
  private readonly finalizer: Finalizer;
  /** Moves between nodes: takeovers, cancels passed on, requests from other nodes. */
  private readonly handover: Handover;
  private readonly sweeper: Sweeper;
  /** Cancels under way, by upload id, so a second cancel joins the first. */
  private readonly cancelling = new Map<string, Promise<UploadStatus>>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly saver: RecordSaver;
  /** One line per lifecycle step of each upload, with its id. */
  private readonly logger: Logger | undefined;
  /** Windows from each upload's measured rate, sharing maxBufferedBytes among attached uploads. */
  private readonly flow: FlowControl;
  private started = false;
  private closing = false;
  private draining = false;

  constructor(init: UploadHubInit = {}) {
    this.options = resolveOptions(init.options);
    this.store = init.store ?? new DiskStore(this.options.dataDir);
    this.registry = init.registry ?? new LocalRegistry(this.store, this.options.nodeId ?? `${hostname()}-${process.pid}`);
    this.events = init.events ?? new EventBus(this.options.eventHistorySize);
    this.authenticateHook = init.authenticate;
    this.revalidate = init.revalidate;
    this.pipeline = init.pipeline instanceof Pipeline ? init.pipeline : new Pipeline(init.pipeline ?? []);
    this.flow = new FlowControl(this.options);
    this.limits = new Limits(this.options, this.store, async (id, error) => {
      const active = this.active.get(id);
      if (active) await this.finalizer.fail(active, error);
    }, Date.now, this.registry.openUploads && ((owner) => (this.registry.openUploads as (owner: string) => Promise<number>)(owner)));
    const logger = init.logger;
    this.logger = logger;
    const registry = this.registry;
    this.saver = new RecordSaver({ save: (record) => registry.save(record, this.active.get(record.id)?.upload.ledger.lease) }, {
      onFailure: (error, uploadId, attempt) => logger?.error({ uploadId, code: error.code, attempt, err: error.message }, 'saving the upload record failed; retrying'),
      onRecovered: (uploadId) => logger?.info({ uploadId }, 'upload record saved after retries'),
    });
    const hub = this;
    this.finalizer = new Finalizer({
      store: this.store,
      saver: this.saver,
      limits: this.limits,
      logger,
      get closing() {
        return hub.closing;
      },
      processing: () => this.processing,
      publish: (active, body) => this.events.publish(body, active.upload.record.owner),
      background: (work) => this.background(work),
      revalidate: this.revalidate,
      ended: (active) => this.active.forget(active),
    });
    this.processing = new ProcessingQueue(this.finalizer.processingHost((id) => this.active.get(id), (id, level, text, stage) => this.log(id, level, text, stage)), {
      concurrency: this.options.processingConcurrency,
      stageTimeoutMs: this.options.stageTimeoutMs,
      abortDeadlineMs: this.options.abortDeadlineMs,
    });
    const parts: HubParts = {
      options: this.options,
      store: this.store,
      registry: this.registry,
      events: this.events,
      pipeline: this.pipeline,
      limits: this.limits,
      flow: this.flow,
      logger,
      finalizer: this.finalizer,
      processing: this.processing,
      get stopping() {
        return hub.closing || hub.draining;
      },
      background: (work) => this.background(work),
      publish: (owner, body) => this.events.publish(body, owner),
    };
    this.active = new Holdings(parts);
    this.handover = new Handover(parts, this.active, { status: (principal, id) => this.status(principal, id), stop: (active) => this.cancelHeld(active) });
    this.sweeper = new Sweeper(parts, this.active, this.handover);
  }

  /** This node's name (leases, logs, /healthz). */
  get nodeId(): string {
    return this.registry.nodeId;
  }

  /**
   * One node: loads every stored upload; incomplete ones become resumable, interrupted
   * processing restarts. Several nodes: nothing is loaded; uploads are taken over by lease.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.registry.onRequest((request) => this.handover.heard(request));
    this.registry.onLeaseLost?.((id) => {
      const active = this.active.get(id);
      if (active) this.background(this.active.letGo(active, new UploadHubError('ERR_LEASE_LOST', `Node ${this.nodeId} lost its lease on upload ${id}`), false));
    });
    await this.active.restore(await this.registry.init());
    this.sweeper.start();
  }

  /**
   * SIGTERM: stops taking uploads, tells every writer to go elsewhere (ERR_SHUTTING_DOWN: the
   * client resumes on another node), gives writes and running stages until `deadlineMs` to
   * finish, then releases every upload still held (another node takes processing over) and
   * closes.
   */
  async drain(deadlineMs = this.options.shutdownTimeoutMs, released?: () => Promise<void>): Promise<void> {
    if (this.closing || this.draining) return this.close();
    this.draining = true;
    this.logger?.info({ node: this.nodeId, uploads: this.active.size, deadlineMs }, 'draining');
    const deadline = Date.now() + deadlineMs;
    await this.active.drain(deadline, released);
    await this.close();
  }

  /** True from drain() on: /healthz reports not ready. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Stops processing and timers; incomplete uploads stay resumable (here on the next start, or on another node). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.sweeper.stop();
    await this.processing.close();
    await this.active.stopWriting();
    // Finalizations and failures under way end with a record save; let them land first.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.active.leaveUnfinished();
    this.saver.close();
    await this.registry.close();
  }

  /** Work started without a caller to await it; close() waits for it. */
  private background(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => this.logger?.error({ err: error instanceof Error ? error.message : String(error) }, 'background work failed'));
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
    if (this.registry.health !== 'ok') throw new UploadHubError('ERR_UNAVAILABLE', 'New uploads are refused while the shared state (Redis) is unreachable');
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
    let lease: Lease;
    try {
      await this.registry.insert(record);
      const acquired = await this.registry.acquire(id);
      if (!acquired || !('lease' in acquired)) throw new UploadHubError('ERR_INTERNAL', `A new upload's lease was taken by ${acquired ? acquired.heldBy : 'nobody'}`);
      lease = acquired.lease;
    } catch (error) {
      this.limits.closed(principal.id, id);
      // Refused (Redis did not answer in time): what may still land once it answers is undone
      // after it, so no upload the caller never heard of stays behind.
      if (this.registry.clustered) this.background(this.registry.remove(id).catch(() => undefined));
      throw storageError(error, 'Saving the new upload');
    }
    const active = this.active.track(record, 0, lease);
    const status = activeStatus(active);
    this.events.publish({ type: 'created', uploadId: record.id, upload: status }, record.owner);
    this.logger?.info({ uploadId: record.id, owner: record.owner, name: record.name, size: record.size, mimeType: record.mimeType, node: this.nodeId }, 'upload created');
    return status;
  }

  /** Status for a principal; ERR_NOT_FOUND when the upload is unknown or invisible to it. */
  async status(principal: Principal, id: string): Promise<UploadStatus> {
    const active = this.active.get(id);
    if (active) {
      if (!maySee(principal, active.upload.record.owner)) throw notFound(id);
      return activeStatus(active);
    }
    const stored = await this.loadVisible(principal, id);
    return recordStatus(stored.record, stored.committed);
  }

  /**
   * The uploads `principal` may see, oldest first (createdAt, then id: a stable order to page
   * through), or newest first with `order: 'desc'`. Only the page's own statuses are built,
   * however many uploads match.
   */
  async list(principal: Principal, filter: ListFilter = {}): Promise<UploadStatus[]> {
    const states = filter.state === undefined ? undefined : new Set<UploadState>(typeof filter.state === 'string' ? [filter.state] : filter.state);
    const ids = await this.registry.list({
      visible: (owner) => maySee(principal, owner),
      ...(states ? { states } : {}),
      ...(filter.limit === undefined ? {} : { limit: filter.limit }),
      ...(filter.after ? { after: filter.after } : {}),
      ...(filter.order ? { order: filter.order } : {}),
      stateOf: (id) => this.active.get(id)?.upload.record.state,
    });
    const statuses: UploadStatus[] = [];
    for (const id of ids) {
      const active = this.active.get(id);
      if (active) statuses.push(activeStatus(active));
      else {
        const stored = await this.registry.load(id);
        if (stored) statuses.push(recordStatus(stored.record, stored.committed));
      }
    }
    return statuses;
  }

  /**
   * Makes `writer` the one writer of an upload (taking it from any previous one, as when a
   * client resumes on a new connection, here or on another node) and returns where to continue.
   */
  async attach(principal: Principal, id: string, writer: Writer): Promise<Attached> {
    this.assertOpen();
    let active = this.active.get(id);
    if (active) this.assertWritable(principal, active.upload.record);
    else {
      const stored = await this.loadVisible(principal, id);
      this.assertWritable(principal, stored.record);
      // Nothing left to send: the caller gets the status and waits for the end, wherever it happens.
      if (isTerminalState(stored.record.state) || PAST_BYTES.has(stored.record.state)) {
        return { upload: recordStatus(stored.record, stored.committed), offset: stored.committed ?? stored.record.bytes ?? stored.record.size, window: 0 };
      }
      active = await this.handover.takeOver(id);
    }
    const { upload } = active;
    const previous = upload.writer;
    if (previous && previous !== writer) {
      upload.writer = undefined;
      previous.detached(id, undefined);
    }
    if (isTerminalState(upload.record.state) || upload.complete) {
      // Nothing left to send: the caller gets the status and waits for (or already has) the end.
      // An empty file is complete from the start; finalizing it is what a last chunk would do.
      if (upload.complete && (upload.record.state === 'created' || upload.record.state === 'uploading')) this.background(this.finalizer.finalize(active));
      return { upload: activeStatus(active), offset: upload.committed, window: 0 };
    }
    upload.writer = writer;
    active.writerPrincipal = principal;
    // Bytes a previous connection left in the queue are written before the new one continues.
    await upload.settled();
    await upload.open();
    if (upload.writer !== writer) throw new UploadHubError('ERR_UPLOAD_STATE', 'The upload was taken over or ended while resuming');
    upload.record.updatedAt = Date.now();
    const window = upload.credit.restart(upload.committed, Date.now());
    upload.restart(window);
    return { upload: activeStatus(active), offset: upload.committed, window };
  }

  /** Releases the upload if `writer` still holds it; it stays resumable (on any node). */
  async detach(id: string, writer: Writer): Promise<void> {
    const active = this.active.get(id);
    if (!active || active.upload.writer !== writer) return;
    active.upload.writer = undefined;
    if (active.finalizing) return;
    // Several nodes: the upload is committed and let go, so a resume anywhere takes it at once.
    if (this.registry.clustered && !this.closing) await this.active.letGo(active, undefined, true);
    else await active.upload.release().catch(() => undefined);
  }

  /**
   * Applies the offset rules to one chunk and resolves once its bytes are committed: accepted
   * (or a duplicate, or a gap) with the committed offset and the window, or refused.
   */
  async receive(writer: Writer, principal: Principal, id: string, offset: number, data: Uint8Array): Promise<ChunkResult> {
    const active = this.active.get(id);
    // An upload the writer's principal may not see is answered exactly as an unknown one: no
    // state, no offset, nothing to tell that the id exists.
    if (!active) return this.notHere(principal, id);
    if (!maySee(principal, active.upload.record.owner)) return { ok: false, error: notFound(id) };
    const { upload } = active;
    const refuse = (error: UploadHubError): ChunkResult => ({ ok: false, error, committed: upload.committed });
    if (data.byteLength > this.options.maxChunkSize) {
      return refuse(new UploadHubError('ERR_CHUNK_TOO_LARGE', `Chunk of ${data.byteLength} bytes exceeds maxChunkSize ${this.options.maxChunkSize}`));
    }
    if (upload.record.state === 'cancelled') return refuse(new UploadHubError('ERR_CANCELLED'));
    if (isTerminalState(upload.record.state)) return refuse(new UploadHubError('ERR_UPLOAD_STATE', `Upload is ${upload.record.state}`));
    if (upload.writer !== writer) return refuse(new UploadHubError('ERR_NOT_ATTACHED'));
    const outcome = upload.accept(offset, data);
    if (outcome.status === 'rejected') return refuse(outcome.error);
    if (outcome.status === 'accepted' && upload.record.state === 'created') {
      // Not saved on its own: a restart treats created and uploading alike, and the next
      // state change saves it with the rest.
      upload.record.state = 'uploading';
      this.events.publish({ type: 'uploading', uploadId: id, bytes: upload.committed }, upload.record.owner);
    }
    try {
      await outcome.committed;
    } catch (error) {
      // The writer hears of a failed write once the upload is failed for everyone.
      await active.writeFailure;
      return refuse(toHubError(error));
    }
    const window = upload.writer === writer ? upload.credit.ack(offset + data.byteLength, upload.committed, Date.now()) : 0;
    upload.grant(window);
    return { ok: true, status: outcome.status, committed: upload.committed, window };
  }

  /** A chunk for an upload this node does not work on: it ended, or it is held (or left) elsewhere. */
  private async notHere(principal: Principal, id: string): Promise<ChunkResult> {
    let stored;
    try {
      stored = await this.registry.load(id);
    } catch (error) {
      return { ok: false, error: toHubError(error, 'ERR_UNAVAILABLE') };
    }
    if (!stored || !maySee(principal, stored.record.owner)) return { ok: false, error: notFound(id) };
    const committed = stored.committed ?? stored.record.bytes ?? 0;
    const { state } = stored.record;
    if (state === 'cancelled') return { ok: false, error: new UploadHubError('ERR_CANCELLED'), committed };
    if (isTerminalState(state)) return { ok: false, error: new UploadHubError('ERR_UPLOAD_STATE', `Upload is ${state}`), committed };
    return { ok: false, error: new UploadHubError('ERR_NOT_ATTACHED'), committed };
  }

  /**
   * For writers that learn the exact size only at the end (a multipart part): the stream ended,
   * so the upload is as long as what was committed. Finalizes it (hash check, processing).
   * The size given at create must have been an upper bound.
   */
  async endOfStream(writer: Writer, id: string): Promise<void> {
    const active = this.active.get(id);
    // The last byte filled the declared size: the hub let the writer go and finalizes already.
    if (active?.finalizing && !active.upload.writer) return active.finalizing;
    if (!active || active.upload.writer !== writer) throw new UploadHubError('ERR_NOT_ATTACHED');
    const { upload } = active;
    await upload.settled();
    if (isTerminalState(upload.record.state)) return;
    if (upload.committed !== upload.record.size) {
      upload.truncateToCommitted();
      active.bar.bytesComplete(upload.committed);
      this.active.publishProgress(active);
    }
    await this.finalizer.finalize(active);
  }


  /**
   * Streams `source` into an upload from its committed offset, as its one writer, and resolves
   * with its status once every byte is stored and the bytes phase is finalized (ingest.ts).
   */
  ingest(principal: Principal, id: string, source: AsyncIterable<Uint8Array>, options: IngestOptions = {}): Promise<UploadStatus> {
    return ingest(this, principal, id, source, options);
  }

  /** Resolves with the upload's status once this node no longer works on it (it ended, or another node holds it). */
  async settledStatus(principal: Principal, id: string): Promise<UploadStatus> {
    const active = this.active.get(id);
    if (active) await active.gone;
    return this.status(principal, id);
  }

  /**
   * Ends an upload its writer cannot complete (a multipart part over the limit, an aborted
   * request): bytes are removed and the upload fails with `error`'s code.
   */
  async abort(writer: Writer, id: string, error: UploadHubError): Promise<void> {
    const active = this.active.get(id);
    if (!active || active.upload.writer !== writer) return;
    await this.finalizer.fail(active, error);
  }

  /**
   * Cancels an upload wherever it is: receiving stops, a running stage's signal fires and is
   * awaited (up to abortDeadlineMs), bytes and outputs are deleted, `cancelled` is published.
   * With several nodes the cancel travels to the node holding the upload. Idempotent: a cancel
   * while one is under way joins it (one `cancelled`, both resolve when it is done); cancelling
   * a finished upload returns its status unchanged.
   */
  async cancel(principal: Principal, id: string): Promise<UploadStatus> {
    const active = this.active.get(id);
    if (active) this.assertWritable(principal, active.upload.record);
    else {
      const stored = await this.loadVisible(principal, id);
      this.assertWritable(principal, stored.record);
      if (isTerminalState(stored.record.state)) return recordStatus(stored.record, stored.committed);
    }
    if (active) return this.cancelHeld(active);
    return joinOrStart(this.cancelling, id, () => this.handover.cancelElsewhere(principal, id));
  }

  /** Cancels an upload this node holds, joining a cancel under way. */
  private cancelHeld(active: ActiveUpload): Promise<UploadStatus> {
    return joinOrStart(this.cancelling, active.upload.id, () => this.stopAndRemove(active));
  }

  private async stopAndRemove(active: ActiveUpload): Promise<UploadStatus> {
    const { upload } = active;
    if (isTerminalState(upload.record.state)) return activeStatus(active);
    const cancelled = new UploadHubError('ERR_CANCELLED');
    // Receiving stops first: no chunk is written, and no writer reopens the file, while a
    // running stage is being stopped (which may take up to abortDeadlineMs).
    this.finalizer.endWriter(active, cancelled);
    const halted = upload.abort(cancelled);
    const stopped = await this.processing.cancel(upload.id);
    await halted;
    if (isTerminalState(upload.record.state)) return activeStatus(active);
    const stage = stopped?.stage;
    await this.finalizer.discard(active, cancelled);
    if (stage !== undefined) upload.record.stage = stage;
    await this.finalizer.end(active, 'cancelled', stage === undefined ? {} : { stage });
    return activeStatus(active);
  }



  /** Writes a stage's log line, limited to logLinesPerSecond per upload. */
  log(id: string, level: LogLevel, text: string, stage?: string): void {
    const active = this.active.get(id);
    if (!active || isTerminalState(active.upload.record.state)) return;
    active.logs.push(stage === undefined ? { level, text } : { level, text, stage });
  }

  /** Uploads by state (metrics, the dashboard): the registry's, with this node's fresher states. */
  counts(): Promise<Record<UploadState, number>> {
    return this.registry.counts((id) => this.active.get(id)?.upload.record.state);
  }

  /** Bytes accepted but not yet written, across the uploads this node holds: bounded by maxBufferedBytes. */
  get bufferedBytes(): number {
    return this.active.bufferedBytes;
  }

  /** How the hub's storage is doing: 'degraded' while a record save is failing or Redis is unreachable. */
  get storageHealth(): StorageHealth {
    const health = this.saver.health;
    if (this.registry.health === 'ok') return health;
    return { ...health, status: 'degraded', lastError: { code: 'ERR_UNAVAILABLE', message: new UploadHubError('ERR_UNAVAILABLE').message } };
  }

  // ------------------------------------------------------------------------------------------
  // Internals

  private assertOpen(): void {
    if (this.closing || this.draining) throw new UploadHubError('ERR_SHUTTING_DOWN');
    if (!this.started) throw new UploadHubError('ERR_INTERNAL', 'UploadHub.start() was not awaited');
  }

  /** An upload's record, if `principal` may see it; missing otherwise (ids are not to be probed). */
  private async loadVisible(principal: Principal, id: string): Promise<{ record: UploadRecord; committed: number | undefined }> {
    let stored;
    try {
      stored = await this.registry.load(id);
    } catch (error) {
      throw toHubError(error, 'ERR_UNAVAILABLE');
    }
    if (!stored || !maySee(principal, stored.record.owner)) throw notFound(id);
    return stored;
  }

  /** One the principal sees but may not write (a watcher's) is ERR_FORBIDDEN. */
  private assertWritable(principal: Principal, record: UploadRecord): void {
    if (!maySee(principal, record.owner)) throw notFound(record.id);
    if (!mayWrite(principal, record.owner)) throw new UploadHubError('ERR_FORBIDDEN', `The ${roleOf(principal)} role may not change upload ${record.id}`);
  }














}

function notFound(id: string): UploadHubError {
  return new UploadHubError('ERR_NOT_FOUND', `No upload ${id}`);
}
