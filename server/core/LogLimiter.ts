/**
 * Limits one upload's log stream to `perSecond` lines per one-second window. Lines over the
 * limit are counted, not queued; when the window ends (or earlier, on `flush()` before a
 * terminal event) one summary line says how many were dropped, so subscribers learn what
 * they missed without receiving it. The summary is not counted against the limit.
 *
 * @example
 * const logs = new LogLimiter(20, (line) => publish({ type: 'log', uploadId, ...line }));
 * logs.push({ level: 'info', text: 'row 1 imported' });
 */
import type { LogLevel } from '../../shared/messages.js';

export interface LogLine {
  level: LogLevel;
  text: string;
  stage?: string;
}

/** The summary's text; one function so tests and docs agree with the hub. */
export function droppedSummary(dropped: number, perSecond: number): string {
  return `${dropped} log line${dropped === 1 ? '' : 's'} dropped (limit ${perSecond}/s)`;
}

export class LogLimiter {
  private windowStart = Number.NEGATIVE_INFINITY;
  private admitted = 0;
  private dropped = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  /**
   * @param perSecond  lines admitted per window (>= 1)
   * @param emit       receives admitted lines and summaries, in order
   * @param now        clock in ms (tests inject one)
   */
  constructor(
    private readonly perSecond: number,
    private readonly emit: (line: LogLine) => void,
    private readonly now: () => number = Date.now,
  ) {}

  push(line: LogLine): void {
    if (this.closed) return;
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      // A new window: whatever the last one dropped is summarised before the new line.
      this.flush();
      this.windowStart = now;
      this.admitted = 0;
    }
    if (this.admitted >= this.perSecond) {
      this.dropped++;
      // The summary goes out when the window ends, even if the stage never logs again.
      this.timer ??= this.armTimer(this.windowStart + 1000 - now);
      return;
    }
    this.admitted++;
    this.emit(line);
  }

  /** Emits the summary of dropped lines now, if any (call before an upload's terminal event). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.dropped === 0 || this.closed) return;
    const dropped = this.dropped;
    this.dropped = 0;
    this.emit({ level: 'warn', text: droppedSummary(dropped, this.perSecond) });
  }

  /** Stops the timer; nothing is emitted afterwards. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dropped = 0;
  }

  /** Lines dropped and not yet summarised. */
  get pending(): number {
    return this.dropped;
  }

  /** Whether a summary timer is armed; for leak checks. */
  get hasTimer(): boolean {
    return this.timer !== undefined;
  }

  private armTimer(ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, Math.max(0, ms));
    // A pending summary must not keep a process alive that has nothing else to do.
    timer.unref?.();
    return timer;
  }
}
