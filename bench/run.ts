// Entry of `npm run bench`: runs every registered case (baseline and, when attached, subject)
// several times, interleaved, and prints medians, ratios and target checks.
//   tsx bench/run.ts [--runs N] [--only NAME]... [--size MiB] [--settle-ms MS] [--cpu-prof-dir DIR]
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import './cases.js';
import { registeredCases, type BenchCase, type BenchContext, type Result } from './registry.js';
import { checkTargets, formatCaseReport, type CaseRuns } from './report.js';

const defaults = {
  runs: 3,
  singleUploadMiB: 512,
  // Pause before every measured run. On this VM, pages freed by the previous run's deleted
  // upload are fast to reuse for about 2 s and then cost ~1 s of extra kernel time per 512 MiB
  // (likely free-page reporting to the host), which made back-to-back runs alternate between
  // ~450 and ~950 MiB/s. Waiting puts every run in the same (slower, steadier) state.
  settleMs: 3_000,
};

interface BenchOptions {
  runs: number;
  only: string[];
  settleMs: number;
  context: BenchContext;
}

function positiveInteger(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} needs a positive whole number, got ${text}`);
  return value;
}

function nonNegativeInteger(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${flag} needs a whole number >= 0, got ${text}`);
  return value;
}

function parseOptions(): BenchOptions {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      only: { type: 'string', multiple: true },
      size: { type: 'string' },
      'settle-ms': { type: 'string' },
      'cpu-prof-dir': { type: 'string' },
    },
  });
  return {
    runs: positiveInteger(values.runs, defaults.runs, '--runs'),
    only: values.only ?? [],
    settleMs: nonNegativeInteger(values['settle-ms'], defaults.settleMs, '--settle-ms'),
    context: {
      singleUploadMiB: positiveInteger(values.size, defaults.singleUploadMiB, '--size'),
      cpuProfileDir: values['cpu-prof-dir'] === undefined ? undefined : path.resolve(values['cpu-prof-dir']),
    },
  };
}

function selectCases(only: readonly string[]): BenchCase[] {
  const all = registeredCases();
  if (only.length === 0) return all;
  const unknown = only.filter((name) => !all.some((benchCase) => benchCase.name === name));
  if (unknown.length > 0) throw new Error(`unknown case ${unknown.join(', ')}; known: ${all.map((c) => c.name).join(', ')}`);
  return all.filter((benchCase) => only.includes(benchCase.name));
}

async function runCase(benchCase: BenchCase, options: BenchOptions): Promise<CaseRuns> {
  const runs: CaseRuns = {
    name: benchCase.name,
    baseline: [],
    subject: benchCase.subject === undefined ? undefined : [],
    targets: benchCase.targets,
    notes: benchCase.notes,
  };
  for (let run = 0; run < options.runs; run += 1) {
    const sides: { measure: BenchCase['baseline']; results: Result[] }[] = [
      { measure: benchCase.baseline, results: runs.baseline },
    ];
    if (benchCase.subject !== undefined && runs.subject !== undefined) {
      sides.push({ measure: benchCase.subject, results: runs.subject });
    }
    // Alternate who goes first so page-cache writeback or machine noise left by one side
    // doesn't always land on the other.
    if (run % 2 === 1) sides.reverse();
    for (const side of sides) {
      await sleep(options.settleMs);
      side.results.push(await side.measure(options.context));
    }
    process.stderr.write(`  ${benchCase.name}: run ${run + 1}/${options.runs} done\n`);
  }
  return runs;
}

async function main(): Promise<void> {
  const options = parseOptions();
  const cases = selectCases(options.only);
  let failed = false;
  for (const benchCase of cases) {
    try {
      const runs = await runCase(benchCase, options);
      console.log(`\n${formatCaseReport(runs)}`);
      if (checkTargets(runs).some((check) => !check.passed)) failed = true;
    } catch (error) {
      failed = true;
      console.error(`\n== ${benchCase.name} FAILED:`, error);
    }
  }
  // A missed target or a broken case fails the command, so scripts can rely on the exit code.
  if (failed) process.exitCode = 1;
}

await main();
