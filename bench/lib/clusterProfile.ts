// Where the CPU goes in a cluster run, per kind of process (hub node, bench client): V8 CPU
// profiles (node --cpu-prof on the nodes, the inspector in the bench process) merged per kind and
// cut down to the top functions and files by self time. For every table of one profile, see
// `tsx bench/lib/cpuProfile.ts FILE`.
import { Session } from 'node:inspector/promises';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CpuProfile } from './cpuProfile.js';
import { formatTable } from './table.js';

const PSEUDO = new Set(['(idle)', '(garbage collector)', '(program)', '(root)']);

function shortUrl(url: string): string {
  const file = url.replace(/^file:\/\//, '');
  const modules = file.lastIndexOf('/node_modules/');
  if (modules >= 0) return file.slice(modules + '/node_modules/'.length);
  const dist = file.indexOf('/dist/');
  return dist >= 0 ? file.slice(dist + '/dist/'.length) : file;
}

interface Frame {
  functionName: string;
  url: string;
  lineNumber: number;
}

function functionLabel(frame: Frame): string {
  const name = frame.functionName || '(anonymous)';
  if (PSEUDO.has(name) || frame.url === '') return name;
  return `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

/** Ours by file, a package by name, node's internals by module, or a pseudo-frame. */
function fileLabel(frame: Frame): string {
  if (PSEUDO.has(frame.functionName) && frame.url === '') return frame.functionName;
  if (frame.url === '') return '(native)';
  if (frame.url.startsWith('node:')) return `node ${frame.url.slice(5).replace(/^internal\//, '').split('/')[0]}`;
  const file = shortUrl(frame.url);
  if (frame.url.includes('/node_modules/')) {
    const parts = file.split('/');
    return `package ${parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`;
  }
  return file;
}

interface SelfTime {
  byFunction: Map<string, number>;
  byFile: Map<string, number>;
  totalUs: number;
  idleUs: number;
  seconds: number;
}

/**
 * A span of the monotonic clock in µs, as V8 stamps profiles and process.hrtime reads it (the
 * same clock in every process of the machine): only samples inside it are counted.
 */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

/** Now on the clock of profile timestamps, in µs. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

function addSelfTime(into: SelfTime, profile: CpuProfile, window: ProfileWindow | undefined): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const from = Math.max(profile.startTime, window?.fromUs ?? Number.NEGATIVE_INFINITY);
  const to = Math.min(profile.endTime, window?.toUs ?? Number.POSITIVE_INFINITY);
  into.seconds += Math.max(0, to - from) / 1e6;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < from || at > to) return;
    // The delta after a sample is the time it stood for; the last one gets the previous delta.
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const frame = byId.get(id);
    if (frame === undefined) return;
    into.totalUs += us;
    if (frame.functionName === '(idle)') into.idleUs += us;
    const fn = functionLabel(frame);
    const file = fileLabel(frame);
    into.byFunction.set(fn, (into.byFunction.get(fn) ?? 0) + us);
    into.byFile.set(file, (into.byFile.get(file) ?? 0) + us);
  });
}

function topRows(map: ReadonlyMap<string, number>, count: number, busyUs: number): string[][] {
  return [...map]
    .filter(([label]) => label !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([label, us]) => [label, (us / 1000).toFixed(0), ((100 * us) / busyUs).toFixed(1)]);
}

/**
 * Self time of `profiles` (several processes of one kind) merged, within `window` if given (the
 * measured phase: start-up and shutdown left out): the top functions and files.
 */
export function summarizeSelfTime(kind: string, profiles: readonly CpuProfile[], count = 12, window?: ProfileWindow): string {
  const time: SelfTime = { byFunction: new Map(), byFile: new Map(), totalUs: 0, idleUs: 0, seconds: 0 };
  for (const profile of profiles) addSelfTime(time, profile, window);
  const busyUs = Math.max(1, time.totalUs - time.idleUs);
  const pseudo = (name: string): string => `${((time.byFunction.get(name) ?? 0) / 1e6).toFixed(1)} s`;
  return [
    `-- ${kind}: ${profiles.length} profile(s), ${time.seconds.toFixed(1)} s ${window === undefined ? 'profiled' : 'of measured phase'}; main thread busy ${(busyUs / 1e6).toFixed(1)} s ` +
      `(GC ${pseudo('(garbage collector)')}, program ${pseudo('(program)')} = V8/native outside JS; libuv's fs threads are not sampled)`,
    formatTable(['self time by file or package', 'ms', '% busy'], topRows(time.byFile, Math.ceil(count / 2), busyUs)),
    formatTable(['self time by function', 'ms', '% busy'], topRows(time.byFunction, count, busyUs)),
  ].join('\n');
}

/** Every .cpuprofile in `dir` (node --cpu-prof writes one per process as it exits). */
export async function readProfiles(dir: string): Promise<CpuProfile[]> {
  const names = (await readdir(dir).catch(() => [])).filter((name) => name.endsWith('.cpuprofile'));
  return Promise.all(names.map(async (name) => JSON.parse(await readFile(path.join(dir, name), 'utf8')) as CpuProfile));
}

/**
 * Profiles this process (the bench's clients, and the balancer when there is one) from now
 * until the returned function is called; that writes the profile to `file` and returns it.
 */
export async function profileThisProcess(file: string): Promise<() => Promise<CpuProfile>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    try {
      const { profile } = await session.post('Profiler.stop');
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, JSON.stringify(profile));
      return profile as unknown as CpuProfile;
    } finally {
      session.disconnect();
    }
  };
}
