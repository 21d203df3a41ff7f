/**
 * The outgoing side of one socket connection, whatever carries it: the rules for bytes written
 * to it and not yet sent to the peer, measured by the transport (`ws` bufferedAmount, Engine.IO's
 * queued packets).
 *
 * - Above a quarter of `maxBytes` the connection is congested: progress is held and coalesced
 *   by the throttle, and messages that can wait stay queued here. It is drained again at a
 *   sixteenth (hysteresis, so it does not flap with every message).
 * - Above `maxBytes` the peer is a slow consumer: nothing more is written, and the owner closes
 *   the connection (ERR_SLOW_CONSUMER). State, stage and log events are never dropped, so a peer
 *   that stops reading ends here rather than growing the hub's memory.
 * - Messages that can wait (the pieces of a large `watching` reply) go out only while the
 *   connection is not congested, so a snapshot of any size never piles up in the transport.
 */
export interface BacklogOutput<M> {
  send(message: M): void;
  /** The connection became congested, or drained again. */
  congestion(congested: boolean): void;
  /** Unsent output passed the cap; called once, after which nothing is sent. */
  overflow(bytes: number): void;
}

export class Backlog<M> {
  private congestedNow = false;
  private readonly waiting: M[] = [];
  private ended = false;

  /**
   * @param maxBytes  the cap (watcherMaxBufferedBytes)
   * @param measure   bytes written to the connection and not yet sent, now
   */
  constructor(private readonly maxBytes: number, private readonly measure: () => number, private readonly output: BacklogOutput<M>) {}

  get congested(): boolean {
    return this.congestedNow;
  }

  /** Messages waiting for the connection to drain. */
  get queued(): number {
    return this.waiting.length;
  }

  /** The largest piece a waiting message should be: it then always fits under the cap. */
  get pieceBytes(): number {
    return Math.max(1, Math.floor(this.maxBytes / 4));
  }

  /** Writes now (replies, events), then applies the rules. */
  send(message: M): void {
    if (this.ended) return;
    this.output.send(message);
    this.check();
  }

  /** Writes while the connection is not congested; the rest waits for drain(). */
  enqueue(messages: readonly M[]): void {
    if (this.ended) return;
    this.waiting.push(...messages);
    this.pump();
  }

  /** Applies the rules to what is queued now; for output the transport wrote on its own (a fan-out, an acknowledgement). */
  check(): void {
    if (this.ended) return;
    const bytes = this.measure();
    if (bytes > this.maxBytes) {
      this.close();
      this.output.overflow(bytes);
      return;
    }
    if (!this.congestedNow && bytes > this.maxBytes / 4) {
      this.congestedNow = true;
      this.output.congestion(true);
    }
  }

  /** The transport sent some output on: once little is left, it is no longer congested and what waited goes out. */
  drain(): void {
    if (this.ended || !this.congestedNow || this.measure() > this.maxBytes / 16) return;
    this.congestedNow = false;
    this.output.congestion(false);
    this.pump();
  }

  /** Nothing is written any more; what waited is dropped. */
  close(): void {
    this.ended = true;
    this.waiting.length = 0;
  }

  private pump(): void {
    while (!this.ended && !this.congestedNow && this.waiting.length > 0) this.send(this.waiting.shift() as M);
  }
}
