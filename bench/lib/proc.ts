// Child-process plumbing for benchmarks: start a server, learn its port,
// sample its CPU and peak memory from /proc, and always take it down again.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface SpawnServerOptions {
  /** Entry file: a .ts file runs as `node --import tsx <file> [...args]`, a .js file as plain `node <file>`. */
  file: string;
  args?: string[];
  /** Extra environment; merged over process.env. */
  env?: Record<string, string>;
  /** Working directory; tsx must be resolvable from here. Defaults to the repo root. */
  cwd?: string;
  /** How long to wait for the `{"port":N}` line before giving up. */
  readyTimeoutMs?: number;
  /** Flags for node itself, before the entry file (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /**
   * Open files (sockets) the server needs: its soft RLIMIT_NOFILE is raised to this, or as far
   * as the hard limit allows, before node starts (node cannot raise its own). Check the result
   * with openFilesLimit(pid).
   */
  openFiles?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 5 s. */
  stopTimeoutMs?: number;
}

const spawnDefaults = {
  args: [] as string[],
  env: {} as Record<string, string>,
  cwd: fileURLToPath(new URL('../..', import.meta.url)),
  readyTimeoutMs: 20_000,
  nodeArgs: [] as string[],
  stopTimeoutMs: 5_000,
};

export interface RunningServer {
  pid: number;
  port: number;
  /** Temp dir the server announced (if any); removed again by stop() as a fallback. */
  tempDir?: string | undefined;
  /** Sends SIGTERM, escalates to SIGKILL, resolves once the process has exited. */
  stop: () => Promise<void>;
}

export interface CpuSnapshot {
  userSec: number;
  sysSec: number;
}

/** Children still alive (with their announced temp dir), so an abrupt exit leaves nothing behind. */
const liveChildren = new Map<ChildProcess, string | undefined>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is the only thing we can still do there.
  process.on('exit', () => {
    for (const [child, tempDir] of liveChildren) {
      child.kill('SIGKILL');
      if (tempDir !== undefined && isBenchTempDir(tempDir)) rmSync(tempDir, { recursive: true, force: true });
    }
  });
  // Turning a signal into process.exit() runs the 'exit' hook above.
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
}

interface ReadyLine {
  port: number;
  tempDir?: string | undefined;
}

/** Accepts `{"port":N}` and also pino lines such as `{"level":30,"msg":"listening","port":N}`. */
function parseReadyLine(line: string): ReadyLine | undefined {
  if (!line.startsWith('{')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const record = parsed as Record<string, unknown>;
  if (typeof record.port !== 'number') return undefined;
  return {
    port: record.port,
    tempDir: typeof record.tempDir === 'string' ? record.tempDir : undefined,
  };
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Only ever delete what is plainly a bench temp dir, whatever a child printed. */
function isBenchTempDir(dir: string): boolean {
  const resolved = path.resolve(dir);
  return path.dirname(resolved) === path.resolve(tmpdir()) && path.basename(resolved).startsWith('bench-');
}

async function removeAnnouncedTempDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined && isBenchTempDir(dir)) await rm(dir, { recursive: true, force: true });
}

async function stopChild(child: ChildProcess, tempDir: string | undefined, timeoutMs = spawnDefaults.stopTimeoutMs): Promise<void> {
  const exited = waitForExit(child);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    // A server that ignores SIGTERM (or hangs cleaning up) must not stall the bench.
    const escalation = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(escalation);
  }
  liveChildren.delete(child);
  await removeAnnouncedTempDir(tempDir);
}

/** The soft and hard limit on open files of a process (`self` for this one), from /proc. */
export async function openFilesLimit(pid: number | 'self'): Promise<{ soft: number; hard: number }> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8');
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (match === null) throw new Error(`no "Max open files" in /proc/${pid}/limits`);
  const read = (value: string | undefined): number => (value === 'unlimited' ? Number.POSITIVE_INFINITY : Number(value));
  return { soft: read(match[1]), hard: read(match[2]) };
}

/**
 * The command that starts node: node itself, or, when the server needs more open files than our
 * soft limit (which it would inherit), a shell that raises it first and then execs node, so the
 * pid stays node's. The shell goes as far as the hard limit when `wanted` is above it.
 */
async function nodeCommand(argv: string[], openFiles: number | undefined): Promise<{ command: string; args: string[] }> {
  if (openFiles === undefined || (await openFilesLimit('self')).soft >= openFiles) return { command: process.execPath, args: argv };
  const script = `ulimit -n ${openFiles} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  return { command: '/bin/sh', args: ['-c', script, 'sh', process.execPath, ...argv] };
}

export async function spawnServer(options: SpawnServerOptions): Promise<RunningServer> {
  const opts = { ...spawnDefaults, ...options };
  installExitHooks();
  const loader = opts.file.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const { command, args } = await nodeCommand([...opts.nodeArgs, ...loader, opts.file, ...opts.args], opts.openFiles);
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    // stderr goes straight to ours so crashes are visible; stdout is parsed.
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  liveChildren.set(child, undefined);

  const stdout = child.stdout;
  if (stdout === null || child.pid === undefined) {
    await stopChild(child, undefined, opts.stopTimeoutMs);
    throw new Error(`could not spawn ${opts.file}`);
  }
  const pid = child.pid;

  try {
    const ready = await new Promise<ReadyLine>((resolve, reject) => {
      const lines = createInterface({ input: stdout });
      // Keep reading stdout for the child's whole life: a full pipe would block a logging server.
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new Error(`${opts.file}: no {"port":N} line within ${opts.readyTimeoutMs} ms`));
      }, opts.readyTimeoutMs);
      lines.on('line', (line) => {
        if (settled) return;
        const parsed = parseReadyLine(line);
        if (parsed === undefined) return;
        settled = true;
        clearTimeout(timer);
        resolve(parsed);
      });
      child.once('exit', (code, signal) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new Error(`${opts.file} exited (code ${code}, signal ${signal}) before reporting a port`));
      });
      child.once('error', (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      });
    });
    liveChildren.set(child, ready.tempDir);
    return {
      pid,
      port: ready.port,
      tempDir: ready.tempDir,
      stop: () => stopChild(child, ready.tempDir, opts.stopTimeoutMs),
    };
  } catch (error) {
    await stopChild(child, undefined, opts.stopTimeoutMs);
    throw error;
  }
}

let cachedClockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (almost always 100). */
export function clockTicksPerSecond(): number {
  if (cachedClockTicks === undefined) {
    const printed = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    cachedClockTicks = Number.isFinite(printed) && printed > 0 ? printed : 100;
  }
  return cachedClockTicks;
}

/** CPU used so far by all threads of the process (libuv's fs pool included). */
export async function readCpu(pid: number): Promise<CpuSnapshot> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces, so count fields after its closing ')'.
  const fieldsFromState = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Field 3 (state) is index 0 here, so utime (field 14) is 11 and stime (field 15) is 12.
  const utimeTicks = Number(fieldsFromState[11]);
  const stimeTicks = Number(fieldsFromState[12]);
  const ticks = clockTicksPerSecond();
  return { userSec: utimeTicks / ticks, sysSec: stimeTicks / ticks };
}

export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuSnapshot {
  return { userSec: after.userSec - before.userSec, sysSec: after.sysSec - before.sysSec };
}

/** Peak resident set size (VmHWM) over the process's life so far, in MiB. */
export async function readPeakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}
