/**
 * The registry of a hub cluster, in Redis. Per upload: a hash `u:<id>` (the record as JSON `r`,
 * its owner `o` and state `s` for cheap filtering, the committed offset `c`, the bar's percent
 * `p`, the last update `t`, and `f`, the latest fencing token granted), and a lease `lease:<id>`
 * (`<node> <fence>`, expiring). Cluster-wide: `idx` (every upload by createdAt, for paging),
 * `active` (unfinished ones), `ended` (finished ones by last update, for retention), `states`
 * (counts by state), `open:<owner>` (each principal's unfinished uploads, for
 * maxOpenUploadsPerPrincipal), `node:<id>` (each live node, refreshed every 500 ms) and the
 * `ctl` channel for requests between nodes. Every key starts with the
 * cluster's prefix.
 *
 * A write carries its lease's fencing token and lands only while the token is the latest one
 * granted (one Lua script each, so the check and the write are one step): a node paused past
 * its lease, or cut off by a partition, can never overwrite its successor.
 *
 * While Redis is unreachable, writes wait in the client's queue (uploads pause: their acks wait
 * for the commit) and requests that a caller waits on fail after a short while with
 * ERR_UNAVAILABLE; everything resumes when Redis is back.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { UploadHubError } from '../../../shared/errors.js';
import { isTerminalState, UPLOAD_ID_PATTERN, UPLOAD_STATES, type UploadState } from '../../../shared/messages.js';
import { compareListPosition as comparePosition } from '../../core/LocalRegistry.js';
import type { Acquired, Lease, NodeRequest, RegistryQuery, StoredUpload, UploadRegistry } from '../../core/Registry.js';
import type { UploadRecord } from '../UploadStore.js';

/** How long a caller waits on Redis before hearing ERR_UNAVAILABLE, in ms. */
const REQUEST_TIMEOUT_MS = 2_000;
/** How often a node pings Redis, and how long without an answer makes it unavailable, in ms. */
const PING_EVERY_MS = 500;
const UNANSWERED_MS = 1_500;
/**
 * How long a node's liveness key outlives its last refresh, in ms (at most its lease TTL): past
 * it the node counts as dead and its leases are taken without waiting for them to expire.
 */
const NODE_ALIVE_MS = 2_000;
/** Ids read per round trip while paging through the index. */
const PAGE_BATCH = 500;

const SCRIPTS = {
  /**
   * KEYS lease, rec; ARGV node, ttl, node-key prefix -> {1, fence} | {0, holder} | {-1, ''} (no
   * such upload). A lease whose holder's liveness key is gone (the node died: it refreshes the
   * key every 500 ms) is taken at once rather than when it expires; fencing keeps a holder that
   * was only paused from writing after that.
   */
  acquire: {
    numberOfKeys: 2,
    lua: `
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1, ''} end
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder = string.match(cur, '^(%S+) ')
  if holder ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. holder) == 1 then return {0, holder} end
end
local fence = redis.call('HINCRBY', KEYS[2], 'f', 1)
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. fence, 'PX', ARGV[2])
return {1, tostring(fence)}`,
  },
  /** KEYS lease, rec; ARGV node, fence, ttl -> 1 renewed (or re-set after it expired unclaimed), 0 lost. */
  renew: {
    numberOfKeys: 2,
    lua: `
local want = ARGV[1] .. ' ' .. ARGV[2]
local cur = redis.call('GET', KEYS[1])
if cur == want then redis.call('PEXPIRE', KEYS[1], ARGV[3]) return 1 end
if not cur and redis.call('HGET', KEYS[2], 'f') == ARGV[2] then
  redis.call('SET', KEYS[1], want, 'PX', ARGV[3])
  return 1
end
return 0`,
  },
  /** KEYS lease; ARGV node, fence. */
  release: {
    numberOfKeys: 1,
    lua: `if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then return redis.call('DEL', KEYS[1]) end return 0`,
  },
  /** KEYS rec, active, ended, states, owner's open set; ARGV fence, json, id, state, updatedAt, terminal -> 1 | 0 (stale fence). */
  save: {
    numberOfKeys: 5,
    lua: `
if redis.call('HGET', KEYS[1], 'f') ~= ARGV[1] then return 0 end
local old = redis.call('HGET', KEYS[1], 's')
if old ~= ARGV[4] then
  if old then redis.call('HINCRBY', KEYS[4], old, -1) end
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
end
redis.call('HSET', KEYS[1], 'r', ARGV[2], 's', ARGV[4], 't', ARGV[5])
if ARGV[6] == '1' then
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('SREM', KEYS[5], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
end
return 1`,
  },
  /** KEYS rec; ARGV fence, committed, percent, updatedAt -> 1 | 0 (stale fence). */
  commit: {
    numberOfKeys: 1,
    lua: `
if redis.call('HGET', KEYS[1], 'f') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[2], 'p', ARGV[3], 't', ARGV[4])
return 1`,
  },
  /** KEYS rec, lease, idx, active, ended, states; ARGV id, owner-set key prefix. */
  remove: {
    numberOfKeys: 6,
    lua: `
local state = redis.call('HGET', KEYS[1], 's')
if state then redis.call('HINCRBY', KEYS[6], state, -1) end
local owner = redis.call('HGET', KEYS[1], 'o')
if owner then redis.call('SREM', ARGV[2] .. owner, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1`,
  },
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptRunner = (...args: Array<string | number>) => Promise<unknown>;

/** A lease this node holds: valid while renewed in time (by this node's clock, with a margin). */
class HeldLease implements Lease {
  private until: number;
  private lost = false;
  private waiters: Array<{ resolve: () => void; reject: (error: UploadHubError) => void }> = [];

  constructor(readonly uploadId: string, readonly fence: number, private readonly ttlMs: number, grantedAt: number) {
    this.until = grantedAt + this.usableMs;
  }

  /** Renewed by a round trip sent at `sentAt`: valid again for the usable part of the TTL; whoever waited goes on. */
  renewed(sentAt: number): void {
    this.until = sentAt + this.usableMs;
    if (this.valid) for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  /** Lost for good (taken over, or given back): whoever waited hears ERR_LEASE_LOST. */
  lose(): void {
    if (this.lost) return;
    this.lost = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.lostError());
  }

  whenValid(): Promise<void> {
    if (this.valid) return Promise.resolve();
    if (this.lost) return Promise.reject(this.lostError());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  get valid(): boolean {
    return !this.lost && Date.now() < this.until;
  }

  /** The part of the TTL this node relies on: a fifth is left for clock drift and the renewal's trip. */
  private get usableMs(): number {
    return this.ttlMs - Math.ceil(this.ttlMs / 5);
  }

  private lostError(): UploadHubError {
    return new UploadHubError('ERR_LEASE_LOST', `The lease on upload ${this.uploadId} (fencing token ${this.fence}) was lost`);
  }
}

export interface RedisRegistryInit {
  /** Commands and scripts. */
  redis: Redis;
  /** A second connection, for the request channel (a subscribed connection sends nothing else). */
  subscriber: Redis;
  prefix: string;
  nodeId: string;
  leaseTtlMs: number;
  logger?: Logger;
}

export class RedisRegistry implements UploadRegistry {
  readonly clustered = true;
  readonly nodeId: string;
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly logger: Logger | undefined;
  private readonly held = new Map<string, HeldLease>();
  private readonly scripts = new Map<ScriptName, ScriptRunner>();
  private readonly requestHandlers: Array<(request: NodeRequest) => void> = [];
  private readonly lostHandlers: Array<(uploadId: string) => void> = [];
  private renewTimer: ReturnType<typeof setInterval> | undefined;
  private renewing = false;
  /** When Redis last answered a ping: a Redis that holds the connection but answers nothing (frozen, overloaded) is unavailable too. */
  private lastAnswer = Date.now();
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pinging = false;

  constructor(init: RedisRegistryInit) {
    this.redis = init.redis;
    this.subscriber = init.subscriber;
    this.prefix = init.prefix;
    this.nodeId = init.nodeId;
    this.ttlMs = init.leaseTtlMs;
    this.logger = init.logger;
    for (const [name, script] of Object.entries(SCRIPTS) as Array<[ScriptName, (typeof SCRIPTS)[ScriptName]]>) {
      const command = `uploadHub_${name}`;
      this.redis.defineCommand(command, { numberOfKeys: script.numberOfKeys, lua: script.lua });
      const runner = (this.redis as unknown as Record<string, ScriptRunner>)[command] as ScriptRunner;
      this.scripts.set(name, runner.bind(this.redis));
    }
  }

  get health(): 'ok' | 'unavailable' {
    return this.redis.status === 'ready' && Date.now() - this.lastAnswer < UNANSWERED_MS ? 'ok' : 'unavailable';
  }

  async init(): Promise<UploadRecord[]> {
    this.subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.key('ctl')) return;
      const request = parseRequest(text, this.nodeId);
      if (request) for (const handler of this.requestHandlers) handler(request);
    });
    await this.timed(this.subscriber.subscribe(this.key('ctl')), 'Subscribing to the request channel');
    const every = Math.max(50, Math.floor(this.ttlMs / 3));
    this.renewTimer = setInterval(() => void this.renewAll(), every);
    this.renewTimer.unref();
    // Alive before any lease is granted: another node must not take this one's leases as a dead node's.
    await this.timed(this.refreshAlive(), 'Announcing the node');
    this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
    this.pingTimer.unref();
    return [];
  }

  async insert(record: UploadRecord): Promise<void> {
    const rec = this.key(`u:${record.id}`);
    await this.timed(
      this.redis.multi()
        .hset(rec, { r: JSON.stringify(record), o: record.owner, s: record.state, c: 0, f: 0, p: 0, t: record.updatedAt })
        .zadd(this.key('idx'), record.createdAt, record.id)
        .sadd(this.key('active'), record.id)
        .sadd(this.ownerKey(record.owner), record.id)
        .hincrby(this.key('states'), record.state, 1)
        .exec(),
      'Saving the new upload',
    );
  }

  async load(id: string): Promise<StoredUpload | undefined> {
    const [json, committed, percent, updatedAt] = await this.timed(this.redis.hmget(this.key(`u:${id}`), 'r', 'c', 'p', 't'), 'Reading the upload');
    return json ? this.stored(json, committed, percent, updatedAt) : undefined;
  }

  async save(record: UploadRecord, lease: Lease | undefined): Promise<void> {
    if (!lease) throw new UploadHubError('ERR_LEASE_LOST', `Upload ${record.id} is not held by node ${this.nodeId}`);
    const saved = await this.run('save', [this.key(`u:${record.id}`), this.key('active'), this.key('ended'), this.key('states'), this.ownerKey(record.owner)], [
      lease.fence, JSON.stringify(record), record.id, record.state, record.updatedAt, isTerminalState(record.state) ? '1' : '0',
    ]);
    if (saved !== 1) throw this.stale(record.id, lease);
  }

  async commit(lease: Lease, committed: number, percent: number, updatedAt: number): Promise<void> {
    const done = await this.run('commit', [this.key(`u:${lease.uploadId}`)], [lease.fence, committed, percent, updatedAt]);
    if (done !== 1) throw this.stale(lease.uploadId, lease);
  }

  async list(query: RegistryQuery): Promise<string[]> {
    const desc = query.order === 'desc';
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    const out: string[] = [];
    const { after } = query;
    // From the cursor's createdAt on (ties on it are sorted by id, as the list's order is).
    const from = after ? String(after.createdAt) : desc ? '+inf' : '-inf';
    const to = desc ? '-inf' : '+inf';
    for (let offset = 0; out.length < limit; offset += PAGE_BATCH) {
      const page = await this.timed(
        desc
          ? this.redis.zrange(this.key('idx'), from, to, 'BYSCORE', 'REV', 'LIMIT', offset, PAGE_BATCH, 'WITHSCORES')
          : this.redis.zrange(this.key('idx'), from, to, 'BYSCORE', 'LIMIT', offset, PAGE_BATCH, 'WITHSCORES'),
        'Listing uploads',
      );
      if (page.length === 0) break;
      const candidates: Array<{ id: string; createdAt: number }> = [];
      for (let i = 0; i < page.length; i += 2) {
        const id = page[i] as string;
        const createdAt = Number(page[i + 1]);
        if (after && (desc ? comparePosition({ createdAt, id }, after) >= 0 : comparePosition({ createdAt, id }, after) <= 0)) continue;
        candidates.push({ id, createdAt });
      }
      const pipeline = this.redis.pipeline();
      for (const { id } of candidates) pipeline.hmget(this.key(`u:${id}`), 'o', 's');
      const fields = (await this.timed(pipeline.exec(), 'Listing uploads')) ?? [];
      candidates.forEach(({ id }, index) => {
        if (out.length >= limit) return;
        const [owner, state] = (fields[index]?.[1] ?? []) as Array<string | null>;
        if (owner == null || state == null || !query.visible(owner)) return;
        if (query.states && !query.states.has((query.stateOf?.(id) ?? state) as UploadState)) return;
        out.push(id);
      });
      if (page.length < PAGE_BATCH * 2) break;
    }
    return out;
  }

  async openUploads(owner: string): Promise<number> {
    return this.timed(this.redis.scard(this.ownerKey(owner)), 'Counting the principal\'s uploads');
  }

  async counts(): Promise<Record<UploadState, number>> {
    const stored = await this.timed(this.redis.hgetall(this.key('states')), 'Counting uploads');
    return Object.fromEntries(UPLOAD_STATES.map((state) => [state, Math.max(0, Number(stored[state] ?? 0))])) as Record<UploadState, number>;
  }

  async remove(id: string): Promise<void> {
    const keys = [this.key(`u:${id}`), this.key(`lease:${id}`), this.key('idx'), this.key('active'), this.key('ended'), this.key('states')];
    await this.run('remove', keys, [id, this.key('open:')]);
    this.held.delete(id);
  }

  async acquire(id: string): Promise<Acquired | undefined> {
    const grantedAt = Date.now();
    const [status, value] = (await this.timed(this.run('acquire', [this.key(`lease:${id}`), this.key(`u:${id}`)], [this.nodeId, this.ttlMs, this.key('node:')]), 'Taking the upload\'s lease')) as [number, string];
    if (status === -1) return undefined;
    if (status === 0) return { heldBy: value };
    const lease = new HeldLease(id, Number(value), this.ttlMs, grantedAt);
    // A lease this node held before on the upload (it was let go meanwhile) is superseded.
    const previous = this.held.get(id);
    previous?.lose();
    this.held.set(id, lease);
    return { lease };
  }

  async release(lease: Lease): Promise<void> {
    if (this.held.get(lease.uploadId) === lease) this.held.delete(lease.uploadId);
    if (lease instanceof HeldLease) lease.lose();
    await this.run('release', [this.key(`lease:${lease.uploadId}`)], [this.nodeId, lease.fence]);
  }

  async request(nodeId: string, request: NodeRequest): Promise<boolean> {
    const receivers = await this.timed(this.redis.publish(this.key('ctl'), JSON.stringify({ ...request, to: nodeId, from: this.nodeId })), 'Sending a request to another node');
    return receivers > 0;
  }

  onRequest(handler: (request: NodeRequest) => void): void {
    this.requestHandlers.push(handler);
  }

  onLeaseLost(handler: (uploadId: string) => void): void {
    this.lostHandlers.push(handler);
  }

  async once(chore: string, intervalMs: number, work: () => Promise<void>): Promise<void> {
    const won = await this.redis.set(this.key(`chore:${chore}`), this.nodeId, 'PX', Math.max(1, intervalMs - 50), 'NX').catch(() => null);
    if (won === 'OK') await work();
  }

  /** Unfinished uploads with no lease, or a lease whose holder's liveness key is gone (a dead node's). */
  async orphans(): Promise<string[]> {
    const ids = await this.timed(this.redis.smembers(this.key('active')), 'Listing unfinished uploads');
    if (ids.length === 0) return [];
    const leases = await this.timed(this.redis.mget(...ids.map((id) => this.key(`lease:${id}`))), 'Listing unfinished uploads');
    const holders = [...new Set(leases.flatMap((lease) => (lease ? [lease.split(' ')[0] as string] : [])))];
    const alive = new Set<string>();
    if (holders.length > 0) {
      const keys = await this.timed(this.redis.mget(...holders.map((holder) => this.key(`node:${holder}`))), 'Listing live nodes');
      holders.forEach((holder, index) => {
        if (keys[index] != null) alive.add(holder);
      });
    }
    return ids.filter((_id, index) => {
      const lease = leases[index];
      return lease == null || !alive.has(lease.split(' ')[0] as string);
    });
  }

  async finishedBefore(time: number): Promise<string[]> {
    return this.timed(this.redis.zrangebyscore(this.key('ended'), '-inf', `(${time}`, 'LIMIT', 0, 1000), 'Listing finished uploads');
  }

  async close(): Promise<void> {
    clearInterval(this.renewTimer);
    clearInterval(this.pingTimer);
    this.held.clear();
    // Gone: what this node still held (nothing, after a drain) may be taken at once.
    await this.timed(this.redis.del(this.key(`node:${this.nodeId}`)), 'Leaving the cluster').catch(() => undefined);
    this.subscriber.disconnect();
    await this.timed(this.redis.quit(), 'Closing the connection').catch(() => undefined);
    this.redis.disconnect();
  }

  private ping(): void {
    if (this.pinging) return;
    this.pinging = true;
    this.refreshAlive().then(
      () => {
        this.lastAnswer = Date.now();
      },
      () => undefined,
    ).finally(() => {
      this.pinging = false;
    });
  }

  /** The liveness key (`node:<id>`): doubles as the ping that tells whether Redis answers. */
  private refreshAlive(): Promise<unknown> {
    return this.redis.set(this.key(`node:${this.nodeId}`), String(Date.now()), 'PX', Math.min(this.ttlMs, NODE_ALIVE_MS));
  }

  /** Renews every lease this node holds, in one round trip; a lease found taken is lost. */
  private async renewAll(): Promise<void> {
    if (this.renewing || this.held.size === 0) return;
    this.renewing = true;
    try {
      const leases = [...this.held.values()];
      const sentAt = Date.now();
      const pipeline = this.redis.pipeline();
      for (const lease of leases) {
        // Defined on every pipeline of this client by defineCommand (see the constructor).
        (pipeline as unknown as { uploadHub_renew: ScriptRunner }).uploadHub_renew(this.key(`lease:${lease.uploadId}`), this.key(`u:${lease.uploadId}`), this.nodeId, lease.fence, this.ttlMs);
      }
      const results = (await pipeline.exec()) ?? [];
      leases.forEach((lease, index) => {
        const [error, renewed] = results[index] ?? [null, 0];
        if (error) return;
        if (renewed === 1) {
          lease.renewed(sentAt);
          return;
        }
        if (this.held.get(lease.uploadId) !== lease) return;
        lease.lose();
        this.held.delete(lease.uploadId);
        this.logger?.warn({ uploadId: lease.uploadId, node: this.nodeId, fence: lease.fence }, 'lease lost');
        for (const handler of this.lostHandlers) handler(lease.uploadId);
      });
    } catch (error) {
      // Redis unreachable: the leases stay valid until their margin runs out, and renewal goes on.
      this.logger?.warn({ err: (error as Error).message }, 'lease renewal failed');
    } finally {
      this.renewing = false;
    }
  }

  private stored(json: string, committed: string | null | undefined, percent: string | null | undefined, updatedAt: string | null | undefined): StoredUpload {
    const record = JSON.parse(json) as UploadRecord;
    const offset = committed == null ? undefined : Number(committed);
    // The offset and its time are written per commit, the record per state change: the freshest of each.
    if (!isTerminalState(record.state)) {
      if (percent != null) record.percent = Math.max(record.percent ?? 0, Number(percent));
      if (updatedAt != null) record.updatedAt = Math.max(record.updatedAt, Number(updatedAt));
      if (offset !== undefined) record.bytes = offset;
    }
    return { record, committed: isTerminalState(record.state) ? record.bytes : offset };
  }

  private stale(uploadId: string, lease: Lease): UploadHubError {
    return new UploadHubError('ERR_LEASE_LOST', `Write to upload ${uploadId} with fencing token ${lease.fence} refused: another node holds it now`);
  }

  private run(name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
    return (this.scripts.get(name) as ScriptRunner)(...keys, ...args);
  }

  /** A request a caller waits on: ERR_UNAVAILABLE when Redis does not answer within REQUEST_TIMEOUT_MS. */
  private async timed<T>(work: Promise<T>, action: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new UploadHubError('ERR_UNAVAILABLE', `${action}: Redis did not answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    });
    // The command still runs when Redis is back; its late outcome is nobody's business.
    work.catch(() => undefined);
    try {
      return await Promise.race([work, timeout]);
    } catch (error) {
      if (error instanceof UploadHubError) throw error;
      throw new UploadHubError('ERR_UNAVAILABLE', `${action}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  private key(suffix: string): string {
    return `${this.prefix}${suffix}`;
  }

  /** The set of `owner`'s unfinished uploads (maxOpenUploadsPerPrincipal across nodes). */
  private ownerKey(owner: string): string {
    return this.key(`open:${owner}`);
  }
}

/**
 * A request from the channel, if it is one for `nodeId` (or for every node) and well formed:
 * anything else on the channel (another version, a stray publisher) is ignored.
 */
function parseRequest(text: string, nodeId: string): NodeRequest | undefined {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof message !== 'object' || message === null) return undefined;
  const { to, type, uploadId } = message as Record<string, unknown>;
  if (to !== nodeId && to !== '*') return undefined;
  if (type === 'orphans') return { type };
  if ((type === 'release' || type === 'cancel') && typeof uploadId === 'string' && UPLOAD_ID_PATTERN.test(uploadId)) return { type, uploadId };
  return undefined;
}
