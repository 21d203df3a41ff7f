/**
 * Flow control: how many bytes an upload may have in flight (granted by the hub, not yet
 * written). Pure: it is fed committed offsets and times and answers with windows.
 *
 * A window holds about TARGET_QUEUE_MS of the upload's measured rate beyond its round trip.
 * That keeps the link busy while little is queued ahead of a cancel: whatever the client sent
 * before it, at most a window, reaches the hub within about a quarter of a second. Nothing is
 * measured when a writer attaches, so the window starts at `initialWindow` and grows by every
 * byte acknowledged (doubling each round trip, as TCP's slow start does) until the round trip
 * shows a queue of the target building up: the link is full, and from then on the window
 * follows the rate. It never passes `uploadWindow` nor the upload's share of
 * `maxBufferedBytes`, which the attached uploads split between them.
 *
 * Per ack the work is constant: one rate sample, one round-trip probe, one share.
 *
 * @example
 * const flow = new FlowControl({ uploadWindow: 8 * MiB, maxBufferedBytes: 64 * MiB, minWindow: 256 * KiB, initialWindow: 64 * KiB });
 * const credit = flow.credit();
 * credit.setAttached(true);
 * let window = credit.restart(committed, Date.now());        // in `attached`
 * window = credit.ack(chunkEnd, committed, Date.now());      // in each `ack`
 */
import { MIN_CHUNK_BYTES } from '../../shared/frame.js';

export interface FlowLimits {
  /** Most one upload may have in flight, in bytes (option uploadWindow). */
  uploadWindow: number;
  /** Most all uploads together may have in flight, in bytes (option maxBufferedBytes). */
  maxBufferedBytes: number;
  /** Least share of maxBufferedBytes an attached upload gets however many share it, in bytes (option minWindow). */
  minWindow: number;
  /** A writer's first window, before anything is measured, in bytes (option initialWindow). */
  initialWindow: number;
}

/** What a window holds beyond the round trip, in ms of the measured rate. */
export const TARGET_QUEUE_MS = 250;
/** No rate asks for less than two of the smallest chunks, so a slow upload still keeps one in flight while the next is sent. */
export const MIN_RATE_WINDOW_BYTES = 2 * MIN_CHUNK_BYTES;
/** A rate sample spans at least this long (and a round trip), so chunks committed in one write do not read as a burst. */
const SAMPLE_MS = 50;
/** A gap between acks this long (and two round trips) means the client had nothing to send; it is no measure of the link. */
const IDLE_MS = 1000;
/** Weight of a new rate sample against the estimate so far. */
const RATE_GAIN = 0.5;

/** The hub-wide part: the limits, and how many uploads share maxBufferedBytes. */
export class FlowControl {
  private attached = 0;

  constructor(readonly limits: FlowLimits) {}

  /** A new upload's credit, counted against the budget while attached. */
  credit(): UploadCredit {
    return new UploadCredit(this);
  }

  /** Uploads that have a writer now. */
  get attachedUploads(): number {
    return this.attached;
  }

  /** The most one attached upload may have in flight so that all of them fit in maxBufferedBytes. */
  share(): number {
    const { uploadWindow, maxBufferedBytes, minWindow } = this.limits;
    return Math.min(uploadWindow, Math.max(minWindow, Math.floor(maxBufferedBytes / Math.max(1, this.attached))));
  }

  /** @internal */
  count(delta: 1 | -1): void {
    this.attached = Math.max(0, this.attached + delta);
  }
}

/** One upload's window. Offsets are the upload's byte offsets; times are ms (Date.now()). */
export class UploadCredit {
  private attached = false;
  /** Slow start: the window grows by every byte acknowledged until a queue of the target builds up. */
  private slowStart = true;
  private startWindow: number;
  /** Committed bytes per ms; 0 until the first sample. */
  private rate = 0;
  /** Shortest time from granting credit to the commit of the chunk sent on it, in ms. */
  private roundTripMs = Number.POSITIVE_INFINITY;
  private committed = 0;
  private sampleFrom = 0;
  private sampleAt = 0;
  private lastAckAt = 0;
  /** The highest end offset granted so far. */
  private granted = 0;
  /** One grant timed at a time: credit (from, to] granted at `at`. */
  private probe: { from: number; to: number; at: number } | undefined;

  constructor(private readonly flow: FlowControl) {
    this.startWindow = flow.limits.initialWindow;
  }

  /** The upload got or lost its writer: only attached uploads share maxBufferedBytes. */
  setAttached(attached: boolean): void {
    if (attached === this.attached) return;
    this.attached = attached;
    this.flow.count(attached ? 1 : -1);
  }

  /**
   * A writer (re)attached with `committed` bytes written: a new connection may take another
   * path, so measuring starts over. Returns the first window.
   */
  restart(committed: number, now: number): number {
    this.slowStart = true;
    this.startWindow = this.flow.limits.initialWindow;
    this.rate = 0;
    this.roundTripMs = Number.POSITIVE_INFINITY;
    this.probe = undefined;
    this.committed = committed;
    this.sampleFrom = committed;
    this.sampleAt = now;
    this.lastAckAt = now;
    this.granted = committed;
    return this.grant(now);
  }

  /** The chunk ending at `end` is written and the upload's committed offset is `committed`. Returns the window to grant. */
  ack(end: number, committed: number, now: number): number {
    this.timeProbe(end, now);
    const fresh = Math.max(0, committed - this.committed);
    this.committed = Math.max(this.committed, committed);
    if (now - this.lastAckAt > Math.max(IDLE_MS, 2 * this.finiteRoundTrip())) {
      // The client had nothing to send for a while: measuring starts again from here.
      this.sampleFrom = this.committed;
      this.sampleAt = now;
    }
    this.lastAckAt = now;
    const elapsed = now - this.sampleAt;
    // A sample spans a round trip at least: acks come in bursts of one window per round trip.
    if (elapsed >= Math.max(SAMPLE_MS, this.finiteRoundTrip())) {
      const sample = (this.committed - this.sampleFrom) / elapsed;
      this.rate = this.rate === 0 ? sample : this.rate + (sample - this.rate) * RATE_GAIN;
      this.sampleFrom = this.committed;
      this.sampleAt = now;
    }
    if (this.slowStart) this.startWindow = Math.min(this.startWindow + fresh, this.flow.limits.uploadWindow);
    return this.grant(now);
  }

  /** About TARGET_QUEUE_MS of the rate beyond the round trip: the link stays busy and little queues. */
  private rateWindow(): number {
    if (this.rate === 0) return 0;
    return Math.max(MIN_RATE_WINDOW_BYTES, this.rate * (TARGET_QUEUE_MS + this.finiteRoundTrip()));
  }

  /** The shortest round trip seen, 0 until one is. */
  private finiteRoundTrip(): number {
    return Number.isFinite(this.roundTripMs) ? this.roundTripMs : 0;
  }

  private size(): number {
    const wanted = this.slowStart ? Math.max(this.startWindow, this.rateWindow()) : this.rateWindow();
    return Math.floor(Math.min(wanted, this.flow.share()));
  }

  private grant(now: number): number {
    const window = this.size();
    const limit = this.committed + window;
    if (limit > this.granted) {
      this.probe ??= { from: this.granted, to: limit, at: now };
      this.granted = limit;
    }
    return window;
  }

  /**
   * A chunk that ends past the timed grant's start could only be sent once that grant arrived;
   * if it also ends within it, the time since the grant is one round trip (plus whatever
   * queued ahead of it: the shortest seen is the one that counts).
   */
  private timeProbe(end: number, now: number): void {
    const probe = this.probe;
    if (!probe || end <= probe.from) return;
    if (end <= probe.to) {
      const roundTrip = now - probe.at;
      this.roundTripMs = Math.min(this.roundTripMs, roundTrip);
      // A round trip that grew by the target is the link's queue at the target: the link is
      // full, and from here the window follows the rate.
      if (this.slowStart && this.rate > 0 && roundTrip > this.roundTripMs + TARGET_QUEUE_MS) this.slowStart = false;
    }
    this.probe = undefined;
  }
}
