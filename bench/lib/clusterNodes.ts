// Hub nodes for the cluster cases: `node dist/server/main.js serve --no-processing` in child
// processes (the build `npm run bench` makes first), on one shared data directory, each with its
// own port; with Redis (a cluster node) or without (the embedded single-node default).
//
// The hub's options are taken out of the inherited environment first: REDIS_URL set for the
// bench must not turn the embedded baseline into a cluster node, nor a stray PORT move one.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { OPTION_SPELLINGS } from '../../server/config.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = 'dist/server/main.js';
/** Start-up from dist/ takes ~1 s; far more on a loaded 2-core machine with three starting at once. */
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface NodeRedis {
  url: string;
  prefix: string;
  /** LEASE_TTL_MS; unset leaves the hub's default (5000 ms). */
  leaseTtlMs?: number | undefined;
}

export interface HubNodeOptions {
  nodeId: string;
  /** Shared by every node of a cluster. */
  dataDir: string;
  /** Unset: the embedded single node, nothing of Redis loaded. */
  redis?: NodeRedis | undefined;
  /** Flags for node itself (`--cpu-prof`...). */
  nodeArgs?: readonly string[] | undefined;
  /** More hub options as environment variables. */
  env?: Record<string, string> | undefined;
}

export interface NodeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HubNode {
  nodeId: string;
  pid: number;
  port: number;
  /** http://127.0.0.1:port of this node. */
  url: string;
  exited: Promise<NodeExit>;
  /** SIGKILL at once; resolves when the process is gone. */
  kill(): Promise<NodeExit>;
  /** SIGTERM (the node drains, and writes its CPU profile if asked), SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<NodeExit>;
}

/**
 * Every limit on one client address or principal off: the bench's clients are one anonymous
 * principal on 127.0.0.1, which in the field would be many.
 */
export const UNLIMITED_CLIENTS: Readonly<Record<string, string>> = {
  MAX_CONNECTIONS_PER_IP: '0',
  MAX_OPEN_UPLOADS_PER_PRINCIPAL: '0',
  CREATES_PER_MINUTE_PER_PRINCIPAL: '0',
};

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A bench that dies (an error, Ctrl-C) must leave no node behind: 'exit' can still SIGKILL. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

function nodeEnvironment(options: HubNodeOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const spelling of OPTION_SPELLINGS) delete env[spelling.env];
  env.LOG_LEVEL = 'info'; // the `listening` line is an info line
  if (options.redis !== undefined) {
    env.REDIS_URL = options.redis.url;
    env.REDIS_PREFIX = options.redis.prefix;
    env.NODE_ID = options.nodeId;
    if (options.redis.leaseTtlMs !== undefined) env.LEASE_TTL_MS = String(options.redis.leaseTtlMs);
  }
  return { ...env, ...options.env };
}

/** The port of serve's `listening` log line (pino JSON on stdout). */
function listeningPort(line: string): number | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed = JSON.parse(line) as { port?: unknown; msg?: unknown };
    return typeof parsed.port === 'number' && typeof parsed.msg === 'string' && parsed.msg.startsWith('listening') ? parsed.port : undefined;
  } catch {
    return undefined;
  }
}

/** One hub node; resolves once it listens. */
export async function startHubNode(options: HubNodeOptions): Promise<HubNode> {
  installExitHook();
  const args = [...(options.nodeArgs ?? []), ENTRY, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', options.dataDir, '--no-processing'];
  // stdout is read for the whole life of the node: a full pipe would block its logging.
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: nodeEnvironment(options), stdio: ['ignore', 'pipe', 'inherit'] });
  live.add(child);
  const exited = new Promise<NodeExit>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const kill = async (): Promise<NodeExit> => {
    if (!gone()) child.kill('SIGKILL');
    return exited;
  };
  const stop = async (timeoutMs = STOP_TIMEOUT_MS): Promise<NodeExit> => {
    if (!gone()) child.kill('SIGTERM');
    const escalation = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(escalation);
    }
  };
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const timer = setTimeout(() => settle(() => reject(new Error(`node ${options.nodeId}: not listening within ${READY_TIMEOUT_MS} ms`))), READY_TIMEOUT_MS);
    lines.on('line', (line) => {
      if (settled) return;
      const found = listeningPort(line);
      if (found !== undefined) settle(() => resolve(found));
    });
    child.once('error', (error) => settle(() => reject(error)));
    void exited.then((exit) => settle(() => reject(new Error(`node ${options.nodeId} exited (${exit.signal ?? exit.code}) before it listened`))));
  }).catch(async (error: unknown) => {
    await kill();
    throw error;
  });
  return { nodeId: options.nodeId, pid: child.pid as number, port, url: `http://127.0.0.1:${port}`, exited, kill, stop };
}
