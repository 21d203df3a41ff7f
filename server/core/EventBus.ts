/**
 * The hub's one ordered event stream. Every event gets an id larger than any before it (seeded
 * from the clock, so ids keep growing across restarts and an id from an earlier process is
 * recognisably too old). A bounded history serves replay (SSE Last-Event-ID).
 *
 * Subscribers are indexed by upload, so publishing costs one map lookup plus the subscribers of
 * that upload and the "all uploads" subscribers, not every subscriber of the hub.
 */
import type { HubEvent, HubEventBody } from '../../shared/messages.js';

export interface SubscriptionOptions {
  /** Receive events of every upload (filtered by `accepts`) instead of a list of ids. */
  all?: boolean;
  /** Extra filter, e.g. visibility to a principal; `owner` is the principal that owns the event's upload. */
  accepts?: (event: HubEvent, owner: string) => boolean;
  deliver: (event: HubEvent, owner: string) => void;
}

export class Subscription {
  readonly uploadIds = new Set<string>();
  closed = false;
  private allUploads: boolean;

  constructor(private readonly bus: EventBus, readonly options: SubscriptionOptions) {
    this.allUploads = options.all === true;
  }

  get all(): boolean {
    return this.allUploads;
  }

  /** Switches between every upload (filtered by `accepts`) and the listed ids only. */
  setAll(all: boolean): void {
    if (this.closed || this.allUploads === all) return;
    this.allUploads = all;
    this.bus.reindexAll(this);
  }

  has(uploadId: string): boolean {
    return this.uploadIds.has(uploadId);
  }

  add(uploadId: string): void {
    if (this.closed || this.uploadIds.has(uploadId)) return;
    this.uploadIds.add(uploadId);
    this.bus.index(this, uploadId);
  }

  remove(uploadId: string): void {
    if (!this.uploadIds.delete(uploadId)) return;
    this.bus.unindex(this, uploadId);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const uploadId of this.uploadIds) this.bus.unindex(this, uploadId);
    this.uploadIds.clear();
    this.bus.drop(this);
  }
}

/** An event and the principal owning its upload (who may see it); the owner is never sent. */
interface Logged {
  event: HubEvent;
  owner: string;
}

export class EventBus {
  /** A ring: `history[(start + i) % historySize]` is the i-th oldest kept event. */
  private readonly history: Logged[] = [];
  private start = 0;
  /** The id of the last event delivered; one published here gets the next. */
  private last: number;
  private readonly byUpload = new Map<string, Set<Subscription>>();
  private readonly allUploads = new Set<Subscription>();
  private readonly listeners = new Set<(event: HubEvent) => void>();

  constructor(private readonly historySize: number, now: () => number = Date.now) {
    this.last = now() * 1000 - 1;
  }

  /**
   * Stamps the event with its id and time, records it, and delivers it synchronously. A log
   * shared by several nodes (store/redis/RedisEventLog.ts) stamps it there and delivers it
   * when it comes back.
   */
  publish(body: HubEventBody, owner: string): void {
    this.deliver({ ...body, id: this.last + 1, at: Date.now() } as HubEvent, owner);
  }

  /** Continues after `lastId` (a shared log's last event when this node joined it). */
  protected seed(lastId: number): void {
    this.last = lastId;
  }

  /** Records an event stamped elsewhere and delivers it to this node's subscribers. */
  deliver(event: HubEvent, owner: string): void {
    this.last = event.id;
    const logged = { event, owner };
    if (this.history.length < this.historySize) this.history.push(logged);
    else {
      this.history[this.start] = logged;
      this.start = (this.start + 1) % this.historySize;
    }
    for (const listener of this.listeners) listener(event);
    const targeted = this.byUpload.get(event.uploadId);
    if (targeted) for (const sub of targeted) this.deliverTo(sub, event, owner);
    for (const sub of this.allUploads) if (!targeted?.has(sub)) this.deliverTo(sub, event, owner);
  }

  subscribe(options: SubscriptionOptions): Subscription {
    const sub = new Subscription(this, options);
    if (sub.all) this.allUploads.add(sub);
    return sub;
  }

  /** Observes every event unfiltered (metrics, scale-out relays). Returns the unsubscribe function. */
  tap(listener: (event: HubEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Events after `lastId` that `accepts` lets through, oldest first; undefined when `lastId` is
   * older than the history (the caller then starts over from a snapshot).
   */
  async since(lastId: number, accepts?: (event: HubEvent, owner: string) => boolean): Promise<HubEvent[] | undefined> {
    return this.recent(lastId, accepts);
  }

  /** since(), from this node's ring alone. */
  protected recent(lastId: number, accepts?: (event: HubEvent, owner: string) => boolean): HubEvent[] | undefined {
    // Caught up: nothing was delivered after it (also the only answer an empty history can give).
    if (lastId === this.last) return [];
    const oldest = this.history[this.start];
    if (!oldest || lastId < oldest.event.id - 1 || lastId > this.last) return undefined;
    // Ids grow along the ring but need not be consecutive (a shared log's are not): binary search.
    const count = this.history.length;
    let low = 0;
    let high = count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.history[(this.start + mid) % count] as Logged).event.id <= lastId) low = mid + 1;
      else high = mid;
    }
    const out: HubEvent[] = [];
    for (let i = low; i < count; i++) {
      const { event, owner } = this.history[(this.start + i) % count] as Logged;
      if (!accepts || accepts(event, owner)) out.push(event);
    }
    return out;
  }

  /** The id of the last event delivered: a watcher that starts now has seen up to here. */
  get lastId(): number {
    return this.last;
  }

  get subscriberCount(): number {
    const subs = new Set<Subscription>(this.allUploads);
    for (const set of this.byUpload.values()) for (const sub of set) subs.add(sub);
    return subs.size;
  }

  /** @internal */
  index(sub: Subscription, uploadId: string): void {
    let set = this.byUpload.get(uploadId);
    if (!set) this.byUpload.set(uploadId, (set = new Set()));
    set.add(sub);
  }

  /** @internal */
  unindex(sub: Subscription, uploadId: string): void {
    const set = this.byUpload.get(uploadId);
    if (!set) return;
    set.delete(sub);
    if (set.size === 0) this.byUpload.delete(uploadId);
  }

  /** @internal */
  reindexAll(sub: Subscription): void {
    if (sub.all) this.allUploads.add(sub);
    else this.allUploads.delete(sub);
  }

  /** @internal */
  drop(sub: Subscription): void {
    this.allUploads.delete(sub);
  }

  private deliverTo(sub: Subscription, event: HubEvent, owner: string): void {
    if (sub.closed || (sub.options.accepts && !sub.options.accepts(event, owner))) return;
    sub.options.deliver(event, owner);
  }
}
