// Redis for the cluster cases: the server at REDIS_URL (default redis://127.0.0.1:6379), a key
// prefix per measured run (`uh-bench-<random>:`, deleted after it), and the server's own CPU clock.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** How long one of our own Redis commands may take before the case fails, in ms. */
const COMMAND_TIMEOUT_MS = 5_000;
const SCAN_BATCH = 500;

export function benchRedisUrl(): string {
  return process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
}

/** A prefix of its own for one measured run; no other client writes under it. */
export function benchPrefix(): string {
  return `uh-bench-${randomBytes(6).toString('hex')}:`;
}

/** A client that fails fast instead of retrying forever: the bench's own checks, not the hub's. */
function benchRedis(url: string): Redis {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: COMMAND_TIMEOUT_MS, maxRetriesPerRequest: 1, retryStrategy: () => null });
  // A failed connect rejects the command that needed it; the event itself must not crash the bench.
  redis.on('error', () => undefined);
  return redis;
}

/**
 * How long the lease of upload `id` under `prefix` has left, in ms (PTTL of `<prefix>lease:<id>`,
 * the key RedisRegistry keeps it in); undefined when there is none. One connection per call: it
 * is read once per kill, before the kill.
 */
export async function leaseRemainingMs(prefix: string, id: string, url = benchRedisUrl()): Promise<number | undefined> {
  const ttl = await withRedis(url, (redis) => redis.pttl(`${prefix}lease:${id}`));
  return ttl >= 0 ? ttl : undefined;
}

/** How long the node's liveness key (`node:<id>`) has to live, in ms; undefined when it is gone. */
export async function aliveRemainingMs(prefix: string, nodeId: string, url = benchRedisUrl()): Promise<number | undefined> {
  const ttl = await withRedis(url, (redis) => redis.pttl(`${prefix}node:${nodeId}`));
  return ttl >= 0 ? ttl : undefined;
}

async function withRedis<T>(url: string, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = benchRedis(url);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis at ${url} did not answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
    });
    return await Promise.race([redis.connect().then(() => work(redis)), timeout]);
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/** Fails with a message saying what to start when Redis does not answer. */
export async function assertRedis(url = benchRedisUrl()): Promise<void> {
  try {
    await withRedis(url, (redis) => redis.ping());
  } catch (error) {
    throw new Error(`the cluster cases need Redis at ${url} (set REDIS_URL, or start redis-server): ${(error as Error).message}`);
  }
}

/** `*`, `?`, `[`, `]` and `\` in a prefix match literally in a SCAN pattern. */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

/** Deletes every key under `prefix` (SCAN MATCH + UNLINK); returns how many. */
export async function deletePrefix(prefix: string, url = benchRedisUrl()): Promise<number> {
  if (!prefix.startsWith('uh-bench-')) throw new Error(`deletePrefix: ${JSON.stringify(prefix)} is not a bench prefix`);
  return withRedis(url, async (redis) => {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${globLiteral(prefix)}*`, 'COUNT', SCAN_BATCH);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  });
}

/**
 * The Redis server's CPU so far (user + sys, all its threads), from INFO: it works for a Redis on
 * another host too. It is the whole server's: other clients of the same Redis count as well.
 */
export async function redisCpuSeconds(url = benchRedisUrl()): Promise<number> {
  const info = await withRedis(url, (redis) => redis.info('cpu'));
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  const seconds = field('used_cpu_user') + field('used_cpu_sys');
  if (!Number.isFinite(seconds)) throw new Error(`no used_cpu_user/used_cpu_sys in Redis INFO cpu: ${info.slice(0, 200)}`);
  return seconds;
}
