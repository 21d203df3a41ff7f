/**
 * The dashboard's one connection to the hub: `GET /api/events` as Server-Sent Events, for every
 * upload the token may see. EventSource reconnects by itself after a dropped connection and
 * sends `Last-Event-ID`, so the hub replays what was missed (or, after a restart, sends a fresh
 * snapshot). When the hub answers a reconnect with an HTTP error, EventSource gives up for good;
 * the feed then opens a new one itself, after a delay that grows to `maxRetryMs`.
 *
 * @example
 * const feed = new EventFeed(new URL('/api/events', location.origin), {
 *   open: (reconnected) => { if (reconnected) reloadList(); },
 *   snapshot: (uploads) => ..., event: (event) => ..., lost: () => ...,
 * });
 */
import { z } from 'zod';
import { hubEvent, uploadStatus, type HubEvent, type UploadStatus } from '../../shared/messages.js';

const snapshotFrame = z.object({ type: z.literal('snapshot'), uploads: z.array(uploadStatus) });

/** Every hub event type: each comes as an SSE event of that name. */
const EVENT_TYPES: readonly string[] = hubEvent.options.map((option) => option.shape.type.value);

export interface FeedHandlers {
  /** Connected; `reconnected` when it is not the page's first connection (something may have been missed). */
  open(reconnected: boolean): void;
  /** The active uploads, first on a new stream (not after a reconnect the hub could replay). */
  snapshot(uploads: UploadStatus[]): void;
  event(event: HubEvent): void;
  /** The connection dropped; `refused`: the hub answered with an error rather than a stream. */
  lost(refused: boolean): void;
  /** A frame that is not what the protocol says (ignored). */
  malformed?(type: string): void;
}

export interface FeedOptions {
  /** First delay before reopening a refused stream, ms; doubled each time. Default 1000. */
  minRetryMs?: number;
  /** Longest delay between attempts, ms. Default 30000. */
  maxRetryMs?: number;
}

export class EventFeed {
  private source: EventSource | undefined;
  private lastEventId = '';
  private opened = false;
  private delay: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly url: URL, private readonly handlers: FeedHandlers, private readonly options: FeedOptions = {}) {
    this.delay = options.minRetryMs ?? 1000;
    this.connect();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.source?.close();
  }

  private connect(): void {
    const url = new URL(this.url);
    // EventSource sends Last-Event-ID only on its own reconnects; a new one carries it here.
    if (this.lastEventId !== '') url.searchParams.set('lastEventId', this.lastEventId);
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.delay = this.options.minRetryMs ?? 1000;
      const reconnected = this.opened;
      this.opened = true;
      this.handlers.open(reconnected);
    };
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) {
        this.handlers.lost(false);
        return;
      }
      this.handlers.lost(true);
      if (this.closed) return;
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, this.options.maxRetryMs ?? 30_000);
    };
    source.addEventListener('snapshot', (message) => {
      this.lastEventId = message.lastEventId || this.lastEventId;
      const frame = snapshotFrame.safeParse(parse(message.data));
      if (frame.success) this.handlers.snapshot(frame.data.uploads);
      else this.handlers.malformed?.('snapshot');
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        this.lastEventId = message.lastEventId || this.lastEventId;
        const event = hubEvent.safeParse(parse(message.data));
        if (event.success) this.handlers.event(event.data);
        else this.handlers.malformed?.(type);
      });
    }
  }
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}
