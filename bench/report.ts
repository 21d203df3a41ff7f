// Turns the runs of one case into the printed summary: medians, ratios and target checks.
import type { Result } from './lib/result.js';
import { median, ratio } from './lib/stats.js';
import { formatTable } from './lib/table.js';
import type { Targets } from './registry.js';

export interface CaseRuns {
  name: string;
  baseline: Result[];
  /** Undefined when the case has no subject yet. */
  subject?: Result[] | undefined;
  targets?: Targets | undefined;
  notes?: readonly string[] | undefined;
}

export interface TargetCheck {
  line: string;
  passed: boolean;
}

type Figure = Exclude<keyof Result, 'latencyMs' | 'counts'>;

/** A figure's value in one run; some are derived from others. */
type Read = (result: Result) => number | undefined;

const serverCpuSec: Read = (result) =>
  result.serverUserCpuSec === undefined || result.serverSysCpuSec === undefined ? undefined : result.serverUserCpuSec + result.serverSysCpuSec;

const figures: { read: Read; label: string; digits: number }[] = [
  { read: (result) => result.mibPerSec, label: 'MiB/s', digits: 1 },
  { read: (result) => result.serverUserCpuSec, label: 'server user CPU s', digits: 2 },
  { read: (result) => result.serverSysCpuSec, label: 'server sys CPU s', digits: 2 },
  { read: serverCpuSec, label: 'server CPU s (user+sys)', digits: 2 },
  { read: (result) => result.peakRssMiB, label: 'peak RSS MiB', digits: 1 },
  { read: (result) => result.clientCpuSec, label: 'client CPU s (user+sys)', digits: 2 },
  { read: (result) => result.eventsPerSec, label: 'events/s delivered', digits: 0 },
];

const dash = '-';

function medianOf(results: readonly Result[] | undefined, key: Figure | Read): number | undefined {
  if (results === undefined) return undefined;
  const read: Read = typeof key === 'function' ? key : (result) => result[key];
  return median(results.flatMap((result) => {
    const value = read(result);
    return value === undefined ? [] : [value];
  }));
}

/** Counts are errors and losses: one bad run must show, so the worst run is reported, not the median. */
function worstCount(results: readonly Result[] | undefined, name: string): number | undefined {
  const values = (results ?? []).flatMap((result) => (result.counts?.[name] === undefined ? [] : [result.counts[name]]));
  return values.length === 0 ? undefined : Math.max(...values);
}

function countNames(runs: CaseRuns): string[] {
  const names = new Set<string>();
  for (const result of [...runs.baseline, ...(runs.subject ?? [])]) for (const name of Object.keys(result.counts ?? {})) names.add(name);
  return [...names];
}

function latencyMedian(results: readonly Result[] | undefined, name: string): number | undefined {
  if (results === undefined) return undefined;
  return median(results.flatMap((result) => (result.latencyMs?.[name] === undefined ? [] : [result.latencyMs[name]])));
}

/** Latency names in first-seen order, baseline first. */
function latencyNames(runs: CaseRuns): string[] {
  const names = new Set<string>();
  for (const result of [...runs.baseline, ...(runs.subject ?? [])]) for (const name of Object.keys(result.latencyMs ?? {})) names.add(name);
  return [...names];
}

function format(value: number | undefined, digits: number): string {
  return value === undefined ? dash : value.toFixed(digits);
}

function perRun(results: readonly Result[]): string {
  return results.map((result) => format(result.mibPerSec, 0)).join(', ');
}

export function checkTargets(runs: CaseRuns): TargetCheck[] {
  const targets = runs.targets;
  if (targets === undefined) return [];
  const checks: TargetCheck[] = [];
  const check = (label: string, value: number | undefined, limit: number, atLeast: boolean): void => {
    const passed = value !== undefined && (atLeast ? value >= limit : value <= limit);
    const verdict = value === undefined ? 'NO DATA' : passed ? 'PASS' : 'FAIL';
    checks.push({ line: `target ${label} ${atLeast ? '>=' : '<='} ${limit}: ${format(value, 2)} ${verdict}`, passed });
  };
  const subjectMedian = (key: Figure): number | undefined => medianOf(runs.subject, key);
  const baselineMedian = (key: Figure): number | undefined => medianOf(runs.baseline, key);
  if (targets.mibPerSecRatioMin !== undefined) {
    check('MiB/s ratio', ratio(subjectMedian('mibPerSec'), baselineMedian('mibPerSec')), targets.mibPerSecRatioMin, true);
  }
  if (targets.cpuRatioMax !== undefined) {
    check('user CPU ratio', ratio(subjectMedian('serverUserCpuSec'), baselineMedian('serverUserCpuSec')), targets.cpuRatioMax, false);
  }
  if (targets.peakRssMiBMax !== undefined) {
    check('peak RSS MiB', subjectMedian('peakRssMiB'), targets.peakRssMiBMax, false);
  }
  for (const [name, max] of Object.entries(targets.latencyRatioMax ?? {})) {
    check(`${name} ratio`, ratio(latencyMedian(runs.subject, name), latencyMedian(runs.baseline, name)), max, false);
  }
  for (const [name, max] of Object.entries(targets.countMax ?? {})) {
    check(`${name} (worst run)`, worstCount(runs.subject, name), max, false);
  }
  return checks;
}

export function formatCaseReport(runs: CaseRuns): string {
  const payload = medianOf(runs.baseline, 'payloadMiB');
  const header = `== ${runs.name}  (${runs.baseline.length} run(s)${payload === undefined ? '' : `, ${payload} MiB payload`}, medians)`;
  const row = (label: string, baseline: number | undefined, subject: number | undefined, digits: number): string[] =>
    [label, format(baseline, digits), format(subject, digits), format(ratio(subject, baseline), 2)];
  const rows = figures
    .map(({ read, label, digits }) => ({ label, digits, baseline: medianOf(runs.baseline, read), subject: medianOf(runs.subject, read) }))
    // A figure neither side measures (a latency-only case) is left out rather than shown as dashes.
    .filter((figure) => figure.baseline !== undefined || figure.subject !== undefined)
    .map((figure) => row(figure.label, figure.baseline, figure.subject, figure.digits));
  for (const name of latencyNames(runs)) rows.push(row(`${name} ms`, latencyMedian(runs.baseline, name), latencyMedian(runs.subject, name), 3));
  // A ratio of counts means nothing (0 errors against 0): only the numbers.
  for (const name of countNames(runs)) rows.push([`${name} (worst run)`, format(worstCount(runs.baseline, name), 0), format(worstCount(runs.subject, name), 0), dash]);
  const lines = [header, formatTable(['figure', 'baseline', 'subject', 'subject/baseline'], rows)];
  if ([...runs.baseline, ...(runs.subject ?? [])].some((result) => result.mibPerSec !== undefined)) {
    lines.push(
      `MiB/s per run: baseline ${perRun(runs.baseline)}` +
        (runs.subject === undefined ? ' | no subject attached yet' : ` | subject ${perRun(runs.subject)}`),
    );
  }
  lines.push(...(runs.notes ?? []).map((note) => `note: ${note}`));
  lines.push(...checkTargets(runs).map((check) => check.line));
  return lines.join('\n');
}
