/**
 * The upload page's pure logic: the bar for all files (bytes, percent, speed, ETA and counts
 * summed over the items' views), a paused item, and the result in a few lines.
 */
import { describe, expect, it } from 'vitest';
import type { HubEvent, HubEventBody } from '../../shared/messages.js';
import { summarizeResult } from '../../client/web/format.js';
import {
  aggregate, isWaiting, liveRate, present, presentAggregate, remainingSeconds, startingView, withCancelling, withConnectionLost, withEnd,
  withEvent, withPaused, type UploadView,
} from '../../client/web/view.js';

const MiB = 1024 * 1024;
const T0 = 1_800_000_000_000;
let eventId = 0;

function ev(uploadId: string, body: HubEventBody extends infer B ? (B extends HubEventBody ? Omit<B, 'uploadId'> : never) : never, at = T0): HubEvent {
  eventId += 1;
  return { ...body, id: eventId, uploadId, at } as HubEvent;
}

/** An upload page item of `size` bytes, `bytes` of them committed at `rate` bytes/s (half of the bar is the upload). */
function uploading(size: number, bytes: number, rate: number, now = T0): UploadView {
  let view = startingView(now, size);
  view = withEvent(view, ev('u', { type: 'uploading', bytes: 0 }), now);
  const percent = (bytes / size) * 50;
  return withEvent(view, ev('u', { type: 'progress', phase: 'upload', bytes, total: size, percent, bytesPerSecond: rate, etaSeconds: (size - bytes) / rate }), now);
}

function completed(size: number): UploadView {
  return withEnd(uploading(size, size, MiB), 'completed', T0);
}

describe('the bar for all files', () => {
  it('sums bytes and speeds, and averages the bars by size', () => {
    // 8 MiB at 25% (2 of 8 MiB uploaded: half of the upload half), 2 MiB completed.
    const sum = aggregate([uploading(8 * MiB, 4 * MiB, 2 * MiB), completed(2 * MiB)], T0);
    expect(sum.files).toBe(2);
    expect(sum.bytes).toBe(6 * MiB);
    expect(sum.total).toBe(10 * MiB);
    expect(sum.percent).toBeCloseTo((8 * 25 + 2 * 100) / 10);
    expect(sum.bytesPerSecond).toBe(2 * MiB);
    expect(sum.counts).toMatchObject({ uploading: 1, completed: 1 });
  });

  it('its ETA is the longest of the running bars, and counts down with them', () => {
    // Whole-bar ETAs, (100 - percent) × bytes / (percent × rate): 75·4/(25·2) = 6 s and 87.5·2/(12.5·1) = 14 s.
    const a = uploading(8 * MiB, 4 * MiB, 2 * MiB);
    const b = uploading(8 * MiB, 2 * MiB, MiB);
    expect(remainingSeconds(a, T0)).toBeCloseTo(6);
    expect(remainingSeconds(b, T0)).toBeCloseTo(14);
    expect(aggregate([a, b, completed(MiB)], T0).etaSeconds).toBeCloseTo(14);
    expect(aggregate([a, b], T0 + 2000).etaSeconds).toBeCloseTo(12);
    expect(presentAggregate(aggregate([a, b], T0 + 2000)).eta).toBe('12 s');
    // Once the longer one is done, the other's countdown is the whole.
    expect(aggregate([a, withEnd(b, 'completed', T0)], T0 + 2000).etaSeconds).toBeCloseTo(4);
  });

  it('says nothing of the ETA while any running file has none (queued, paused, waiting, just started)', () => {
    const a = uploading(8 * MiB, 4 * MiB, 2 * MiB);
    const queued = withEvent(uploading(MiB, MiB, MiB), ev('u', { type: 'queued', position: 2 }), T0);
    expect(aggregate([a, queued], T0).etaSeconds).toBeNull();
    expect(aggregate([a, queued], T0).counts).toMatchObject({ uploading: 1, queued: 1 });
    expect(aggregate([a, withPaused(uploading(MiB, 1, 1), true)], T0).etaSeconds).toBeNull();
    expect(aggregate([a, withConnectionLost(uploading(MiB, 1, 1))], T0).counts.waiting).toBe(1);
    expect(aggregate([a, startingView(T0, MiB)], T0).etaSeconds).toBeNull();
    expect(presentAggregate(aggregate([a, queued], T0)).eta).toBe('—');
  });

  it('leaves out files that will not complete, but counts them', () => {
    const failed = withEnd(uploading(100 * MiB, MiB, MiB), 'failed', T0);
    const cancelled = withEnd(uploading(50 * MiB, MiB, MiB), 'cancelled', T0);
    const sum = aggregate([completed(2 * MiB), failed, cancelled], T0);
    expect(sum.files).toBe(1);
    expect(sum.total).toBe(2 * MiB);
    expect(sum.percent).toBe(100);
    expect(sum.etaSeconds).toBeNull();
    expect(sum.bytesPerSecond).toBe(0);
    const shown = presentAggregate(sum);
    expect(shown.summary).toBe('1 completed, 1 failed, 1 cancelled');
    expect(shown.done).toBe(true);
    expect(shown.percentText).toBe('100%');
  });

  it('reads 100% only when every file it covers completed', () => {
    const processing = withEvent(uploading(MiB, MiB, MiB), ev('u', { type: 'processing' }), T0);
    const almost = withEvent(processing, ev('u', { type: 'progress', phase: 'processing', bytes: MiB, total: MiB, percent: 99.9, bytesPerSecond: 0, etaSeconds: 1 }), T0);
    const sum = aggregate([completed(MiB), almost], T0);
    expect(sum.percent).toBeLessThan(100);
    expect(presentAggregate(sum).percentText).toBe('99%');
    expect(presentAggregate(sum).done).toBe(false);
    expect(sum.counts.processing).toBe(1);
  });

  it('weighs empty files as one byte, so a batch of them still moves', () => {
    const sum = aggregate([completed(0), startingView(T0, 0)], T0);
    expect(sum.percent).toBe(50);
    expect(presentAggregate(sum).bytes).toBe('0 B of 0 B');
  });

  it('shows bytes of total, speed and a summary; nothing yet for no files', () => {
    const shown = presentAggregate(aggregate([uploading(8 * MiB, 3 * MiB, 1.5 * MiB)], T0));
    expect(shown.bytes).toBe('3.0 MiB of 8.0 MiB');
    expect(shown.rate).toBe('1.5 MiB/s');
    expect(shown.summary).toBe('1 uploading');
    const none = presentAggregate(aggregate([], T0));
    expect(none).toMatchObject({ percent: 0, summary: 'nothing yet', done: false, eta: '—', rate: '—' });
  });
});

describe('a paused item', () => {
  it('is still but not waiting: no speed, no ETA, badge and state `paused`', () => {
    const view = withPaused(uploading(8 * MiB, 2 * MiB, MiB), true);
    expect(liveRate(view)).toBe(0);
    expect(remainingSeconds(view, T0)).toBeNull();
    expect(isWaiting(withConnectionLost(view))).toBe(false);
    const shown = present(view, T0, 'waiting for connection');
    expect(shown).toMatchObject({ state: 'paused', badge: 'paused', rate: '—', eta: '—' });
    expect(shown.percent).toBeGreaterThan(0);
  });

  it('takes no estimate from the chunks still in flight, and moves again once resumed', () => {
    let view = withPaused(uploading(8 * MiB, 2 * MiB, MiB), true);
    view = withEvent(view, ev('u', { type: 'progress', phase: 'upload', bytes: 3 * MiB, total: 8 * MiB, percent: 18.75, bytesPerSecond: MiB, etaSeconds: 5 }), T0);
    expect(view.bytes).toBe(3 * MiB);
    expect(present(view, T0, '').eta).toBe('—');
    expect(present(view, T0, '').rate).toBe('—');
    view = withPaused(view, false);
    expect(present(view, T0, '').state).toBe('uploading');
    view = withEvent(view, ev('u', { type: 'progress', phase: 'upload', bytes: 4 * MiB, total: 8 * MiB, percent: 25, bytesPerSecond: MiB, etaSeconds: 4 }), T0);
    expect(present(view, T0, '').rate).toBe('1.0 MiB/s');
    expect(remainingSeconds(view, T0)).toBeGreaterThan(0);
  });

  it('ends like any other: a cancel or an end takes over the pause', () => {
    const paused = withPaused(uploading(8 * MiB, 2 * MiB, MiB), true);
    expect(present(withCancelling(paused), T0, '').state).toBe('cancelling');
    const ended = withEnd(paused, 'cancelled', T0);
    expect(ended.paused).toBe(false);
    expect(present(ended, T0, '').state).toBe('cancelled');
    expect(withPaused(ended, true)).toBe(ended);
  });
});

describe('the result in a few lines', () => {
  it('one line per stage, long hashes cut, nested values counted', () => {
    const sha256 = 'a'.repeat(64);
    expect(summarizeResult({ verify: { bytes: 12, sha256 }, import: { rows: 3, columns: ['a', 'b'] } })).toEqual([
      'verify: bytes 12, sha256 aaaaaaaaaaaa…',
      'import: rows 3, columns 2 items',
    ]);
  });

  it('bounds fields and lines, and says how many were left out', () => {
    expect(summarizeResult({ s: { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 } })).toEqual(['s: a 1, b 2, c 3, d 4, +2 more']);
    const many = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`stage${i}`, i]));
    const lines = summarizeResult(many);
    expect(lines).toHaveLength(7);
    expect(lines.at(-1)).toBe('+3 more');
    const text = 'x'.repeat(100);
    expect(summarizeResult({ note: text })[0]).toBe(`note: ${'x'.repeat(39)}…`);
  });

  it('scalars, null, empty objects and no result', () => {
    expect(summarizeResult(undefined)).toEqual([]);
    expect(summarizeResult(null)).toEqual(['—']);
    expect(summarizeResult(42)).toEqual(['42']);
    expect(summarizeResult([1])).toEqual(['1 item']);
    expect(summarizeResult({ gzip: {} })).toEqual(['gzip: empty']);
    expect(summarizeResult({ gzip: null, ok: true })).toEqual(['gzip: —', 'ok: true']);
  });
});
