// Medians rather than means: on a shared, noisy 2-core box one slow run must not move the figure.
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** subject / baseline, or undefined when either side is missing or the baseline is zero. */
export function ratio(subject: number | undefined, baseline: number | undefined): number | undefined {
  if (subject === undefined || baseline === undefined || baseline === 0) return undefined;
  return subject / baseline;
}

/** The q-quantile (0-1) of sorted `values` by nearest rank: p99 of 200 samples is the 198th smallest. */
export function quantileOfSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error('quantile of nothing');
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** The q-quantile (0-1) by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  return quantileOfSorted([...values].sort((a, b) => a - b), q);
}
