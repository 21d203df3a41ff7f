/**
 * The one throttle every subscriber uses (socket, Socket.IO room, SSE, NDJSON), per upload:
 *
 * - progress at most once per `intervalMs` and only in steps of at least `minStepPercent`;
 * - held progress is coalesced to the latest and sent when the interval has passed; progress
 *   held for a step under `minStepPercent` is still sent once nothing newer came for
 *   `SETTLE_MS`, so a stalled upload's bar shows where it really stopped;
 * - always the first progress, the 100% one, and the first of a new phase;
 * - every non-progress event (state, stage, log) passes at once, after any held progress, so
 *   order is kept and a terminal event is never dropped;
 * - while the consumer reports itself blocked (a socket not draining), progress is held, not
 *   queued: a slow consumer gets fewer events, never a growing buffer. `flush()` on drain.
 */
import { isTerminalState, type HubEvent, type Phase, type ProgressEvent } from './messages.js';

export interface ThrottleOptions {
  /** Minimum time between two progress events of one upload, in ms. 0 turns time throttling off. Default 100 (10/s). */
  intervalMs: number;
  /** Minimum step between two progress events of one upload, in percent. 0 turns it off. Default 1. */
  minStepPercent: number;
}

export const DEFAULT_THROTTLE: Readonly<ThrottleOptions> = Object.freeze({ intervalMs: 100, minStepPercent: 1 });

/** Progress held for its small step is sent after this long without newer progress, in ms. */
export const SETTLE_MS = 1_000;

interface UploadThrottleState {
  lastAt: number;
  lastPercent: number;
  lastPhase: ProgressEvent['phase'] | undefined;
  pending: ProgressEvent | undefined;
  /** When `pending` was last replaced. */
  pendingAt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The armed timer is the settle timer (sends held small-step progress), not the interval's. */
  settling: boolean;
}

export class EventThrottle {
  private readonly states = new Map<string, UploadThrottleState>();
  private closed = false;

  /**
   * @param emit       receives every event that passes, in order
   * @param options    see ThrottleOptions
   * @param isBlocked  true while the consumer cannot take more; progress is then held
   */
  constructor(
    private readonly emit: (event: HubEvent) => void,
    private readonly options: ThrottleOptions = DEFAULT_THROTTLE,
    private readonly isBlocked: () => boolean = () => false,
    private readonly now: () => number = Date.now,
  ) {}

  push(event: HubEvent): void {
    if (this.closed) return;
    if (event.type !== 'progress') {
      const state = this.states.get(event.uploadId);
      if (state?.pending) this.send(state, state.pending);
      this.emit(event);
      if (isTerminalState(event.type)) this.forget(event.uploadId);
      return;
    }
    let state = this.states.get(event.uploadId);
    if (!state) {
      state = { lastAt: 0, lastPercent: 0, lastPhase: undefined, pending: undefined, pendingAt: 0, timer: undefined, settling: false };
      this.states.set(event.uploadId, state);
      this.send(state, event);
      return;
    }
    if (event.percent >= 100 || event.phase !== state.lastPhase) {
      this.send(state, event);
      return;
    }
    state.pending = event;
    state.pendingAt = this.now();
    if (this.isBlocked()) return;
    if (event.percent - state.lastPercent < this.options.minStepPercent) {
      // Too small a step to send now; if nothing newer comes (the upload stalled), the latest
      // is sent once things settle. One timer, re-armed when it fires early, not per event.
      if (!state.timer) {
        state.settling = true;
        state.timer = setTimeout(() => this.onSettle(state), this.settleMs);
      }
      return;
    }
    const wait = state.lastAt + this.options.intervalMs - this.now();
    if (wait <= 0) this.send(state, event);
    else if (!state.timer || state.settling) {
      if (state.timer) clearTimeout(state.timer);
      state.settling = false;
      state.timer = setTimeout(() => this.onTimer(state), wait);
    }
  }

  /** Sends held progress now; call when a blocked consumer drains. */
  flush(): void {
    for (const state of this.states.values()) {
      if (state.pending && state.pending.percent - state.lastPercent >= this.options.minStepPercent) this.send(state, state.pending);
    }
  }

  /** Stops all timers; nothing is emitted afterwards. */
  close(): void {
    this.closed = true;
    for (const uploadId of [...this.states.keys()]) this.forget(uploadId);
  }

  /** Stops tracking one upload (its subscriber stopped watching it). */
  forget(uploadId: string): void {
    const state = this.states.get(uploadId);
    if (state?.timer) clearTimeout(state.timer);
    this.states.delete(uploadId);
  }

  /** Timers currently armed; for leak checks. */
  get pendingTimers(): number {
    let count = 0;
    for (const state of this.states.values()) if (state.timer) count++;
    return count;
  }

  get trackedUploads(): number {
    return this.states.size;
  }

  private onTimer(state: UploadThrottleState): void {
    state.timer = undefined;
    if (this.closed || !state.pending || this.isBlocked()) return;
    this.send(state, state.pending);
  }

  private get settleMs(): number {
    return Math.max(this.options.intervalMs, SETTLE_MS);
  }

  private onSettle(state: UploadThrottleState): void {
    state.timer = undefined;
    state.settling = false;
    if (this.closed || !state.pending || this.isBlocked()) return;
    const quietFor = this.now() - state.pendingAt;
    if (quietFor >= this.settleMs) this.send(state, state.pending);
    else {
      state.settling = true;
      state.timer = setTimeout(() => this.onSettle(state), this.settleMs - quietFor);
    }
  }

  private send(state: UploadThrottleState, event: ProgressEvent): void {
    if (state.timer) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
    state.settling = false;
    state.pending = undefined;
    state.lastAt = this.now();
    state.lastPercent = event.percent;
    state.lastPhase = event.phase;
    this.emit(event);
  }
}

/**
 * Events sent in one go (a resumed watcher's missed events) without superseded progress: a
 * progress event is left out when a later one of the same upload and phase follows with no
 * other event of that upload in between. Order and every other event are kept.
 */
export function coalesceProgress(events: readonly HubEvent[]): HubEvent[] {
  const kept: HubEvent[] = [];
  // Walking backwards: the phase of the latest progress of each upload with nothing after it yet.
  const latest = new Map<string, Phase>();
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i] as HubEvent;
    if (event.type === 'progress') {
      if (latest.get(event.uploadId) === event.phase) continue;
      latest.set(event.uploadId, event.phase);
    } else latest.delete(event.uploadId);
    kept.push(event);
  }
  return kept.reverse();
}
