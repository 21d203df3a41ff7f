/**
 * Aggregate throughput over the last minutes, for the dashboard's chart: each progress event's
 * growth of its upload's committed bytes is counted in the second the page heard it. Pure and
 * clock-free (time comes in as `now`, in ms), unit-tested in test/unit/web-dashboard.test.ts.
 *
 * @example
 * const series = new ThroughputSeries(Date.now());
 * series.baseline(status.id, status.bytes);            // a status: where it stands, not throughput
 * series.record(event.uploadId, event.bytes, Date.now()); // a progress event: its growth counts
 * chart.draw(series.points(Date.now()));
 */

export interface ThroughputPoint {
  /** Start of the second, ms. */
  at: number;
  bytesPerSecond: number;
}

export interface ThroughputOptions {
  /** How far back the series reaches, ms. Default 300000 (5 min). */
  windowMs?: number;
  /** Width of one point, ms. Default 1000. */
  bucketMs?: number;
}

export class ThroughputSeries {
  readonly windowMs: number;
  readonly bucketMs: number;
  /** Bytes counted per bucket (`floor(at / bucketMs)`); only buckets with bytes are kept. */
  private readonly buckets = new Map<number, number>();
  /** Each moving upload's committed bytes as last heard. */
  private readonly known = new Map<string, number>();

  /** `since`: when the page started listening; no point is drawn from before it (nothing was heard then). */
  constructor(private readonly since: number, options: ThroughputOptions = {}) {
    this.windowMs = options.windowMs ?? 300_000;
    this.bucketMs = options.bucketMs ?? 1000;
  }

  /**
   * Where an upload stands, from a status (a snapshot, the list, a reconnect): bytes committed
   * while the page was not listening are not throughput of any second it can name.
   */
  baseline(uploadId: string, bytes: number): void {
    // A status asked for before the last progress event may be older than it: never step back.
    this.known.set(uploadId, Math.max(this.known.get(uploadId) ?? 0, bytes));
  }

  /** Committed bytes from a progress event heard at `now`; returns the bytes counted. */
  record(uploadId: string, bytes: number, now: number): number {
    const before = this.known.get(uploadId);
    this.known.set(uploadId, bytes);
    // First heard of mid-way: its bytes so far are a starting point, not a burst.
    if (before === undefined || bytes <= before) return 0;
    // Bytes heard in the part of a second before the first whole one are counted in that first
    // second: points start at a whole second, and bytes left before it would never be drawn.
    const bucket = Math.max(Math.floor(now / this.bucketMs), Math.ceil(this.since / this.bucketMs));
    this.buckets.set(bucket, (this.buckets.get(bucket) ?? 0) + (bytes - before));
    this.prune(now);
    return bytes - before;
  }

  /** The upload ended: nothing more of it will move. */
  forget(uploadId: string): void {
    this.known.delete(uploadId);
  }

  /**
   * One point per whole second since the page started listening, up to the window, oldest
   * first. The second under way is left out: half of it would read as a dip.
   */
  points(now: number): ThroughputPoint[] {
    const last = Math.floor(now / this.bucketMs) - 1;
    const first = Math.max(Math.ceil(this.since / this.bucketMs), last - Math.floor(this.windowMs / this.bucketMs) + 1);
    const points: ThroughputPoint[] = [];
    for (let bucket = first; bucket <= last; bucket++) {
      points.push({ at: bucket * this.bucketMs, bytesPerSecond: ((this.buckets.get(bucket) ?? 0) * 1000) / this.bucketMs });
    }
    return points;
  }

  /** Whether anything counted is still within the window, so the chart still has to scroll it out. */
  hasData(now: number): boolean {
    this.prune(now);
    return this.buckets.size > 0;
  }

  private prune(now: number): void {
    const oldest = Math.floor((now - this.windowMs) / this.bucketMs);
    for (const bucket of this.buckets.keys()) if (bucket < oldest) this.buckets.delete(bucket);
  }
}
