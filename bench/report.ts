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
}

export interface TargetCheck {
  line: string;
  passed: boolean;
}

type Figure = Exclude<keyof Result, 'latencyMs'>;

const figures: { key: Figure; label: string; digits: number }[] = [
  { key: 'mibPerSec', label: 'MiB/s', digits: 1 },
  { key: 'serverUserCpuSec', label: 'server user CPU s', digits: 2 },
  { key: 'serverSysCpuSec', label: 'server sys CPU s', digits: 2 },
  { key: 'peakRssMiB', label: 'peak RSS MiB', digits: 1 },
  { key: 'eventsPerSec', label: 'events/s delivered', digits: 0 },
];

const dash = '-';

function medianOf(results: readonly Result[] | undefined, key: Figure): number | undefined {
  if (results === undefined) return undefined;
  return median(results.flatMap((result) => (result[key] === undefined ? [] : [result[key]])));
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
  return checks;
}

export function formatCaseReport(runs: CaseRuns): string {
  const payload = medianOf(runs.baseline, 'payloadMiB');
  const header = `== ${runs.name}  (${runs.baseline.length} run(s)${payload === undefined ? '' : `, ${payload} MiB payload`}, medians)`;
  const row = (label: string, baseline: number | undefined, subject: number | undefined, digits: number): string[] =>
    [label, format(baseline, digits), format(subject, digits), format(ratio(subject, baseline), 2)];
  const rows = figures
    .map(({ key, label, digits }) => ({ label, digits, baseline: medianOf(runs.baseline, key), subject: medianOf(runs.subject, key) }))
    // A figure neither side measures (a latency-only case) is left out rather than shown as dashes.
    .filter((figure) => figure.baseline !== undefined || figure.subject !== undefined)
    .map((figure) => row(figure.label, figure.baseline, figure.subject, figure.digits));
  for (const name of latencyNames(runs)) rows.push(row(`${name} ms`, latencyMedian(runs.baseline, name), latencyMedian(runs.subject, name), 3));
  const lines = [header, formatTable(['figure', 'baseline', 'subject', 'subject/baseline'], rows)];
  if ([...runs.baseline, ...(runs.subject ?? [])].some((result) => result.mibPerSec !== undefined)) {
    lines.push(
      `MiB/s per run: baseline ${perRun(runs.baseline)}` +
        (runs.subject === undefined ? ' | no subject attached yet' : ` | subject ${perRun(runs.subject)}`),
    );
  }
  lines.push(...checkTargets(runs).map((check) => check.line));
  return lines.join('\n');
}
