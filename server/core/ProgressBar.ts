/**
 * One upload's bar, 0 -> 100 through the bytes and then the stages: where it is, which phase
 * and stage, how fast it moves. It never goes back. The hub tells it what happened and
 * publishes the progress events it builds.
 */
import type { HubEventBody, Phase } from '../../shared/messages.js';
import { processingPercent, RateMeter, uploadPercent, type ProgressPlan } from '../../shared/progress.js';

export class ProgressBar {
  percent: number;
  phase: Phase = 'upload';
  stage: string | undefined;
  stagePercent: number | undefined;
  queuePosition: number | undefined;
  private readonly rate = new RateMeter();

  constructor(readonly plan: ProgressPlan, startPercent: number, stage: string | undefined) {
    this.percent = startPercent;
    this.stage = stage;
  }

  /** Bytes committed: the upload phase's share of the bar. */
  bytes(committed: number, size: number, now = Date.now()): void {
    this.rate.sample(now, committed);
    this.advance(uploadPercent(this.plan, committed, size));
  }

  /** The file turned out shorter than declared (a multipart part): the bytes phase is whole. */
  bytesComplete(committed: number): void {
    this.advance(uploadPercent(this.plan, committed, committed));
  }

  queued(position: number): boolean {
    if (this.queuePosition === position) return false;
    this.queuePosition = position;
    return true;
  }

  processingStarted(): void {
    this.queuePosition = undefined;
    this.phase = 'processing';
  }

  stageStarted(index: number, name: string): void {
    this.stage = name;
    this.stagePercent = 0;
    this.rate.reset();
    this.advance(processingPercent(this.plan, index, 0));
  }

  stageProgress(index: number, fraction: number): void {
    this.stagePercent = Math.round(fraction * 10000) / 100;
    this.advance(processingPercent(this.plan, index, fraction));
    this.rate.sample(Date.now(), this.percent);
  }

  completed(): void {
    this.stagePercent = 100;
    this.advance(100);
  }

  /** The bar never goes back. */
  advance(percent: number): void {
    this.percent = Math.max(this.percent, percent);
  }

  /** The progress event for the bar as it stands. */
  event(uploadId: string, committed: number, size: number): HubEventBody {
    const body: HubEventBody = {
      type: 'progress',
      uploadId,
      bytes: committed,
      total: size,
      percent: this.percent,
      phase: this.phase,
      bytesPerSecond: this.phase === 'upload' ? Math.round(this.rate.rate()) : 0,
      etaSeconds: this.phase === 'upload' ? this.rate.eta(committed, size) : this.rate.eta(this.percent, 100),
    };
    if (this.stage !== undefined && this.phase === 'processing') {
      body.stage = this.stage;
      body.stagePercent = this.stagePercent ?? 0;
    }
    return body;
  }
}
