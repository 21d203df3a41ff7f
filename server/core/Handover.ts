/**
 * How uploads move between the nodes of a cluster: a resume on this node takes an upload from
 * its holder (asked to release it) or from a dead holder (once its lease ran out); a cancel for
 * an upload held elsewhere is passed to its holder; a request from another node (release,
 * cancel, orphans) is answered here; uploads nobody holds whose bytes were all in are processed
 * here. One node never contends: its registry grants every lease at once.
 */
import { UploadHubError } from '../../shared/errors.js';
import { isTerminalState, type UploadState, type UploadStatus } from '../../shared/messages.js';
import type { ActiveUpload } from './ActiveUpload.js';
import type { Principal } from './auth.js';
import type { Holdings } from './Holdings.js';
import { PAST_BYTES, type HubParts } from './HubParts.js';
import { joinOrStart } from './joinOrStart.js';
import type { NodeRequest } from './Registry.js';

function notFound(id: string): UploadHubError {
  return new UploadHubError('ERR_NOT_FOUND', `No upload ${id}`);
}

export interface HandoverHost {
  status(principal: Principal, id: string): Promise<UploadStatus>;
  /** Cancels an upload this node holds (joining a cancel under way). */
  stop(active: ActiveUpload): Promise<UploadStatus>;
}

export class Handover {
  /** Takeovers under way, by upload id, so two resumes on this node share one. */
  private readonly takingOver = new Map<string, Promise<ActiveUpload>>();

  constructor(private readonly parts: HubParts, private readonly holdings: Holdings, private readonly host: HandoverHost) {}

  /**
   * Takes an upload another node holds, or held before it died: asks a live holder to release
   * it (it stops, commits, releases), or waits out a dead holder's lease. At most
   * leaseTtlMs (+ margin).
   */
  takeOver(id: string): Promise<ActiveUpload> {
    return joinOrStart(this.takingOver, id, () => this.acquireFromCluster(id));
  }

  private async acquireFromCluster(id: string): Promise<ActiveUpload> {
    const deadline = Date.now() + this.parts.options.leaseTtlMs + 2_000;
    let asked: string | undefined;
    let pause = 20;
    for (;;) {
      const acquired = await this.parts.registry.acquire(id);
      if (!acquired) throw notFound(id);
      if ('lease' in acquired) {
        const active = await this.holdings.adopt(id, acquired.lease);
        if (!active) throw new UploadHubError('ERR_UPLOAD_STATE', `Upload ${id} ended while being resumed`);
        return active;
      }
      if (asked !== acquired.heldBy) {
        asked = acquired.heldBy;
        await this.parts.registry.request(acquired.heldBy, { type: 'release', uploadId: id });
      }
      if (Date.now() + pause > deadline) throw new UploadHubError('ERR_UNAVAILABLE', `Upload ${id} is held by node ${acquired.heldBy}, which did not release it in time; try again`);
      // The holder releases within a few ms; a dead one's lease runs out. Polled with backoff.
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(200, pause * 2);
    }
  }

  /**
   * A cancel for an upload this node does not hold: the holder is asked to cancel it (its
   * stage's signal fires there) and this waits for the end; an upload nobody holds (its node
   * died) is taken over here and cancelled.
   */
  async cancelElsewhere(principal: Principal, id: string): Promise<UploadStatus> {
    const deadline = Date.now() + this.parts.options.abortDeadlineMs + this.parts.options.leaseTtlMs + 2_000;
    let asked: string | undefined;
    while (Date.now() < deadline) {
      const acquired = await this.parts.registry.acquire(id);
      if (!acquired) throw notFound(id);
      if ('lease' in acquired) {
        const active = await this.holdings.adopt(id, acquired.lease);
        if (!active) return this.host.status(principal, id);
        return this.host.stop(active);
      }
      if (asked !== acquired.heldBy) {
        asked = acquired.heldBy;
        await this.parts.registry.request(acquired.heldBy, { type: 'cancel', uploadId: id });
      }
      const status = await this.untilEnded(principal, id, Math.min(250, deadline - Date.now()));
      if (isTerminalState(status.state)) return status;
    }
    throw new UploadHubError('ERR_UNAVAILABLE', `Upload ${id} is held by node ${asked ?? 'unknown'}, which did not cancel it in time`);
  }

  /** The status once the upload ended, or as it is after `ms`; waits on the upload's events. */
  private async untilEnded(principal: Principal, id: string, ms: number): Promise<UploadStatus> {
    await new Promise<void>((resolve) => {
      const subscription = this.parts.events.subscribe({
        deliver: (event) => {
          if (isTerminalState(event.type as UploadState)) finish();
        },
      });
      subscription.add(id);
      const timer = setTimeout(finish, Math.max(0, ms));
      function finish(): void {
        clearTimeout(timer);
        subscription.close();
        resolve();
      }
    });
    return this.host.status(principal, id);
  }

  /** A request from another node. */
  heard(request: NodeRequest): void {
    if (request.type === 'orphans') {
      this.parts.background(this.parts.registry.once('orphans', 250, () => this.takeOverOrphans()));
      return;
    }
    const active = this.holdings.get(request.uploadId);
    if (!active) return;
    if (request.type === 'cancel') {
      this.parts.background(this.host.stop(active).then(() => undefined));
      return;
    }
    // A release: only an upload still receiving bytes moves; one being finalized or processed stays.
    if (active.finalizing || PAST_BYTES.has(active.upload.record.state) || isTerminalState(active.upload.record.state)) return;
    this.parts.background(this.holdings.letGo(active, undefined, true));
  }

  /**
   * Uploads nobody holds (their node died or drained): one whose bytes were all in is processed
   * here from the start; one still receiving stays where it is until its client resumes it (or
   * it expires).
   */
  async takeOverOrphans(): Promise<void> {
    if (this.parts.stopping) return;
    for (const id of await this.parts.registry.orphans()) {
      if (this.holdings.has(id)) continue;
      const stored = await this.parts.registry.load(id);
      if (!stored || !PAST_BYTES.has(stored.record.state)) continue;
      const acquired = await this.parts.registry.acquire(id);
      if (!acquired || !('lease' in acquired)) continue;
      const active = await this.holdings.adopt(id, acquired.lease);
      if (!active) continue;
      active.upload.restoreComplete();
      active.upload.record.state = 'uploaded';
      this.parts.logger?.info({ uploadId: id, node: this.parts.registry.nodeId }, 'processing taken over');
      this.parts.finalizer.process(active);
    }
  }
}
