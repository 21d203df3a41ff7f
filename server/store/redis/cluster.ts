/**
 * Scale-out: what a hub node needs to share its uploads with other nodes through Redis. Loaded
 * (with ioredis and the Socket.IO adapter) only when `redisUrl` is set; one node never imports it.
 */
import { hostname } from 'node:os';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { HubOptions } from '../../config.js';
import { DiskStore } from '../DiskStore.js';
import { ClusterError } from './ClusterError.js';
import { RedisEventLog } from './RedisEventLog.js';
import { RedisRegistry } from './RedisRegistry.js';

/** How long a node waits for Redis at start-up before it refuses to start, in ms. */
const CONNECT_TIMEOUT_MS = 5_000;

export interface Cluster {
  nodeId: string;
  store: DiskStore;
  registry: RedisRegistry;
  events: RedisEventLog;
  /**
   * The Socket.IO adapter (@socket.io/redis-streams-adapter): it rides a Redis Stream, so a short
   * Redis disconnect loses no packet, and it supports connection-state recovery across nodes.
   */
  socketIoAdapter: ReturnType<typeof createAdapter>;
  /** Stops reading events and closes the connections the registry does not own (the hub closes the registry). */
  close(): Promise<void>;
  /** A start that failed before a hub took the registry: closes it too. */
  abandon(): Promise<void>;
}

export async function connectCluster(options: HubOptions, logger: Logger): Promise<Cluster> {
  const url = options.redisUrl as string;
  const nodeId = options.nodeId ?? `${hostname()}-${process.pid}`;
  let firstError: string | undefined;
  const connect = (role: string): Redis => {
    const client = new Redis(url, {
      lazyConnect: true,
      connectionName: `upload-hub:${nodeId}:${role}`,
      // Commands wait while Redis is unreachable (an upload pauses) instead of failing it;
      // callers that must answer a client time out on their own (RedisRegistry.timed).
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      retryStrategy: (attempt) => Math.min(50 * attempt, 500),
    });
    let reported = false;
    client.on('error', (error: Error) => {
      firstError ??= error.message;
      if (reported) return;
      reported = true;
      logger.warn({ node: nodeId, role, err: error.message }, 'Redis connection error; reconnecting');
    });
    client.on('ready', () => {
      if (reported) logger.info({ node: nodeId, role }, 'Redis connection back');
      reported = false;
    });
    return client;
  };
  const redis = connect('commands');
  const subscriber = connect('requests');
  const reader = connect('events');
  const adapterClient = connect('socket.io');
  const clients = [redis, subscriber, reader, adapterClient];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      Promise.all(clients.map((client) => client.connect())),
      new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS))),
    ]);
  } catch (error) {
    for (const client of clients) client.disconnect();
    throw new ClusterError(`REDIS_URL=${url}: cannot connect to Redis (${firstError ?? (error as Error).message})`);
  } finally {
    clearTimeout(timer);
  }
  const store = new DiskStore(options.dataDir, { shared: true, nodeId });
  // The shared directory's folders (and this node's own trash); no record is kept there.
  await store.init();
  const registry = new RedisRegistry({ redis, subscriber, prefix: options.redisPrefix, nodeId, leaseTtlMs: options.leaseTtlMs, logger });
  const events = new RedisEventLog(redis, reader, options.redisPrefix, options.eventHistorySize, logger);
  await events.open();
  const close = async (): Promise<void> => {
    await events.stop();
    adapterClient.disconnect();
  };
  return {
    nodeId,
    store,
    registry,
    events,
    // Its readers block at most a second, so a closing node is not held by a read in flight.
    socketIoAdapter: createAdapter(adapterClient, { streamName: `${options.redisPrefix}socket.io`, sessionKeyPrefix: `${options.redisPrefix}sio:session:`, blockTimeInMs: 1_000 }),
    close,
    async abandon() {
      await registry.close();
      await close();
    },
  };
}
