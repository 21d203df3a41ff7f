/**
 * Waits for a socket's send buffer to drain to a level. Whatever sits in that buffer goes out
 * before any message sent later, a `cancel` too, so the client adds chunks only while it holds
 * little; the credit window alone would let it fill with seconds of data on a slow link.
 *
 * Browsers' WebSocket has no drain event and Socket.IO's says nothing of its WebSocket's
 * buffer, so the level is polled while someone waits; `check()` answers sooner when the socket
 * reports a write done (`ws` calls back from send()).
 */

/** How often a waiting level is re-read, in ms. */
const POLL_MS = 4;

export class SendBuffer {
  private waiters: Array<{ bytes: number; resolve: () => void }> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  /** @param buffered  bytes handed to the socket and not yet written to the network. */
  constructor(private readonly buffered: () => number) {}

  /** Resolves once at most `bytes` are buffered (at once if so already), or when the connection ends. */
  drained(bytes: number): Promise<void> {
    if (this.closed || this.buffered() <= bytes) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.waiters.push({ bytes, resolve });
      this.timer ??= setTimeout(() => this.poll(), POLL_MS);
    });
  }

  /** Re-reads the level now (a write completed). */
  check(): void {
    if (this.waiters.length === 0) return;
    const level = this.buffered();
    const still = [];
    for (const waiter of this.waiters) {
      if (level <= waiter.bytes) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
    if (still.length === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** The connection ended: nobody waits any more (what they wait to send has nowhere to go). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  private poll(): void {
    this.timer = undefined;
    this.check();
    if (this.waiters.length > 0 && !this.closed) this.timer = setTimeout(() => this.poll(), POLL_MS);
  }
}
