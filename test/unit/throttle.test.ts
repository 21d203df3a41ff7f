import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HubEvent, ProgressEvent } from '../../shared/messages.js';
import { EventThrottle, SETTLE_MS } from '../../shared/throttle.js';

let nextId = 1;
function progress(percent: number, uploadId = 'upload-aaaa', phase: ProgressEvent['phase'] = 'upload'): ProgressEvent {
  return { id: nextId++, at: 0, uploadId, type: 'progress', bytes: percent, total: 100, percent, phase, bytesPerSecond: 0, etaSeconds: null };
}
function state(type: 'completed' | 'processing', uploadId = 'upload-aaaa'): HubEvent {
  return { id: nextId++, at: 0, uploadId, type } as HubEvent;
}

describe('EventThrottle', () => {
  let out: HubEvent[];
  let throttle: EventThrottle;
  let blocked: boolean;
  beforeEach(() => {
    vi.useFakeTimers();
    out = [];
    blocked = false;
    throttle = new EventThrottle((e) => out.push(e), { intervalMs: 100, minStepPercent: 1 }, () => blocked);
  });
  afterEach(() => {
    throttle.close();
    vi.useRealTimers();
  });

  it('passes the first progress, holds the rest to one per interval, coalesced to the latest', () => {
    throttle.push(progress(1));
    throttle.push(progress(5));
    throttle.push(progress(9));
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([1]);
    vi.advanceTimersByTime(100);
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([1, 9]);
    expect(throttle.pendingTimers).toBe(0);
  });

  it('never sends a step under minStepPercent, but always the 100% one', () => {
    throttle.push(progress(10));
    vi.advanceTimersByTime(500);
    throttle.push(progress(10.5));
    vi.advanceTimersByTime(500);
    throttle.push(progress(100));
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([10, 100]);
  });

  it('sends progress held for its small step once nothing newer came for SETTLE_MS (a stalled upload shows where it stopped)', () => {
    throttle.push(progress(10));
    throttle.push(progress(10.5));
    vi.advanceTimersByTime(SETTLE_MS - 1);
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([10]);
    throttle.push(progress(10.7));
    vi.advanceTimersByTime(SETTLE_MS - 1);
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([10]);
    vi.advanceTimersByTime(1);
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([10, 10.7]);
    expect(throttle.pendingTimers).toBe(0);
    // A big enough step still goes at the interval, not at the settle time.
    throttle.push(progress(10.8));
    vi.advanceTimersByTime(100);
    throttle.push(progress(20));
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([10, 10.7, 20]);
  });

  it('sends the first progress of a new phase at once', () => {
    throttle.push(progress(50));
    throttle.push(progress(51, 'upload-aaaa', 'processing'));
    expect(out).toHaveLength(2);
  });

  it('flushes held progress before a state event and never drops the state event', () => {
    throttle.push(progress(1));
    throttle.push(progress(40));
    throttle.push(state('completed'));
    expect(out.map((e) => e.type)).toEqual(['progress', 'progress', 'completed']);
    expect(throttle.trackedUploads).toBe(0);
  });

  it('holds progress while the consumer is blocked and sends only the latest on flush', () => {
    throttle.push(progress(1));
    blocked = true;
    for (let p = 2; p < 90; p++) {
      vi.advanceTimersByTime(150);
      throttle.push(progress(p));
    }
    expect(out).toHaveLength(1);
    blocked = false;
    throttle.flush();
    expect(out.map((e) => (e as ProgressEvent).percent)).toEqual([1, 89]);
  });

  it('throttles each upload on its own', () => {
    throttle.push(progress(1, 'upload-aaaa'));
    throttle.push(progress(1, 'upload-bbbb'));
    expect(out).toHaveLength(2);
  });

  it('leaves no timer after close', () => {
    throttle.push(progress(1));
    throttle.push(progress(50));
    expect(throttle.pendingTimers).toBe(1);
    throttle.close();
    expect(throttle.pendingTimers).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(out).toHaveLength(1);
  });
});
