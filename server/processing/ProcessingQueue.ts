/**
 * Runs uploads' stages with a concurrency limit. Owns the AbortController of each job, stage
 * time limits, and the abort deadline after which a stage that ignores its signal is abandoned
 * (its promise may still be running, but nothing it reports reaches anyone).
 */
import type { Readable } from 'node:stream';
import type { JsonValue, LogLevel } from '../../shared/messages.js';
import { UploadHubError, toHubError } from '../../shared/errors.js';
import type { Stage, StageContext, StageUpload } from './Stage.js';

/** How the queue reports to the hub. Never called for a job after it was cancelled. */
export interface ProcessingHost {
  queued(uploadId: string, position: number): void;
  started(uploadId: string): void;
  stageStarted(uploadId: string, index: number, stage: Stage, count: number): void;
  stageProgress(uploadId: string, index: number, fraction: number): void;
  log(uploadId: string, level: LogLevel, text: string, stage?: string): void;
  completed(uploadId: string, result: Record<string, JsonValue>): void;
  failed(uploadId: string, error: UploadHubError): void;
}

export interface ProcessingJob {
  upload: StageUpload;
  stages: readonly Stage[];
  createReadStream(): Readable;
  outputDir(): Promise<string>;
}

export interface ProcessingQueueOptions {
  concurrency: number;
  stageTimeoutMs: number;
  abortDeadlineMs: number;
}

interface JobState {
  job: ProcessingJob;
  controller: AbortController;
  stage: string | undefined;
  /** Resolves when the job's run loop has ended, one way or another. */
  stopped: Promise<void>;
  markStopped: () => void;
  cancelled: boolean;
}

/** Resolves after `ms` unless cleared first; the timer never keeps the process alive. */
function delay(ms: number): { promise: Promise<void>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return { promise, clear: () => clearTimeout(timer) };
}

/**
 * A stage's return value as the JSON every subscriber will receive (a Date becomes its string,
 * undefined fields vanish). Throws when it has no JSON form (a BigInt, a cycle), which fails
 * the stage rather than the process when the result is later sent or stored.
 */
function toJson(value: unknown): JsonValue {
  if (value === undefined) return null;
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new Error(`returned ${typeof value}, which has no JSON form`);
  return JSON.parse(text) as JsonValue;
}

export class ProcessingQueue {
  private readonly waiting: JobState[] = [];
  private readonly running = new Map<string, JobState>();

  constructor(private readonly host: ProcessingHost, private readonly options: ProcessingQueueOptions) {}

  get runningCount(): number {
    return this.running.size;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  enqueue(job: ProcessingJob): void {
    let markStopped = () => {};
    const stopped = new Promise<void>((resolve) => (markStopped = resolve));
    this.waiting.push({ job, controller: new AbortController(), stage: undefined, stopped, markStopped, cancelled: false });
    this.pump();
    this.reportPositions();
  }

  /**
   * Stops a job: a waiting one leaves the queue; a running one has its signal fired and is
   * awaited up to the abort deadline. Resolves with the stage it stopped in, or undefined
   * when the queue does not know the upload.
   */
  async cancel(uploadId: string): Promise<{ stage: string | undefined } | undefined> {
    const index = this.waiting.findIndex((state) => state.job.upload.id === uploadId);
    if (index >= 0) {
      const [state] = this.waiting.splice(index, 1);
      (state as JobState).cancelled = true;
      this.reportPositions();
      return { stage: undefined };
    }
    const state = this.running.get(uploadId);
    if (!state) return undefined;
    state.cancelled = true;
    state.controller.abort(new UploadHubError('ERR_CANCELLED'));
    await state.stopped;
    return { stage: state.stage };
  }

  /** Cancels everything (shutdown). */
  async close(): Promise<void> {
    for (const state of this.waiting.splice(0)) state.cancelled = true;
    await Promise.all([...this.running.keys()].map((id) => this.cancel(id)));
  }

  private pump(): void {
    while (this.running.size < this.options.concurrency && this.waiting.length > 0) {
      const state = this.waiting.shift() as JobState;
      this.running.set(state.job.upload.id, state);
      void this.run(state)
        .catch((error: unknown) => {
          // A fault in reporting (not in a stage: those are caught per stage) must not take
          // the process down with an unhandled rejection; the upload fails instead.
          if (state.cancelled) return;
          try {
            this.host.failed(state.job.upload.id, toHubError(error));
          } catch {
            // Nothing left to tell.
          }
        })
        .finally(() => {
          this.running.delete(state.job.upload.id);
          state.markStopped();
          this.pump();
          this.reportPositions();
        });
    }
  }

  private reportPositions(): void {
    this.waiting.forEach((state, index) => this.host.queued(state.job.upload.id, index + 1));
  }

  private async run(state: JobState): Promise<void> {
    const { job } = state;
    const id = job.upload.id;
    this.host.started(id);
    const results: Record<string, JsonValue> = {};
    for (const [index, stage] of job.stages.entries()) {
      if (state.cancelled) return;
      state.stage = stage.name;
      this.host.stageStarted(id, index, stage, job.stages.length);
      const outcome = await this.runStage(state, stage, index, results);
      if (state.cancelled) return;
      if ('error' in outcome) {
        this.host.failed(id, outcome.error);
        return;
      }
      results[stage.name] = outcome.value;
    }
    this.host.completed(id, results);
  }

  private async runStage(
    state: JobState,
    stage: Stage,
    index: number,
    results: Readonly<Record<string, JsonValue>>,
  ): Promise<{ value: JsonValue } | { error: UploadHubError }> {
    const { job } = state;
    const id = job.upload.id;
    const controller = new AbortController();
    const forwardAbort = () => controller.abort(state.controller.signal.reason);
    state.controller.signal.addEventListener('abort', forwardAbort, { once: true });
    const timeoutMs = stage.timeoutMs ?? this.options.stageTimeoutMs;
    const timeout = timeoutMs > 0 ? setTimeout(() => {
      controller.abort(new UploadHubError('ERR_STAGE_TIMEOUT', `Stage ${stage.name} exceeded ${timeoutMs} ms`, { stage: stage.name }));
    }, timeoutMs) : undefined;
    // Once aborted, nothing the stage reports reaches anyone.
    const live = () => !controller.signal.aborted;
    // Stages may report per row; only a change the bar can show (0.01 %) becomes an event.
    let lastFraction = -1;
    const ctx: StageContext = {
      upload: job.upload,
      createReadStream: () => job.createReadStream(),
      outputDir: () => job.outputDir(),
      signal: controller.signal,
      results,
      progress: (done, total) => {
        if (!live() || !Number.isFinite(done) || !Number.isFinite(total)) return;
        const fraction = total > 0 ? Math.round(Math.min(1, Math.max(0, done / total)) * 10_000) / 10_000 : 0;
        if (fraction === lastFraction) return;
        lastFraction = fraction;
        this.host.stageProgress(id, index, fraction);
      },
      log: (level, text) => {
        if (live()) this.host.log(id, level, text, stage.name);
      },
    };
    type Settled = { ok: true; value: JsonValue } | { ok: false; error: unknown };
    const settled: Promise<Settled> = Promise.resolve()
      .then(() => stage.run(ctx))
      .then((value): Settled => ({ ok: true, value: toJson(value) }))
      .catch((error: unknown): Settled => ({ ok: false, error }));
    let onAbort = () => {};
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      if (controller.signal.aborted) onAbort();
      else controller.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const first = await Promise.race([settled, aborted]);
      if (first !== 'aborted' && !controller.signal.aborted) {
        if (first.ok) return { value: first.value };
        const message = first.error instanceof Error ? first.error.message : String(first.error);
        return { error: new UploadHubError('ERR_STAGE_FAILED', `Stage ${stage.name} failed: ${message}`, { cause: first.error, stage: stage.name }) };
      }
      // Aborted (cancel or timeout): give the stage until the deadline to settle.
      const deadline = delay(this.options.abortDeadlineMs);
      const inTime = await Promise.race([settled.then(() => true), deadline.promise.then(() => false)]);
      deadline.clear();
      if (!inTime) {
        // Reported through the host even though the job is stopping: operators must see it.
        this.host.log(id, 'warn', `Stage ${stage.name} ignored its abort signal; abandoned after ${this.options.abortDeadlineMs} ms`, stage.name);
      }
      const reason: unknown = controller.signal.reason;
      return { error: reason instanceof UploadHubError ? reason : new UploadHubError('ERR_CANCELLED', undefined, { stage: stage.name }) };
    } finally {
      clearTimeout(timeout);
      controller.signal.removeEventListener('abort', onAbort);
      state.controller.signal.removeEventListener('abort', forwardAbort);
    }
  }
}
