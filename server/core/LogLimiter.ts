/**
 * Limits one upload's log stream to `perSecond` lines in each one-second window. Lines over the
 * limit are counted, and the first line admitted after them carries the count, so subscribers
 * learn how many they missed without receiving them.
 */
export class LogLimiter {
  private windowStart = 0;
  private admitted = 0;
  private dropped = 0;

  constructor(private readonly perSecond: number) {}

  /** false: drop this line. A number: send it, after a summary of that many dropped lines when > 0. */
  admit(now: number): number | false {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.admitted = 0;
    }
    if (this.admitted >= this.perSecond) {
      this.dropped++;
      return false;
    }
    this.admitted++;
    const dropped = this.dropped;
    this.dropped = 0;
    return dropped;
  }

  /** Lines dropped and not yet summarised. */
  get pending(): number {
    return this.dropped;
  }
}
