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
  /** Extra filter, e.g. visibility to a principal. */
  accepts?: (event: HubEvent) => boolean;
  deliver: (event: HubEvent) => void;
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

export class EventBus {
  private nextId: number;
  /** A ring: `history[(start + i) % historySize]` is the i-th oldest kept event. */
  private readonly history: HubEvent[] = [];
  private start = 0;
  private readonly byUpload = new Map<string, Set<Subscription>>();
  private readonly allUploads = new Set<Subscription>();
  private readonly listeners = new Set<(event: HubEvent) => void>();

  constructor(private readonly historySize: number, now: () => number = Date.now) {
    this.nextId = now() * 1000;
  }

  /** Stamps the event with its id and time, records it, and delivers it synchronously. */
  publish(body: HubEventBody): HubEvent {
    const event = { ...body, id: this.nextId++, at: Date.now() } as HubEvent;
    if (this.history.length < this.historySize) this.history.push(event);
    else {
      this.history[this.start] = event;
      this.start = (this.start + 1) % this.historySize;
    }
    for (const listener of this.listeners) listener(event);
    const targeted = this.byUpload.get(event.uploadId);
    if (targeted) for (const sub of targeted) this.deliver(sub, event);
    for (const sub of this.allUploads) if (!targeted?.has(sub)) this.deliver(sub, event);
    return event;
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
   * Events after `lastId`, oldest first; undefined when `lastId` is older than the history
   * (the caller then starts over from a snapshot).
   */
  since(lastId: number): HubEvent[] | undefined {
    // Caught up: nothing was published after it (also the only answer an empty history can give).
    if (lastId === this.nextId - 1) return [];
    const oldest = this.history[this.start];
    if (!oldest || lastId < oldest.id - 1 || lastId >= this.nextId) return undefined;
    // Ids are consecutive within the history, so positions are arithmetic.
    const out: HubEvent[] = [];
    for (let i = lastId - oldest.id + 1; i < this.history.length; i++) out.push(this.history[(this.start + i) % this.history.length] as HubEvent);
    return out;
  }

  /** The id the next event will carry, minus one: a watcher that starts now has seen up to here. */
  get lastId(): number {
    return this.nextId - 1;
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

  private deliver(sub: Subscription, event: HubEvent): void {
    if (sub.closed || (sub.options.accepts && !sub.options.accepts(event))) return;
    sub.options.deliver(event);
  }
}
