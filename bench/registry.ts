// The list of benchmark cases. cases.ts registers the baselines; hub files attach subjects:
//
//   import { caseNames } from './caseNames.js';
//   import { measureServer } from './lib/measure.js';
//   import { attachSubject } from './registry.js';
//   attachSubject(caseNames.wsSingle, {
//     subject: ({ singleUploadMiB }) => measureServer({ file: 'server/main.ts' }, (port, startMeasuring) => ...),
//     targets: { mibPerSecRatioMin: 0.85, cpuRatioMax: 2, peakRssMiBMax: 120 },
//   });
//
// Registration order does not matter: subjects attached before their baseline is registered
// are merged in when the cases are read, so ESM import order can't break anything.
import type { Result } from './lib/result.js';

export type { Result, Transfer } from './lib/result.js';

/** Settings from the command line that cases may honour. */
export interface BenchContext {
  /** Size of the single-upload cases (--size), in MiB. */
  singleUploadMiB: number;
  /**
   * Where cases that support it write a V8 CPU profile of the server (--cpu-prof-dir), one
   * .cpuprofile per server process; summarise one with `tsx bench/lib/cpuProfile.ts FILE`.
   */
  cpuProfileDir?: string | undefined;
}

/** Pass/fail thresholds; each one given is checked against the medians. */
export interface Targets {
  /** subject MiB/s / baseline MiB/s must be at least this. */
  mibPerSecRatioMin?: number;
  /** subject server user CPU / baseline server user CPU must be at most this. */
  cpuRatioMax?: number;
  /** subject peak RSS (absolute, MiB) must be at most this. */
  peakRssMiBMax?: number;
  /** Per latencyMs name: subject / baseline must be at most this. */
  latencyRatioMax?: Record<string, number>;
  /** Per counts name: the subject's worst run must be at most this (0 for errors). */
  countMax?: Record<string, number>;
}

/** One measured run. Called once per run, so it should start (and stop) its own server. */
export type Measurement = (context: BenchContext) => Promise<Result>;

export interface BenchCase {
  name: string;
  baseline: Measurement;
  subject?: Measurement | undefined;
  targets?: Targets | undefined;
  /** Printed under the case's table: how it is set up, what the figures mean. */
  notes?: readonly string[] | undefined;
}

export interface SubjectAttachment {
  subject: Measurement;
  targets?: Targets | undefined;
}

const cases = new Map<string, BenchCase>();
const attachments = new Map<string, SubjectAttachment>();

export function registerCase(benchCase: BenchCase): void {
  if (cases.has(benchCase.name)) throw new Error(`bench case ${benchCase.name} registered twice`);
  cases.set(benchCase.name, benchCase);
}

/** Attaches the thing under test (and its targets) to the baseline case called `name`. */
export function attachSubject(name: string, attachment: SubjectAttachment): void {
  if (attachments.has(name)) throw new Error(`bench case ${name} already has a subject`);
  attachments.set(name, attachment);
}

/** All cases in registration order, with attached subjects merged in. */
export function registeredCases(): BenchCase[] {
  for (const name of attachments.keys()) {
    if (!cases.has(name)) throw new Error(`subject attached to unknown bench case ${name}; known: ${[...cases.keys()].join(', ')}`);
  }
  return [...cases.values()].map((benchCase) => {
    const attachment = attachments.get(benchCase.name);
    if (attachment === undefined) return benchCase;
    return { ...benchCase, subject: attachment.subject, targets: attachment.targets ?? benchCase.targets };
  });
}
