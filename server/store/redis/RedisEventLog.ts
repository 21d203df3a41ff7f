/**
 * The event log of a hub cluster: one Redis Stream (`events`) that every node appends to and
 * reads in full, so every watcher on any node sees every event it may see, in one order.
 *
 * Event ids are the stream's: entry `<ms>-<seq>` is event id `ms * 1000 + seq` (a number, as
 * the protocol has always had: one node's ids are seeded the same way), so an SSE client's
 * `Last-Event-ID` is replayed by any node and ids continue across a takeover. The appending
 * script keeps `seq` under 1000 by moving to the next millisecond.
 *
 * A node publishes by appending and delivers when its reader reads the entry back, so its own
 * watchers see events in the cluster's order too. Replay comes from the node's recent events,
 * or from the stream (XRANGE) for older ones; past the stream's length (MAXLEN ~
 * eventHistorySize) a watcher starts over from a snapshot.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { HubEvent, HubEventBody } from '../../../shared/messages.js';
import { EventBus } from '../../core/EventBus.js';

const APPEND = `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2], 'o', ARGV[3])
local dash = string.find(id, '-')
local ms = tonumber(string.sub(id, 1, dash - 1))
local seq = tonumber(string.sub(id, dash + 1))
if seq >= 1000 then
  redis.call('XDEL', KEYS[1], id)
  id = redis.call('XADD', KEYS[1], string.format('%d-0', ms + 1), 'e', ARGV[2], 'o', ARGV[3])
end
return id`;

/** Entries read per XREAD. */
const READ_COUNT = 1_000;
/** How long one XREAD blocks, in ms: the reader's loop wakes at least this often to see whether it should stop. */
const READ_BLOCK_MS = 2_000;

/** `1700000000000-5` -> 1700000000000005. */
export function eventIdOf(streamId: string): number {
  const dash = streamId.indexOf('-');
  return Number(streamId.slice(0, dash)) * 1000 + Number(streamId.slice(dash + 1));
}

/** 1700000000000005 -> `1700000000000-5`. */
export function streamIdOf(eventId: number): string {
  return `${Math.floor(eventId / 1000)}-${eventId % 1000}`;
}

type StreamEntry = [id: string, fields: string[]];

export class RedisEventLog extends EventBus {
  private readonly key: string;
  private cursor = '0-0';
  private stopped = false;
  private reading: Promise<void> | undefined;

  /**
   * @param redis  appends and replays.
   * @param reader a connection of its own: XREAD BLOCK holds it.
   */
  constructor(
    private readonly redis: Redis,
    private readonly reader: Redis,
    prefix: string,
    private readonly maxLength: number,
    private readonly logger?: Logger,
  ) {
    super(maxLength);
    this.key = `${prefix}events`;
    redis.defineCommand('uploadHub_append', { numberOfKeys: 1, lua: APPEND });
  }

  /** Starts reading from the stream's end: this node delivers what is appended from now on. */
  async open(): Promise<void> {
    const last = (await this.redis.xrevrange(this.key, '+', '-', 'COUNT', 1)) as StreamEntry[];
    this.cursor = last[0]?.[0] ?? '0-0';
    this.seed(eventIdOf(this.cursor));
    this.reading = this.readLoop();
  }

  override publish(body: HubEventBody, owner: string): void {
    const append = (this.redis as unknown as Record<string, (...args: Array<string | number>) => Promise<string>>).uploadHub_append as (...args: Array<string | number>) => Promise<string>;
    append.call(this.redis, this.key, this.maxLength, JSON.stringify(body), owner).catch((error: unknown) => {
      this.logger?.error({ err: (error as Error).message, type: body.type, uploadId: body.uploadId }, 'publishing an event to Redis failed');
    });
  }

  override async since(lastId: number, accepts?: (event: HubEvent, owner: string) => boolean): Promise<HubEvent[] | undefined> {
    const recent = this.recent(lastId, accepts);
    if (recent !== undefined) return recent;
    if (lastId > this.lastId) return undefined;
    // Older than what this node has seen: the stream may still hold it.
    const first = (await this.redis.xrange(this.key, '-', '+', 'COUNT', 1)) as StreamEntry[];
    const oldest = first[0] ? eventIdOf(first[0][0]) : undefined;
    if (oldest === undefined || lastId < oldest - 1) return undefined;
    const out: HubEvent[] = [];
    let from = `(${streamIdOf(lastId)}`;
    for (;;) {
      const entries = (await this.redis.xrange(this.key, from, streamIdOf(this.lastId), 'COUNT', READ_COUNT)) as StreamEntry[];
      for (const entry of entries) {
        const parsed = parseEntry(entry);
        if (parsed && (!accepts || accepts(parsed.event, parsed.owner))) out.push(parsed.event);
      }
      if (entries.length < READ_COUNT) break;
      from = `(${(entries.at(-1) as StreamEntry)[0]}`;
    }
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.reader.disconnect();
    await this.reading;
  }

  private async readLoop(): Promise<void> {
    while (!this.stopped) {
      let reply: Array<[string, StreamEntry[]]> | null;
      try {
        reply = (await this.reader.xread('COUNT', READ_COUNT, 'BLOCK', READ_BLOCK_MS, 'STREAMS', this.key, this.cursor)) as Array<[string, StreamEntry[]]> | null;
      } catch (error) {
        if (this.stopped) return;
        // Redis unreachable: the client reconnects by itself; read on from the same entry then.
        this.logger?.warn({ err: (error as Error).message }, 'reading the event stream failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      for (const [, entries] of reply ?? []) {
        for (const entry of entries) {
          this.cursor = entry[0];
          const parsed = parseEntry(entry);
          if (parsed) this.deliver(parsed.event, parsed.owner);
        }
      }
    }
  }
}

function parseEntry([id, fields]: StreamEntry): { event: HubEvent; owner: string } | undefined {
  let body: string | undefined;
  let owner: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'e') body = fields[i + 1];
    else if (fields[i] === 'o') owner = fields[i + 1];
  }
  if (body === undefined || owner === undefined) return undefined;
  try {
    const ms = Number(id.slice(0, id.indexOf('-')));
    return { event: { ...(JSON.parse(body) as HubEventBody), id: eventIdOf(id), at: ms } as HubEvent, owner };
  } catch {
    return undefined;
  }
}
