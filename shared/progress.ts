/**
 * Progress math shared by hub and client: one bar from 0 to 100 across upload and processing.
 *
 * The upload phase fills `uploadShare` percent of the bar by committed bytes; the stages fill
 * the rest in proportion to their weights. Percent is rounded to 0.01 so that equal progress
 * always yields an equal number on both sides.
 */

export interface ProgressPlan {
  /** Percent of the bar the upload phase fills (0-100). 100 when there are no stages. */
  uploadShare: number;
  /** Stage weights in run order; empty when nothing runs after the upload. */
  stageWeights: readonly number[];
}

export function roundPercent(value: number): number {
  return Math.min(100, Math.max(0, Math.round(value * 100) / 100));
}

export function fraction(done: number, total: number): number {
  if (total <= 0) return 1;
  return Math.min(1, Math.max(0, done / total));
}

/** Overall percent while bytes arrive. */
export function uploadPercent(plan: ProgressPlan, bytes: number, total: number): number {
  const share = plan.stageWeights.length === 0 ? 100 : plan.uploadShare;
  return roundPercent(share * fraction(bytes, total));
}

/** Overall percent while stage `stageIndex` is `stageFraction` (0-1) done. */
export function processingPercent(plan: ProgressPlan, stageIndex: number, stageFraction: number): number {
  const weights = plan.stageWeights;
  if (weights.length === 0) return 100;
  const totalWeight = weights.reduce((sum, w) => sum + w, 0);
  let before = 0;
  for (let i = 0; i < stageIndex && i < weights.length; i++) before += weights[i] as number;
  const current = (weights[stageIndex] ?? 0) * Math.min(1, Math.max(0, stageFraction));
  const share = 100 - plan.uploadShare;
  const stagesFraction = totalWeight > 0 ? (before + current) / totalWeight : stageIndex >= weights.length ? 1 : 0;
  return roundPercent(plan.uploadShare + share * stagesFraction);
}

/**
 * Bytes per second over a sliding window of samples. Steadier than the rate of the last chunk
 * and cheap: a fixed ring of (time, bytes) pairs.
 */
export class RateMeter {
  private readonly times: number[] = [];
  private readonly values: number[] = [];

  constructor(private readonly windowMs = 3000, private readonly maxSamples = 64) {}

  /** Records that `value` (a running total) was reached at `now` (ms). */
  sample(now: number, value: number): void {
    this.times.push(now);
    this.values.push(value);
    while (this.times.length > this.maxSamples || (this.times.length > 2 && now - (this.times[0] as number) > this.windowMs)) {
      this.times.shift();
      this.values.shift();
    }
  }

  /** Units per second; 0 until two samples span some time. */
  rate(): number {
    const n = this.times.length;
    if (n < 2) return 0;
    const elapsed = (this.times[n - 1] as number) - (this.times[0] as number);
    if (elapsed <= 0) return 0;
    return Math.max(0, (((this.values[n - 1] as number) - (this.values[0] as number)) * 1000) / elapsed);
  }

  /** Seconds until `target` at the current rate, or null while the rate is unknown. */
  eta(current: number, target: number): number | null {
    if (current >= target) return 0;
    const rate = this.rate();
    return rate > 0 ? Math.round(((target - current) / rate) * 10) / 10 : null;
  }

  reset(): void {
    this.times.length = 0;
    this.values.length = 0;
  }
}
