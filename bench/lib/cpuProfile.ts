// Summarises a V8 .cpuprofile (node --cpu-prof; `npm run bench -- --cpu-prof-dir DIR` writes one
// per hub process) as text: where the samples went by kind (idle, GC, program, JS), the top
// functions by self and by total time, and self time by file or package.
//   tsx bench/lib/cpuProfile.ts FILE.cpuprofile [--top N]
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { formatTable } from './table.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds since the previous sample (the first: since startTime). */
  timeDeltas: number[];
}

/** V8's pseudo-frames: not JS, but where the thread was when sampled. */
const PSEUDO = new Set(['(idle)', '(garbage collector)', '(program)', '(root)']);

function functionLabel(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (PSEUDO.has(name) || frame.url === '') return name;
  return `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

function shortUrl(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + '/node_modules/'.length);
  const dist = path.indexOf('/dist/');
  if (dist >= 0) return path.slice(dist + '/dist/'.length);
  return path;
}

/** A file of ours, a package (`ws`, `zod`), node's internals by module, or a pseudo-frame. */
function fileLabel(frame: CallFrame): string {
  if (PSEUDO.has(frame.functionName) && frame.url === '') return frame.functionName;
  if (frame.url === '') return '(native)';
  if (frame.url.startsWith('node:')) return `node ${frame.url.slice(5).replace(/^internal\//, '').split('/')[0]}`;
  const path = shortUrl(frame.url);
  const modules = frame.url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const parts = path.split('/');
    return `package ${parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`;
  }
  return path;
}

interface Tally {
  self: Map<string, number>;
  total: Map<string, number>;
  byFile: Map<string, number>;
  totalUs: number;
}

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

function tally(profile: CpuProfile): Tally {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const result: Tally = { self: new Map(), total: new Map(), byFile: new Map(), totalUs: 0 };
  // A stack's labels, computed once per leaf node (samples repeat leaves a lot).
  const stacks = new Map<number, string[]>();
  const stackOf = (id: number): string[] => {
    let stack = stacks.get(id);
    if (stack === undefined) {
      const labels = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const node = byId.get(at);
        if (node && node.callFrame.functionName !== '(root)') labels.add(functionLabel(node.callFrame));
      }
      stack = [...labels]; // a recursive function counts once per sample
      stacks.set(id, stack);
    }
    return stack;
  };
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    // The delta after a sample is the time it stood for; the last one gets the previous delta.
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) continue;
    result.totalUs += us;
    add(result.self, functionLabel(node.callFrame), us);
    add(result.byFile, fileLabel(node.callFrame), us);
    for (const label of stackOf(id)) add(result.total, label, us);
  }
  return result;
}

function top(map: ReadonlyMap<string, number>, count: number, totalUs: number): string[][] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([label, us]) => [label, (us / 1000).toFixed(0), ((100 * us) / totalUs).toFixed(1)]);
}

/** The text summary of one profile. */
export function summarizeCpuProfile(profile: CpuProfile, count = 25): string {
  const { self, total, byFile, totalUs } = tally(profile);
  const pick = (name: string): number => self.get(name) ?? 0;
  const idle = pick('(idle)');
  const busy = totalUs - idle;
  const lines = [
    `profile: ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, ${profile.samples.length} samples; ` +
      `busy ${(busy / 1e6).toFixed(1)} s (${((100 * busy) / totalUs).toFixed(0)}%), idle ${(idle / 1e6).toFixed(1)} s, ` +
      `GC ${(pick('(garbage collector)') / 1e6).toFixed(1)} s, program ${(pick('(program)') / 1e6).toFixed(1)} s (V8/native outside JS)`,
    '',
    'self time by file or package (% of busy):',
    formatTable(['where', 'ms', '%'], top(byFile, count, busy).filter(([label]) => label !== '(idle)')),
    '',
    'top functions by self time (% of busy):',
    formatTable(['function', 'ms', '%'], top(self, count, busy).filter(([label]) => label !== '(idle)')),
    '',
    'top functions by total time, callees included (% of busy):',
    formatTable(['function', 'ms', '%'], top(total, count, busy).filter(([label]) => !PSEUDO.has(label ?? ''))),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
  const file = positionals[0];
  if (file === undefined) throw new Error('usage: tsx bench/lib/cpuProfile.ts FILE.cpuprofile [--top N]');
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  console.log(summarizeCpuProfile(profile, values.top === undefined ? undefined : Number(values.top)));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
