/**
 * The uploads this node works on, each under its lease: how one is taken on (tracked at create,
 * restored at start, adopted from the registry when its lease is won), how its commits move its
 * bar and reach processing, and how it is let go (ended, released to another node, or lost).
 * Nothing else holds an upload in memory.
 */
import { UploadHubError } from '../../shared/errors.js';
import { isTerminalState } from '../../shared/messages.js';
import { uploadPercent, type ProgressPlan } from '../../shared/progress.js';
import { storageError } from '../store/storageError.js';
import type { UploadRecord } from '../store/UploadStore.js';
import type { ActiveUpload } from './ActiveUpload.js';
import { stamp } from './Finalizer.js';
import { PAST_BYTES, type HubParts } from './HubParts.js';
import { LogLimiter } from './LogLimiter.js';
import { ProgressBar } from './ProgressBar.js';
import type { Lease } from './Registry.js';
import { Upload } from './Upload.js';

/** How long close() waits for a cluster node's last saves and releases, in ms. */
const CLOSE_SAVE_MS = 2_000;

/** Waits for `work`, but not past `deadline` (ms since epoch). */
async function until(work: Promise<unknown>, deadline: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
  clearTimeout(timer);
}

export class Holdings {
  private readonly map = new Map<string, ActiveUpload>();
  /**
   * Several nodes: byte progress is appended to the shared event log at most once per
   * progressIntervalMs per upload (every node reads every event; no watcher anywhere would get
   * more than that anyway), the latest always following by a timer.
   */
  private readonly progressAt = new Map<string, number>();
  private readonly progressTimers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private readonly parts: HubParts) {}

  get(id: string): ActiveUpload | undefined {
    return this.map.get(id);
  }

  has(id: string): boolean {
    return this.map.has(id);
  }

  get size(): number {
    return this.map.size;
  }

  values(): ActiveUpload[] {
    return [...this.map.values()];
  }

  /**
   * A restart of one node: every unfinished stored upload is held again; one whose bytes were
   * all in is processed from the start (a stage's progress cannot be resumed), one killed
   * between its last write and finalizing is finalized now.
   */
  async restore(records: readonly UploadRecord[]): Promise<void> {
    const { finalizer } = this.parts;
    for (const record of records) {
      if (isTerminalState(record.state)) continue;
      const stored = await this.restoredBytes(record);
      const active = this.track(record, stored, { uploadId: record.id, fence: 1, valid: true, whenValid: () => Promise.resolve() });
      if (PAST_BYTES.has(record.state)) {
        active.upload.restoreComplete();
        record.state = 'uploaded';
        finalizer.process(active);
      } else if (stored === record.size && record.size > 0) {
        this.parts.background(finalizer.finalize(active));
      }
    }
  }

  /**
   * Where a stored upload stands, so a restart never moves it backwards: bytes all in once
   * uploaded, else what the store holds (and an upload with bytes is `uploading`, last touched
   * when its bytes were).
   */
  private async restoredBytes(record: UploadRecord): Promise<number> {
    if (PAST_BYTES.has(record.state)) return record.size;
    const stored = await this.parts.store.stat(record.id);
    const bytes = Math.min(stored.bytes, record.size);
    if (bytes > 0) {
      record.state = 'uploading';
      record.updatedAt = Math.max(record.updatedAt, stored.modifiedAt);
    }
    return bytes;
  }

  /**
   * Draining: every writer is sent elsewhere (ERR_SHUTTING_DOWN); on several nodes the uploads
   * still receiving are committed and released at once, then `released` closes the writers'
   * connections (their clients find the uploads free on another node); uploads being finalized
   * or processed get until `deadline` (ms since epoch).
   */
  async drain(deadline: number, released?: () => Promise<void>): Promise<void> {
    const shutdown = new UploadHubError('ERR_SHUTTING_DOWN');
    for (const active of this.map.values()) this.parts.finalizer.endWriter(active, shutdown);
    if (this.parts.registry.clustered) {
      // Bounded: with Redis unreachable the leases simply run out.
      const releasing = this.values().filter((active) => !active.finalizing && !PAST_BYTES.has(active.upload.record.state)).map((active) => this.letGo(active, undefined, true));
      await until(Promise.allSettled(releasing), deadline);
    }
    await released?.();
    const working = this.values().filter((active) => active.finalizing || PAST_BYTES.has(active.upload.record.state)).map((active) => active.gone);
    await until(Promise.allSettled(working), deadline);
  }

  /** Closing: every writer is told, and every write settles and its file is closed. */
  async stopWriting(): Promise<void> {
    const shutdown = new UploadHubError('ERR_SHUTTING_DOWN');
    await Promise.all(this.values().map(async (active) => {
      this.parts.finalizer.endWriter(active, shutdown);
      await active.upload.release().catch(() => undefined);
    }));
  }

  /**
   * Closing, last: unfinished uploads are saved as they stand (state, bytes, updatedAt), once (a
   * failing disk must not hold the shutdown; a restart falls back on the stored bytes); on
   * several nodes their leases are given back and the others told to take them over.
   */
  async leaveUnfinished(): Promise<void> {
    const { registry } = this.parts;
    const unfinished = this.values().filter((active) => !isTerminalState(active.upload.record.state));
    const saving = Promise.allSettled(unfinished.map(async (active) => {
      stamp(active);
      await registry.save(active.upload.record, active.upload.ledger.lease);
      if (registry.clustered) await registry.release(active.upload.ledger.lease);
    }));
    if (!registry.clustered) {
      await saving;
      return;
    }
    // With Redis unreachable these wait in the client's queue: bounded, the leases run out anyway.
    await until(saving, Date.now() + CLOSE_SAVE_MS);
    if (unfinished.length > 0) await registry.request('*', { type: 'orphans' }).catch(() => false);
  }

  /** Bytes accepted but not yet written, across the uploads this node holds. */
  get bufferedBytes(): number {
    let total = 0;
    for (const active of this.map.values()) total += active.upload.buffered;
    return total;
  }

  /**
   * Starts holding an upload under `lease`: its Upload (offsets, writes, hash; each commit
   * recorded in the registry, fenced, before it counts), its bar, stages and log limiter. A
   * write the store refuses fails the upload; one refused for a lost lease only lets it go.
   */
  track(record: UploadRecord, committed: number, lease: Lease): ActiveUpload {
    const stages = this.parts.pipeline.plan(record);
    const plan: ProgressPlan = { uploadShare: stages.length === 0 ? 100 : this.parts.options.uploadShare, stageWeights: stages.map((s) => s.weight ?? 1) };
    const registry = this.parts.registry;
    let active: ActiveUpload;
    const upload = new Upload(record, committed, this.parts.store, () => this.onCommit(active), (_upload, error) => {
      if ((error as UploadHubError).code === 'ERR_LEASE_LOST') {
        // Another node holds the upload now: this one stops, and leaves the bytes to it.
        this.parts.background(this.letGo(active, error as UploadHubError, false));
        return;
      }
      // The store refused the bytes (disk full, I/O error): this upload fails now, bytes removed.
      active.writeFailure = this.parts.finalizer.fail(active, storageError(error, 'Writing the upload'));
      this.parts.background(active.writeFailure);
    }, this.parts.flow.credit(), {
      lease,
      fenced: registry.clustered,
      commit: registry.clustered ? (to) => registry.commit(lease, to, Math.max(active.bar.percent, uploadPercent(plan, to, record.size)), Date.now()) : () => Promise.resolve(),
    });
    let leave!: () => void;
    const gone = new Promise<void>((resolve) => (leave = resolve));
    active = {
      upload,
      bar: new ProgressBar(plan, Math.max(record.percent ?? 0, uploadPercent(plan, committed, record.size)), record.stage),
      stages,
      logs: new LogLimiter(this.parts.options.logLinesPerSecond, (line) => this.parts.publish(record.owner, { type: 'log', uploadId: record.id, ...line })),
      finalizing: undefined,
      writeFailure: undefined,
      writerPrincipal: undefined,
      gone,
      leave,
    };
    this.map.set(record.id, active);
    this.parts.limits.opened(record.owner, record.id);
    return active;
  }

  /**
   * Starts working on an upload whose lease this node just got: its record and committed offset
   * from the registry (the bytes past it are discarded when the file is opened, and the hash is
   * rebuilt from the stored prefix). Undefined, with the lease released, when it had ended.
   */
  async adopt(id: string, lease: Lease): Promise<ActiveUpload | undefined> {
    const existing = this.map.get(id);
    if (existing) return existing;
    const stored = await this.parts.registry.load(id);
    if (!stored || isTerminalState(stored.record.state)) {
      await this.parts.registry.release(lease);
      return undefined;
    }
    const { record } = stored;
    let committed = stored.committed;
    if (committed === undefined) committed = Math.min((await this.parts.store.stat(id)).bytes, record.size);
    const active = this.track(record, committed, lease);
    this.parts.logger?.info({ uploadId: id, node: this.parts.registry.nodeId, fence: lease.fence, committed, state: record.state }, 'upload taken over');
    return active;
  }

  /**
   * Stops working on an upload that stays unfinished: writes settle and are committed, the
   * record is saved and the lease given back, so another node (or this one) can take it.
   * @param release false when the lease is already lost (nothing may be written any more).
   */
  async letGo(active: ActiveUpload, reason: UploadHubError | undefined, release: boolean): Promise<void> {
    if (this.map.get(active.upload.id) !== active) return;
    this.drop(active.upload.id);
    const { upload } = active;
    this.parts.finalizer.endWriter(active, reason);
    if (release) {
      await upload.release().catch(() => undefined);
      stamp(active);
      await this.parts.registry.save(upload.record, upload.ledger.lease).catch(() => undefined);
      await this.parts.registry.release(upload.ledger.lease).catch(() => undefined);
    } else {
      await upload.abort(reason ?? new UploadHubError('ERR_LEASE_LOST')).catch(() => undefined);
      await this.parts.processing.cancel(upload.id);
    }
    this.parts.limits.closed(upload.record.owner, upload.id);
    active.logs.close();
    active.leave();
    this.parts.logger?.info({ uploadId: upload.id, node: this.parts.registry.nodeId, committed: upload.committed, ...(reason ? { code: reason.code } : {}) }, 'upload released');
  }

  /** An upload ended: this node stops holding it, and gives its lease back. */
  forget(active: ActiveUpload): void {
    if (this.map.get(active.upload.id) === active) this.drop(active.upload.id);
    active.leave();
    if (this.parts.registry.clustered) this.parts.background(this.parts.registry.release(active.upload.ledger.lease));
  }

  private onCommit(active: ActiveUpload): void {
    const { upload } = active;
    const now = Date.now();
    upload.record.updatedAt = now;
    active.bar.bytes(upload.committed, upload.record.size, now);
    this.commitProgress(active, now);
    // allowedTypes: the first bytes are sniffed once enough are in; a refused type fails the upload.
    const typeCheck = this.parts.limits.checkContent(upload.record, upload.committed, upload.complete);
    if (typeCheck?.started) this.parts.background(typeCheck.refused.then(() => undefined));
    if (upload.complete && !active.finalizing) this.parts.background(this.parts.finalizer.finalize(active));
  }

  publishProgress(active: ActiveUpload): void {
    const { upload } = active;
    this.stopProgressTimer(upload.id);
    this.parts.publish(upload.record.owner, active.bar.event(upload.id, upload.committed, upload.record.size));
  }

  /** Progress after a commit: at once on one node (each watcher has its own throttle), paced on several. */
  private commitProgress(active: ActiveUpload, now: number): void {
    const id = active.upload.id;
    const interval = this.parts.options.progressIntervalMs;
    if (!this.parts.registry.clustered || interval <= 0 || active.upload.complete) {
      this.publishProgress(active);
      return;
    }
    const last = this.progressAt.get(id) ?? 0;
    if (now - last >= interval) {
      this.progressAt.set(id, now);
      this.publishProgress(active);
      return;
    }
    if (this.progressTimers.has(id)) return;
    const timer = setTimeout(() => {
      this.progressTimers.delete(id);
      if (this.map.get(id) !== active) return;
      this.progressAt.set(id, Date.now());
      this.publishProgress(active);
    }, last + interval - now);
    timer.unref();
    this.progressTimers.set(id, timer);
  }

  private stopProgressTimer(id: string): void {
    clearTimeout(this.progressTimers.get(id));
    this.progressTimers.delete(id);
  }

  /** This node stops holding the upload: its pacing goes too. */
  private drop(id: string): void {
    this.map.delete(id);
    this.stopProgressTimer(id);
    this.progressAt.delete(id);
  }
}
