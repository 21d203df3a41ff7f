/**
 * What keeps a page's picture true between events: one ticker for the countdowns, and status
 * requests (`GET /api/uploads/:id`) for what events cannot tell — how an upload ended while the
 * page was disconnected, whether a silent upload's client is still there.
 */
import { uploadStatus, type UploadStatus } from '../../shared/messages.js';

/**
 * One interval per page, running only while something changes with time and the page is
 * visible, so a finished or hidden page holds no timer.
 *
 * @example
 * const ticker = new Ticker(() => renderAll(), () => document.visibilityState === 'visible');
 * ticker.update(anyCountingDown); // after every change and on visibilitychange
 */
export class Ticker {
  private timer: ReturnType<typeof setInterval> | undefined;

  /** `tick` runs every `intervalMs` (default 1000) and returns whether it is still needed. */
  constructor(private readonly tick: () => boolean, private readonly visible: () => boolean, private readonly intervalMs = 1000) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Starts the interval when `needed` and visible; stops it otherwise. */
  update(needed: boolean): void {
    if (needed && this.visible()) {
      this.timer ??= setInterval(() => this.update(this.tick()), this.intervalMs);
    } else if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    this.update(false);
  }
}

/** A status answer is a few hundred bytes; anything this large is not one. */
const MAX_STATUS_BYTES = 1024 * 1024;

/**
 * The hub's status of one upload, or `gone` when it answers 404 (unknown, or not visible to this
 * token). Network failures, timeouts and malformed answers reject.
 */
export async function fetchStatus(base: string, id: string, token: string | undefined, timeoutMs = 10_000): Promise<UploadStatus | 'gone'> {
  const response = await fetch(new URL(`/api/uploads/${encodeURIComponent(id)}`, base), {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    cache: 'no-store',
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status === 404) {
    await response.body?.cancel();
    return 'gone';
  }
  const length = Number(response.headers.get('content-length') ?? 0);
  if (!response.ok || length > MAX_STATUS_BYTES) {
    await response.body?.cancel();
    throw new Error(`Status of ${id}: HTTP ${response.status}`);
  }
  const parsed = uploadStatus.safeParse(JSON.parse(await response.text()));
  if (!parsed.success) throw new Error(`Status of ${id}: not an upload status`);
  return parsed.data;
}

export interface StatusQueueOptions {
  base: string;
  token: string | undefined;
  /** Requests at once, default 4: a page with many rows never floods the hub. */
  concurrency?: number;
  /** `askedAt`: when the request went out, so a status older than the events since is not taken over them. */
  onStatus(id: string, status: UploadStatus | 'gone', askedAt: number): void;
  onError?(id: string, error: unknown): void;
}

/** Status requests, one per upload at a time, a few at once. */
export class StatusQueue {
  private readonly waiting = new Set<string>();
  private readonly asking = new Set<string>();

  constructor(private readonly options: StatusQueueOptions) {}

  /** Asks for this upload's status, unless a request for it is already queued or out. */
  check(id: string): void {
    if (this.asking.has(id)) return;
    this.waiting.add(id);
    this.next();
  }

  get pending(): number {
    return this.waiting.size + this.asking.size;
  }

  private next(): void {
    const limit = this.options.concurrency ?? 4;
    for (const id of this.waiting) {
      if (this.asking.size >= limit) return;
      this.waiting.delete(id);
      this.asking.add(id);
      const askedAt = Date.now();
      fetchStatus(this.options.base, id, this.options.token).then(
        (status) => this.options.onStatus(id, status, askedAt),
        (error: unknown) => this.options.onError?.(id, error),
      ).finally(() => {
        this.asking.delete(id);
        this.next();
      });
    }
  }
}
