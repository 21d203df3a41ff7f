/**
 * Harness for tests of several hub nodes on one Redis: a key prefix per test (deleted after
 * it), hub nodes in child processes (test/fixtures/cluster-node.ts) sharing one data directory,
 * a round-robin TCP balancer in front of them, and a TCP proxy to Redis that can cut the link.
 * Everything started here is stopped after the test through onCleanup (test/helpers.ts).
 *
 * @example
 * await requireRedis(ctx);
 * const cluster = await startCluster({ nodes: 3, env: { SLOW_STAGE_MS: '5000' } });
 * const client = startClient({ url: cluster.balancer.url });
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { splice, TcpBalancer as Balancer, type BalancerTarget } from '../bench/lib/clusterBalancer.js';
import type { TestContext } from 'vitest';
import { onCleanup, tempDir } from './helpers.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** Short leases, so a resume after a SIGKILL waits ~1.5 s for the dead holder's lease, not 5. */
export const TEST_LEASE_TTL_MS = 1500;
export const TEST_SHUTDOWN_TIMEOUT_MS = 5000;
/** How long a node may take to start (tsx compiles on the fly; the machine may be loaded). */
const NODE_START_MS = 30_000;
/** How much of a node's stdout and stderr is kept for a failure message. */
const NODE_OUTPUT_BYTES = 256 * 1024;
/** A stdout line longer than this is cut: the fixture's own lines are short. */
const MAX_LINE_BYTES = 64 * 1024;
/** Default bound of waitForLine. */
const LINE_WAIT_MS = 20_000;

/** The Redis the tests use: REDIS_URL, else the local default. */
export function redisUrl(): string {
  return process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** An ioredis client that fails fast instead of retrying forever: for the harness's own checks. */
function harnessRedis(url: string): Redis {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null, enableOfflineQueue: true });
  // A failed connect also rejects the command that needed it; the event must not crash the run.
  redis.on('error', () => {});
  return redis;
}

async function redisAnswers(url: string): Promise<string | undefined> {
  const redis = harnessRedis(url);
  try {
    await within(redis.connect(), 3000, `connect to ${url}`);
    await within(redis.ping(), 3000, `PING ${url}`);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    redis.disconnect();
  }
}

/**
 * Skips the calling test (with a message) when Redis does not answer at redisUrl(); under
 * CI=true fails it instead, since CI starts Redis (.ci/run) and these tests must run there.
 */
export async function requireRedis(ctx: Pick<TestContext, 'skip'>): Promise<void> {
  const url = redisUrl();
  const problem = await redisAnswers(url);
  if (problem === undefined) return;
  if (process.env.CI === 'true') throw new Error(`Redis does not answer at ${url} under CI: ${problem}`);
  const message = `Skipping: Redis does not answer at ${url} (${problem}); start one (redis-server) or set REDIS_URL`;
  console.warn(message);
  ctx.skip(message);
}

/** `*`, `?`, `[`, `]` and `\` in a prefix match literally in a SCAN pattern. */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

/** Deletes every key starting with `prefix` (SCAN MATCH + UNLINK, 500 at a time); returns how many. */
export async function cleanupPrefix(prefix: string, url = redisUrl()): Promise<number> {
  if (prefix === '') throw new Error('cleanupPrefix: an empty prefix would delete every key');
  const redis = harnessRedis(url);
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${globLiteral(prefix)}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/** A Redis key prefix of its own for this test, `uh-test-<random>:`; its keys are deleted after the test. */
export function testPrefix(url = redisUrl()): string {
  const prefix = `uh-test-${randomBytes(6).toString('hex')}:`;
  onCleanup(async () => {
    await cleanupPrefix(prefix, url);
  });
  return prefix;
}

/** Keys under `prefix` now (to check a test leaves its own keys and nothing else). */
export async function keysUnder(prefix: string, url = redisUrl()): Promise<string[]> {
  const redis = harnessRedis(url);
  const keys: string[] = [];
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${globLiteral(prefix)}*`, 'COUNT', 500);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return keys;
}

export interface NodeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A JSON line the fixture wrote on stdout (`{"listening":...}`, `{"stageAborted":...}`). */
export type NodeLine = Record<string, unknown>;

export interface ClusterNode {
  nodeId: string;
  /** http://127.0.0.1:port of the node itself (not through the balancer). */
  url: string;
  port: number;
  pid: number;
  /** Sends `signal` (default SIGKILL); resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<NodeExit>;
  exited: Promise<NodeExit>;
  /** The last 256 KiB the node wrote to stdout and stderr. */
  output(): string;
  /** The fixture's stdout lines so far (JSON only; pino logs go to stderr). */
  lines(): readonly NodeLine[];
  /** Calls `listener` with each stdout line from now on; returns the function that stops it. */
  onLine(listener: (line: NodeLine) => void): () => void;
  /** The first stdout line passing `test`, already written or yet to come; rejects after `timeoutMs` or when the node exits first. */
  waitForLine(test: (line: NodeLine) => boolean, timeoutMs?: number): Promise<NodeLine>;
}

export interface StartNodeOptions {
  nodeId: string;
  /** Shared by every node of a cluster. */
  dataDir: string;
  redisPrefix: string;
  /** Default redisUrl(); a startRedisProxy url to cut the node's link to Redis. */
  redisUrl?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Default TEST_LEASE_TTL_MS. */
  leaseTtlMs?: number;
  /** Default TEST_SHUTDOWN_TIMEOUT_MS. */
  shutdownTimeoutMs?: number;
  /** More environment: hub options (`PROGRESS_INTERVAL_MS`), SLOW_STAGE_MS, LOG_LEVEL (default info). */
  env?: Record<string, string>;
}

const REPO_ROOT = new URL('..', import.meta.url).pathname;
const NODE_FIXTURE = 'test/fixtures/cluster-node.ts';
/** The fixture's stdout lines kept for lines() and waitForLine(). */
const MAX_KEPT_LINES = 10_000;

/** One hub node in a child process; resolves once it says it listens. Killed (SIGKILL) after the test. */
export async function startNode(opts: StartNodeOptions): Promise<ClusterNode> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    REDIS_URL: opts.redisUrl ?? redisUrl(),
    REDIS_PREFIX: opts.redisPrefix,
    NODE_ID: opts.nodeId,
    DATA_DIR: opts.dataDir,
    PORT: String(opts.port ?? 0),
    LEASE_TTL_MS: String(opts.leaseTtlMs ?? TEST_LEASE_TTL_MS),
    SHUTDOWN_TIMEOUT_MS: String(opts.shutdownTimeoutMs ?? TEST_SHUTDOWN_TIMEOUT_MS),
    ...opts.env,
  };
  // stdin is a pipe the node watches: if this test process dies, the node goes too.
  const child = spawn(process.execPath, ['--import', 'tsx', NODE_FIXTURE], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  const exited = new Promise<NodeExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<NodeExit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  onCleanup(async () => {
    await kill('SIGKILL');
  });

  let output = '';
  const keep = (data: Buffer) => {
    output += data.toString();
    if (output.length > NODE_OUTPUT_BYTES) output = output.slice(-NODE_OUTPUT_BYTES);
  };
  child.stderr.on('data', keep);

  const lines: NodeLine[] = [];
  const lineEvents = new EventEmitter();
  let partial = '';
  child.stdout.on('data', (data: Buffer) => {
    keep(data);
    partial += data.toString();
    let end: number;
    while ((end = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, end);
      partial = partial.slice(end + 1);
      let line: NodeLine;
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) continue;
        line = parsed as NodeLine;
      } catch {
        continue;
      }
      lines.push(line);
      if (lines.length > MAX_KEPT_LINES) lines.shift();
      lineEvents.emit('line', line);
    }
    if (partial.length > MAX_LINE_BYTES) partial = partial.slice(-MAX_LINE_BYTES);
  });

  const waitForLine = (test: (line: NodeLine) => boolean, timeoutMs = LINE_WAIT_MS): Promise<NodeLine> => {
    const seen = lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    let off = () => {};
    const found = new Promise<NodeLine>((resolve, reject) => {
      const onLine = (line: NodeLine) => {
        if (test(line)) resolve(line);
      };
      lineEvents.on('line', onLine);
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => reject(new Error(`node ${opts.nodeId} exited (${signal ?? code}) before the awaited line`));
      child.once('exit', onExit);
      if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode);
      off = () => {
        lineEvents.off('line', onLine);
        child.off('exit', onExit);
      };
    });
    return within(found, timeoutMs, `node ${opts.nodeId}: awaited line`).catch((error: Error) => {
      throw new Error(`${error.message}\n--- output of ${opts.nodeId} ---\n${output.slice(-8192)}`);
    }).finally(off);
  };

  const listening = await waitForLine((line) => line.listening === true, NODE_START_MS);
  const port = listening.port;
  if (typeof port !== 'number' || typeof listening.url !== 'string') throw new Error(`node ${opts.nodeId} said it listens without url and port: ${JSON.stringify(listening)}`);
  if (child.pid === undefined) throw new Error(`node ${opts.nodeId} has no pid`);
  const onLine = (listener: (line: NodeLine) => void) => {
    lineEvents.on('line', listener);
    return () => {
      lineEvents.off('line', listener);
    };
  };
  return { nodeId: opts.nodeId, url: listening.url, port, pid: child.pid, kill, exited, output: () => output, lines: () => lines, onLine, waitForLine };
}

/**
 * The first stdout line passing `test` on any of `nodes` (already written or yet to come), with
 * the node that wrote it; rejects after `timeoutMs`.
 */
export async function firstLine(nodes: readonly ClusterNode[], test: (line: NodeLine) => boolean, timeoutMs = LINE_WAIT_MS): Promise<{ node: ClusterNode; line: NodeLine }> {
  const offs: Array<() => void> = [];
  try {
    return await within(new Promise<{ node: ClusterNode; line: NodeLine }>((resolve) => {
      for (const node of nodes) {
        const seen = node.lines().find(test);
        if (seen !== undefined) resolve({ node, line: seen });
        offs.push(node.onLine((line) => {
          if (test(line)) resolve({ node, line });
        }));
      }
    }), timeoutMs, `a line on one of ${nodes.map((node) => node.nodeId).join(', ')}`);
  } finally {
    for (const off of offs) off();
  }
}

export { TcpBalancer as Balancer, type BalancerTarget, type Route } from '../bench/lib/clusterBalancer.js';

/** Sockets a proxy holds, so that close() and a cut can destroy them all. */
class SocketSet {
  private readonly sockets = new Set<Socket>();

  add(socket: Socket): Socket {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }

  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}

async function listenLocal(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

function closeServer(server: Server, sockets: SocketSet): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    sockets.destroyAll();
  });
}

/** A round-robin TCP balancer in front of `targets` (bench/lib/clusterBalancer.ts); closed after the test. */
export async function startBalancer(targets: readonly BalancerTarget[]): Promise<Balancer> {
  const balancer = await Balancer.listen(targets);
  onCleanup(() => balancer.close());
  return balancer;
}

/**
 * A TCP proxy to Redis on 127.0.0.1:0 (start it with startRedisProxy), to cut nodes' link to
 * Redis without touching the shared server. Emits 'cut' and 'restored'.
 */
export class RedisProxy extends EventEmitter {
  /** The Redis URL through the proxy (the target's credentials and database). */
  readonly url: string;
  /** Connections destroyed on accept while cut. */
  refused = 0;
  private readonly sockets = new SocketSet();
  private cutTimer: ReturnType<typeof setTimeout> | undefined;
  private restored: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  private constructor(private readonly server: Server, readonly port: number, private readonly target: URL) {
    super();
    const url = new URL(target);
    url.hostname = '127.0.0.1';
    url.port = String(port);
    this.url = url.toString();
    server.on('connection', (client) => this.accept(client));
  }

  /** @internal use startRedisProxy */
  static async listen(targetUrl: string): Promise<RedisProxy> {
    const server = createServer();
    const port = await listenLocal(server);
    return new RedisProxy(server, port, new URL(targetUrl));
  }

  get isCut(): boolean {
    return this.cutTimer !== undefined;
  }

  /**
   * Cuts the link: destroys every open connection, and new ones on accept, for `ms`; then
   * accepts again. Resolves when the link is back.
   */
  cut(ms: number): Promise<void> {
    if (this.cutTimer !== undefined) throw new Error('redis proxy: already cut');
    const back = new Promise<void>((resolve) => (this.restored = resolve));
    this.cutTimer = setTimeout(() => {
      this.endCut();
      this.emit('restored');
    }, ms);
    this.sockets.destroyAll();
    this.emit('cut');
    return back;
  }

  close(): Promise<void> {
    this.closing ??= (() => {
      this.endCut();
      return closeServer(this.server, this.sockets);
    })();
    return this.closing;
  }

  private endCut(): void {
    clearTimeout(this.cutTimer);
    this.cutTimer = undefined;
    const restored = this.restored;
    this.restored = undefined;
    restored?.();
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.on('error', () => client.destroy());
    if (this.cutTimer !== undefined) {
      this.refused++;
      client.destroy();
      return;
    }
    const upstream = this.sockets.add(connect({ host: this.target.hostname, port: Number(this.target.port || 6379) }));
    splice(client, upstream);
  }
}

/** A cuttable TCP proxy to Redis (see RedisProxy); closed after the test. */
export async function startRedisProxy(targetUrl = redisUrl()): Promise<RedisProxy> {
  const proxy = await RedisProxy.listen(targetUrl);
  onCleanup(() => proxy.close());
  return proxy;
}

export interface Cluster {
  nodes: ClusterNode[];
  balancer: Balancer;
  /** The data directory every node shares. */
  dataDir: string;
  /** The Redis key prefix of this cluster (deleted after the test). */
  prefix: string;
  /** The Redis URL the nodes were given (a proxy's, when one was). */
  redisUrl: string;
  /** The node with this id. */
  node(nodeId: string): ClusterNode;
  close(): Promise<void>;
}

export interface StartClusterOptions {
  /** Default 3. Ids are n1, n2, n3... */
  nodes?: number;
  /** Environment of every node (hub options, SLOW_STAGE_MS, LOG_LEVEL). */
  env?: Record<string, string>;
  /** Default redisUrl(); a startRedisProxy url to cut the nodes' link to Redis. */
  redisUrl?: string;
  leaseTtlMs?: number;
  shutdownTimeoutMs?: number;
}

/** `nodes` hub nodes on one prefix and data directory, behind a balancer. Stopped after the test. */
export async function startCluster(opts: StartClusterOptions = {}): Promise<Cluster> {
  // The prefix first: cleanups run last-registered-first, so its keys go after the nodes are dead.
  const prefix = testPrefix();
  const dataDir = await tempDir('upload-hub-cluster-');
  const count = opts.nodes ?? 3;
  const url = opts.redisUrl ?? redisUrl();
  const nodes = await Promise.all(Array.from({ length: count }, (_unused, i) => startNode({
    nodeId: `n${i + 1}`,
    dataDir,
    redisPrefix: prefix,
    redisUrl: url,
    ...(opts.leaseTtlMs === undefined ? {} : { leaseTtlMs: opts.leaseTtlMs }),
    ...(opts.shutdownTimeoutMs === undefined ? {} : { shutdownTimeoutMs: opts.shutdownTimeoutMs }),
    ...(opts.env === undefined ? {} : { env: opts.env }),
  })));
  const balancer = await startBalancer(nodes);
  return {
    nodes,
    balancer,
    dataDir,
    prefix,
    redisUrl: url,
    node(nodeId) {
      const found = nodes.find((node) => node.nodeId === nodeId);
      if (found === undefined) throw new Error(`no node ${nodeId} in the cluster`);
      return found;
    },
    async close() {
      await balancer.close();
      await Promise.all(nodes.map((node) => node.kill('SIGKILL')));
    },
  };
}

/** What a test needs of an UploadClient to find its node: one round trip on its connection. */
interface Pingable {
  ping(): Promise<number>;
}

/**
 * Opens `client`'s connection through `balancer` (one ping) and returns the node it went to.
 * Call it for one client at a time: the route is the first the balancer records after the call.
 */
export async function connectThrough(balancer: Balancer, client: Pingable, timeoutMs = 10_000): Promise<string> {
  const before = balancer.routes.length;
  await within(client.ping(), timeoutMs, 'ping through the balancer');
  const route = balancer.routes[before];
  if (route === undefined) throw new Error('the ping was answered, but the balancer routed no connection');
  return route.nodeId;
}

/** What a test watches of an upload handle (UploadHandle from the client). */
interface ProgressSource {
  readonly progress: { bytes: number };
  readonly done: Promise<unknown>;
  on(name: 'progress', listener: (progress: { bytes: number }) => void): () => void;
}

/**
 * Resolves once `handle` reports at least `bytes` committed (in its progress events); rejects
 * when the upload ends first or after `timeoutMs`.
 */
export function committedAtLeast(handle: ProgressSource, bytes: number, timeoutMs = 20_000): Promise<number> {
  let off = () => {};
  const reached = new Promise<number>((resolve, reject) => {
    if (handle.progress.bytes >= bytes) {
      resolve(handle.progress.bytes);
      return;
    }
    off = handle.on('progress', (progress) => {
      if (progress.bytes >= bytes) resolve(progress.bytes);
    });
    handle.done.then(
      () => reject(new Error(`the upload ended before ${bytes} bytes were reported committed`)),
      (error: unknown) => reject(new Error(`the upload failed before ${bytes} bytes were reported committed: ${String(error)}`)),
    );
  });
  return within(reached, timeoutMs, `${bytes} bytes committed`).finally(() => off());
}

/** A JSON request to a node, bounded; returns the status and the parsed body. */
export async function requestJson(url: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, body };
}
