/**
 * The expiry sweep: every node expires the abandoned uploads it holds (in its memory); the
 * cluster-wide part (forgetting finished uploads past finishedRetentionMs, expiring and taking
 * over uploads nobody holds) runs on one node per interval.
 */
import { UploadHubError } from '../../shared/errors.js';
import type { UploadRecord } from '../store/UploadStore.js';
import type { ActiveUpload } from './ActiveUpload.js';
import type { Handover } from './Handover.js';
import type { Holdings } from './Holdings.js';
import type { HubParts } from './HubParts.js';

/** How often a cluster's chores run (on one node each time), in ms, at most. */
const CLUSTER_SWEEP_MS = 2_000;

export class Sweeper {
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly parts: HubParts, private readonly holdings: Holdings, private readonly handover: Handover) {}

  /**
   * Every minute at most, more often with short TTLs; on several nodes every 2 s (or leaseTtlMs
   * if shorter), so a dead node's uploads are taken over soon after its liveness key is gone.
   */
  start(): void {
    const { uploadTtlMs, finishedRetentionMs, leaseTtlMs } = this.parts.options;
    const every = this.parts.registry.clustered
      ? Math.min(leaseTtlMs, CLUSTER_SWEEP_MS)
      : Math.min(60_000, Math.max(1_000, Math.min(uploadTtlMs || 60_000, finishedRetentionMs || 60_000)));
    this.timer = setInterval(() => this.parts.background(this.chores(every)), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * The timer's chores: this node expires the abandoned uploads it holds (they are in its
   * memory); the cluster-wide ones (retention, uploads nobody holds) run on one node per interval.
   */
  private async chores(intervalMs: number): Promise<void> {
    if (this.parts.stopping) return;
    const now = Date.now();
    for (const active of this.holdings.values()) if (!active.upload.writer && this.stale(active.upload.record, now)) await this.expire(active);
    await this.parts.registry.once('sweep', intervalMs, () => this.sweep());
    if (this.parts.registry.clustered) await this.parts.registry.once('orphans', intervalMs, () => this.handover.takeOverOrphans());
  }

  /** Forgets old finished uploads, and expires abandoned ones nobody holds (a dead node's). */
  private async sweep(): Promise<void> {
    const now = Date.now();
    const { finishedRetentionMs } = this.parts.options;
    if (finishedRetentionMs > 0) {
      for (const id of await this.parts.registry.finishedBefore(now - finishedRetentionMs)) await this.parts.registry.remove(id).catch(() => undefined);
    }
    if (this.parts.options.uploadTtlMs <= 0) return;
    for (const id of await this.parts.registry.orphans()) {
      if (this.holdings.has(id)) continue;
      const stored = await this.parts.registry.load(id);
      if (!stored || !this.stale(stored.record, now)) continue;
      const acquired = await this.parts.registry.acquire(id);
      if (!acquired || !('lease' in acquired)) continue;
      const active = await this.holdings.adopt(id, acquired.lease);
      if (active && !active.upload.writer) await this.expire(active);
    }
  }

  /** Incomplete and untouched for uploadTtlMs. */
  private stale(record: UploadRecord, now: number): boolean {
    const ttl = this.parts.options.uploadTtlMs;
    return ttl > 0 && (record.state === 'created' || record.state === 'uploading') && now - record.updatedAt > ttl;
  }

  private async expire(active: ActiveUpload): Promise<void> {
    const expired = new UploadHubError('ERR_EXPIRED');
    await this.parts.finalizer.discard(active, expired).catch(() => undefined);
    active.upload.record.error = expired.toJSON();
    await this.parts.finalizer.end(active, 'expired', {});
  }
}
