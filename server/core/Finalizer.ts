/**
 * The end of an upload's bytes and of the upload itself: the hash check when the last byte is
 * in, the hand-off to processing, and every way an upload ends (completed, failed, cancelled,
 * expired) with its bytes discarded where they are of no more use. An end is final in memory
 * at once and published only once the record is saved, so whoever hears it can rely on it
 * after a restart or on another node.
 */
import { UploadHubError, toHubError } from '../../shared/errors.js';
import { isTerminalState, type HubEventBody, type JsonValue, type TerminalState, type UploadState } from '../../shared/messages.js';
import type { ProcessingHost, ProcessingQueue } from '../processing/ProcessingQueue.js';
import type { StageUpload } from '../processing/Stage.js';
import type { UploadStore } from '../store/UploadStore.js';
import { storageError } from '../store/storageError.js';
import type { Logger } from 'pino';
import type { ActiveUpload } from './ActiveUpload.js';
import { mayWrite, roleOf, type Principal } from './auth.js';
import type { Limits } from './Limits.js';
import type { RecordSaver } from './RecordSaver.js';

export interface FinalizerHost {
  readonly store: UploadStore;
  readonly saver: RecordSaver;
  readonly limits: Limits;
  readonly logger: Logger | undefined;
  /** Whether the hub is closing: an upload whose bytes are in then stays `uploaded` for the next start. */
  readonly closing: boolean;
  processing(): ProcessingQueue;
  publish(active: ActiveUpload, body: HubEventBody): void;
  /** Work started without a caller to await it; the hub's close waits for it. */
  background(work: Promise<void>): void;
  /** The principal as the authority sees it now, or null when revoked (absent: not re-checked). */
  revalidate: ((principal: Principal) => Principal | null | Promise<Principal | null>) | undefined;
  /** The upload ended and its record is saved: the hub stops holding it. */
  ended(active: ActiveUpload): void;
}

export class Finalizer {
  constructor(private readonly host: FinalizerHost) {}

  /** Checks and completes the bytes phase once; every caller gets the same run. */
  finalize(active: ActiveUpload): Promise<void> {
    active.finalizing ??= this.finalizeOnce(active);
    return active.finalizing;
  }

  private async finalizeOnce(active: ActiveUpload): Promise<void> {
    const { upload } = active;
    try {
      await upload.open();
      await upload.settled();
      if (isTerminalState(upload.record.state)) return;
      // allowedTypes: bytes of a refused type never count as uploaded (the check fails the upload).
      if (await this.host.limits.checkContent(upload.record, upload.committed, true)?.refused) return;
      const sha256 = upload.digest();
      this.endWriter(active, undefined);
      await upload.release();
      if (isTerminalState(upload.record.state)) return;
      const revoked = await this.writerRevoked(active);
      if (revoked) {
        await this.fail(active, revoked);
        return;
      }
      upload.record.sha256 = sha256;
      if (upload.record.expectedSha256 && upload.record.expectedSha256 !== sha256) {
        await this.fail(active, new UploadHubError('ERR_CHECKSUM_MISMATCH', `Received bytes hash to ${sha256}, not the declared ${upload.record.expectedSha256}`));
        return;
      }
      this.setState(active, 'uploaded', { bytes: upload.committed, sha256 });
      this.process(active);
    } catch (error) {
      // Halted (cancelled, a write failed, the lease lost): whoever halted it ends it, not this.
      if (upload.halted) return;
      await this.fail(active, storageError(error, 'Finishing the upload'));
    }
  }

  /** Why the upload's writer may no longer complete it (token revoked, role changed), if so. */
  private async writerRevoked(active: ActiveUpload): Promise<UploadHubError | undefined> {
    const writer = active.writerPrincipal;
    if (!this.host.revalidate || !writer) return undefined;
    let now: Principal | null;
    try {
      now = await this.host.revalidate(writer);
    } catch (error) {
      return toHubError(error, 'ERR_UNAUTHORIZED');
    }
    if (!now) return new UploadHubError('ERR_UNAUTHORIZED', `The token of ${writer.id} was revoked before the upload completed`);
    if (!mayWrite(now, active.upload.record.owner)) return new UploadHubError('ERR_FORBIDDEN', `The ${roleOf(now)} role may not complete upload ${active.upload.id}`);
    return undefined;
  }

  /** Hands an upload whose bytes are all in to processing (or completes it when no stage runs). */
  process(active: ActiveUpload): void {
    const record = active.upload.record;
    if (active.stages.length === 0) {
      this.host.background(this.end(active, 'completed', {}));
      return;
    }
    // Shutting down: the upload stays `uploaded` and the next start (or another node) processes it.
    if (this.host.closing) return;
    const stageUpload: StageUpload = {
      id: record.id, name: record.name, size: record.size, mimeType: record.mimeType, metadata: record.metadata, sha256: record.sha256 ?? '',
    };
    const { store } = this.host;
    this.host.processing().enqueue({
      upload: stageUpload,
      stages: active.stages,
      createReadStream: () => store.createReadStream(record.id),
      outputDir: () => store.outputDir(record.id),
    });
  }

  /** How processing reports back, for the uploads this node works on. */
  processingHost(find: (id: string) => ActiveUpload | undefined, log: (id: string, level: Parameters<ProcessingHost['log']>[1], text: string, stage?: string) => void): ProcessingHost {
    const active = (id: string): ActiveUpload | undefined => {
      const found = find(id);
      return found && !isTerminalState(found.upload.record.state) ? found : undefined;
    };
    const progress = (found: ActiveUpload) => this.host.publish(found, found.bar.event(found.upload.id, found.upload.committed, found.upload.record.size));
    return {
      queued: (id, position) => {
        const found = active(id);
        if (found && found.bar.queued(position)) this.setState(found, 'queued', { position });
      },
      started: (id) => {
        const found = active(id);
        if (!found) return;
        found.bar.processingStarted();
        this.setState(found, 'processing', {});
      },
      stageStarted: (id, index, stage, count) => {
        const found = active(id);
        if (!found) return;
        found.bar.stageStarted(index, stage.name);
        this.host.publish(found, { type: 'stage', uploadId: id, stage: stage.name, index, count });
        progress(found);
      },
      stageProgress: (id, index, fraction) => {
        const found = active(id);
        if (!found) return;
        found.bar.stageProgress(index, fraction);
        progress(found);
      },
      log: (id, level, text, stage) => log(id, level, text, stage),
      completed: (id, result) => {
        const found = active(id);
        if (!found) return;
        found.bar.completed();
        progress(found);
        found.upload.record.result = result;
        this.host.background(this.end(found, 'completed', { result }));
      },
      failed: (id, error) => {
        const found = active(id);
        if (found) this.host.background(this.fail(found, error));
      },
    };
  }

  async fail(active: ActiveUpload, error: UploadHubError): Promise<void> {
    if (isTerminalState(active.upload.record.state)) return;
    // Partial bytes and outputs of a failed upload are of no use to anyone; the record stays,
    // and the failure is reported even if deleting them failed.
    await this.discard(active, error).catch(() => undefined);
    const info = error.toJSON();
    active.upload.record.error = info;
    if (error.stage !== undefined) active.upload.record.stage = error.stage;
    await this.end(active, 'failed', { error: info });
  }

  /**
   * Ends an upload's bytes for good: the writer is told, pending chunks fail, bytes and outputs
   * are deleted. Callers publish the terminal state after it, so whoever hears `cancelled`,
   * `failed` or `expired` may rely on the bytes being gone.
   */
  async discard(active: ActiveUpload, error: UploadHubError): Promise<void> {
    this.endWriter(active, error);
    await active.upload.abort(error);
    await this.host.store.removeData(active.upload.id);
  }

  /** Tells the attached writer it no longer holds the upload. */
  endWriter(active: ActiveUpload, reason: UploadHubError | undefined): void {
    const writer = active.upload.writer;
    active.upload.writer = undefined;
    writer?.detached(active.upload.id, reason);
  }

  /** A state change on the way: saved in the background (retried until it lands), published at once. */
  setState(active: ActiveUpload, state: Exclude<UploadState, TerminalState>, extra: Record<string, JsonValue | undefined>): void {
    const record = active.upload.record;
    if (isTerminalState(record.state)) return;
    record.state = state;
    record.updatedAt = Date.now();
    stamp(active);
    // A failure is retried and reported by the saver (health, log); nobody waits on this one.
    this.host.saver.save(record).catch(() => undefined);
    this.host.publish(active, { type: state, uploadId: record.id, ...extra } as HubEventBody);
    this.host.logger?.info({ uploadId: record.id, state, ...(state === 'uploaded' ? { bytes: active.upload.committed } : {}) }, `upload ${state}`);
  }

  /**
   * The end of an upload: final at once in memory (of two racing ends, a double cancel or
   * cancel vs. a failing stage, only the first counts), published only once the record is
   * saved, so whoever hears `completed`, `failed` or `cancelled` can rely on it after a restart.
   */
  async end(active: ActiveUpload, state: TerminalState, extra: Record<string, JsonValue | undefined>): Promise<void> {
    const record = active.upload.record;
    if (isTerminalState(record.state)) return;
    record.state = state;
    this.host.limits.closed(record.owner, record.id);
    record.updatedAt = Date.now();
    if (state === 'completed') active.bar.advance(100);
    stamp(active);
    // Subscribers learn how many log lines they missed before the upload's last event.
    active.logs.flush();
    active.logs.close();
    try {
      await this.host.saver.save(record);
    } catch {
      // The hub closed (or lost the upload's lease) before the record could be saved: it was
      // never final in storage, so it is not announced; the upload resumes where its record left it.
      return;
    }
    this.host.publish(active, { type: state, uploadId: record.id, ...extra } as HubEventBody);
    this.logEnd(active);
    this.host.ended(active);
  }

  private logEnd(active: ActiveUpload): void {
    const { logger } = this.host;
    if (!logger) return;
    const record = active.upload.record;
    const durationMs = Math.max(0, record.updatedAt - record.createdAt);
    if (record.state === 'completed') {
      const bytesPerSecond = durationMs > 0 ? Math.round((record.size * 1000) / durationMs) : null;
      logger.info({ uploadId: record.id, size: record.size, durationMs, bytesPerSecond, sha256: record.sha256 }, 'upload completed');
    } else {
      const error = record.error ?? { code: record.state === 'cancelled' ? 'ERR_CANCELLED' : 'ERR_EXPIRED', message: '' };
      logger.info({ uploadId: record.id, bytes: active.upload.committed, durationMs, code: error.code, reason: error.message, ...(record.stage === undefined ? {} : { stage: record.stage }) }, `upload ${record.state}`);
    }
  }
}

/** Copies what the record carries of the live upload, before a save. */
export function stamp(active: ActiveUpload): void {
  const { record } = active.upload;
  record.percent = active.bar.percent;
  record.bytes = active.upload.committed;
  record.phase = active.bar.phase;
  if (active.bar.stage !== undefined) record.stage = active.bar.stage;
  if (active.bar.stagePercent !== undefined) record.stagePercent = active.bar.stagePercent;
  else delete record.stagePercent;
}
