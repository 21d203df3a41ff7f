/**
 * FlowControl fed crafted acks and times: the window starts small, grows by every byte
 * acknowledged until a rate is measured, then holds about 250 ms of that rate beyond the round
 * trip, within uploadWindow and a share of maxBufferedBytes.
 */
import { describe, expect, it } from 'vitest';
import { MIN_CHUNK_BYTES } from '../../shared/frame.js';
import { chunkLength } from '../../client/UploadTask.js';
import { FlowControl, MIN_RATE_WINDOW_BYTES, TARGET_QUEUE_MS, type FlowLimits, type UploadCredit } from '../../server/core/FlowControl.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const LIMITS: FlowLimits = { uploadWindow: 8 * MiB, maxBufferedBytes: 64 * MiB, minWindow: 256 * KiB, initialWindow: 64 * KiB };
const INITIAL_WINDOW_BYTES = LIMITS.initialWindow;

function attachedCredit(flow = new FlowControl(LIMITS)): UploadCredit {
  const credit = flow.credit();
  credit.setAttached(true);
  return credit;
}

interface LinkRun {
  /** Window granted with each ack, and when. */
  windows: Array<{ at: number; window: number }>;
  /** Bytes committed by the end. */
  committed: number;
  /** Most bytes ever sent and not yet committed. */
  maxInFlight: number;
}

/**
 * One upload over a simulated link: the client sends chunks (two fit in the window) whenever
 * the window allows; the link serializes them at `bytesPerSecond` and delivers them
 * `oneWayMs` later; the hub commits on arrival and its ack takes `oneWayMs` back.
 */
function runLink(credit: UploadCredit, { bytesPerSecond, oneWayMs, durationMs }: { bytesPerSecond: number; oneWayMs: number; durationMs: number }): LinkRun {
  const perMs = bytesPerSecond / 1000;
  const events: Array<{ at: number; kind: 'arrive' | 'ack'; end: number; window?: number; committed?: number }> = [];
  const push = (event: (typeof events)[number]) => {
    events.push(event);
    events.sort((a, b) => a.at - b.at);
  };
  const windows: LinkRun['windows'] = [];
  let now = 0;
  let linkFreeAt = 0;
  let sent = 0;
  let acked = 0;
  let committed = 0;
  let maxInFlight = 0;
  let window = 0;
  const first = credit.restart(0, now);
  windows.push({ at: now, window: first });
  // The first window travels to the client in `attached`.
  push({ at: oneWayMs, kind: 'ack', end: 0, window: first, committed: 0 });
  const send = () => {
    for (;;) {
      const length = chunkLength(MiB, window, acked + window - sent, Number.MAX_SAFE_INTEGER);
      if (length === 0) return;
      const start = Math.max(now, linkFreeAt);
      linkFreeAt = start + length / perMs;
      sent += length;
      maxInFlight = Math.max(maxInFlight, sent - committed);
      push({ at: linkFreeAt + oneWayMs, kind: 'arrive', end: sent });
    }
  };
  while (events.length > 0 && now <= durationMs) {
    const event = events.shift() as (typeof events)[number];
    now = event.at;
    if (event.kind === 'arrive') {
      committed = event.end;
      const granted = credit.ack(event.end, committed, now);
      windows.push({ at: now, window: granted });
      push({ at: now + oneWayMs, kind: 'ack', end: event.end, window: granted, committed });
    } else {
      acked = Math.max(acked, event.committed as number);
      window = event.window as number;
      send();
    }
  }
  return { windows, committed, maxInFlight };
}

const lastWindow = (run: LinkRun) => (run.windows.at(-1) as { window: number }).window;

describe('FlowControl', () => {
  it('starts small and grows by every byte acknowledged while nothing is measured', () => {
    const credit = attachedCredit();
    expect(credit.restart(0, 1000)).toBe(INITIAL_WINDOW_BYTES);
    // Acks within one sample span: no rate yet, so slow start adds what they acknowledge.
    expect(credit.ack(32 * KiB, 32 * KiB, 1010)).toBe(INITIAL_WINDOW_BYTES + 32 * KiB);
    expect(credit.ack(64 * KiB, 64 * KiB, 1020)).toBe(INITIAL_WINDOW_BYTES + 64 * KiB);
  });

  it('holds about 250 ms of a 1 MiB/s link beyond its round trip, so a cancel waits little', () => {
    const run = runLink(attachedCredit(), { bytesPerSecond: MiB, oneWayMs: 10, durationMs: 10_000 });
    // The link is kept busy...
    expect(run.committed).toBeGreaterThan(0.9 * 10 * MiB);
    // ...with about (250 ms + the round trip) of data queued, never seconds of it.
    const expected = MiB * (TARGET_QUEUE_MS + 20) / 1000;
    expect(lastWindow(run)).toBeGreaterThan(0.75 * expected);
    expect(lastWindow(run)).toBeLessThan(1.5 * expected);
    // Slow start overshoots for a round trip at most before the queue tells it the link is full.
    expect(run.maxInFlight).toBeLessThan(2.5 * expected);
  });

  it('grows fast on a fast link: 1 GiB/s with a 1 ms round trip reaches uploadWindow within 100 ms', () => {
    const run = runLink(attachedCredit(), { bytesPerSecond: 1024 * MiB, oneWayMs: 0.5, durationMs: 300 });
    const reached = run.windows.find((w) => w.window === LIMITS.uploadWindow);
    expect(reached?.at).toBeLessThan(100);
    expect(Math.max(...run.windows.map((w) => w.window))).toBe(LIMITS.uploadWindow);
  });

  it('fills a long link: 4 MiB/s with a 400 ms round trip is not starved by a 250 ms target', () => {
    const run = runLink(attachedCredit(), { bytesPerSecond: 4 * MiB, oneWayMs: 200, durationMs: 20_000 });
    // The bandwidth-delay product is 1.6 MiB; a window of 250 ms alone (1 MiB) would cap the rate near 2.5 MiB/s.
    expect(lastWindow(run)).toBeGreaterThan(1.6 * MiB);
    expect(run.committed / 20).toBeGreaterThan(0.8 * 4 * MiB);
  });

  it('follows the rate down when the link slows', () => {
    const credit = attachedCredit();
    runLink(credit, { bytesPerSecond: 8 * MiB, oneWayMs: 5, durationMs: 5_000 });
    const fast = credit.ack(0, 0, 5_001);
    // The same credit on a link a tenth as fast: acks of 100 KiB every 100 ms.
    let window = fast;
    let committed = 50 * MiB;
    credit.restart(committed, 10_000);
    for (let at = 10_100; at <= 15_000; at += 100) {
      committed += 100 * KiB;
      window = credit.ack(committed, committed, at);
    }
    expect(fast).toBeGreaterThan(2 * MiB);
    expect(window).toBeLessThan(400 * KiB);
  });

  it('shrinks to a couple of small chunks on a very slow link, never fewer than two', () => {
    const run = runLink(attachedCredit(), { bytesPerSecond: 16 * KiB, oneWayMs: 10, durationMs: 120_000 });
    expect(MIN_RATE_WINDOW_BYTES).toBe(2 * MIN_CHUNK_BYTES);
    expect(Math.min(...run.windows.map((w) => w.window))).toBeGreaterThanOrEqual(MIN_RATE_WINDOW_BYTES);
    expect(lastWindow(run)).toBeLessThanOrEqual(64 * KiB);
  });

  it('never grants more than uploadWindow', () => {
    const credit = attachedCredit(new FlowControl({ ...LIMITS, uploadWindow: 512 * KiB }));
    const run = runLink(credit, { bytesPerSecond: 1024 * MiB, oneWayMs: 1, durationMs: 200 });
    expect(Math.max(...run.windows.map((w) => w.window))).toBe(512 * KiB);
  });

  it('does not read a pause of the client as a slow link', () => {
    const credit = attachedCredit();
    let committed = 0;
    credit.restart(0, 0);
    let window = 0;
    for (let at = 100; at <= 2000; at += 100) window = credit.ack((committed += 200 * KiB), committed, at);
    // The client stops for 30 s (its source was slow), then goes on at the same pace.
    const after = credit.ack((committed += 200 * KiB), committed, 32_000);
    const next = credit.ack((committed += 200 * KiB), committed, 32_100);
    expect(after).toBeGreaterThan(0.7 * window);
    expect(next).toBeGreaterThan(0.7 * window);
  });

  it('starts over on a new writer: the window is small again', () => {
    const credit = attachedCredit();
    runLink(credit, { bytesPerSecond: 1024 * MiB, oneWayMs: 0.5, durationMs: 100 });
    expect(credit.restart(10 * MiB, 1_000_000)).toBe(INITIAL_WINDOW_BYTES);
  });

  it('shares maxBufferedBytes among attached uploads, counted as they attach and detach', () => {
    const flow = new FlowControl({ ...LIMITS, maxBufferedBytes: 16 * MiB });
    const credits = Array.from({ length: 8 }, () => flow.credit());
    for (const credit of credits) credit.setAttached(true);
    credits[0]?.setAttached(true); // twice: still one
    expect(flow.attachedUploads).toBe(8);
    expect(flow.share()).toBe(2 * MiB);
    const fast = credits[0] as UploadCredit;
    const run = runLink(fast, { bytesPerSecond: 1024 * MiB, oneWayMs: 0.5, durationMs: 200 });
    expect(Math.max(...run.windows.map((w) => w.window))).toBe(2 * MiB);
    for (const credit of credits.slice(1)) credit.setAttached(false);
    expect(flow.attachedUploads).toBe(1);
    expect(flow.share()).toBe(8 * MiB);
    // Never below minWindow however many share.
    const crowd = Array.from({ length: 1000 }, () => flow.credit());
    for (const credit of crowd) credit.setAttached(true);
    expect(flow.share()).toBe(256 * KiB);
  });
});

describe('chunkLength (client)', () => {
  it('takes at most half the window, down to MIN_CHUNK_BYTES, never past the window or the file', () => {
    expect(chunkLength(MiB, 8 * MiB, 8 * MiB, 100 * MiB)).toBe(MiB);
    expect(chunkLength(MiB, 300 * KiB, 300 * KiB, 100 * MiB)).toBe(150 * KiB);
    expect(chunkLength(MiB, 20 * KiB, 20 * KiB, 100 * MiB)).toBe(MIN_CHUNK_BYTES);
    expect(chunkLength(MiB, 8 * KiB, 8 * KiB, 100 * MiB)).toBe(8 * KiB);
    expect(chunkLength(MiB, 8 * MiB, 8 * MiB, 1000)).toBe(1000);
  });

  it('sends what is left of the window rather than leave it idle, unless that is below a sane chunk', () => {
    expect(chunkLength(MiB, 300 * KiB, 100 * KiB, 100 * MiB)).toBe(100 * KiB);
    expect(chunkLength(MiB, 300 * KiB, 10 * KiB, 100 * MiB)).toBe(0);
    expect(chunkLength(MiB, 300 * KiB, 0, 100 * MiB)).toBe(0);
    expect(chunkLength(MiB, 300 * KiB, -5, 100 * MiB)).toBe(0);
  });
});
