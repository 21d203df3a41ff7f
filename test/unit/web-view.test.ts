/**
 * The pages' one event → view mapping (shared/view.ts, with the presentation in
 * client/web/view.ts): what the upload page and the dashboard show for every sequence of
 * events, statuses and connection changes, at any time. The reducer's own rules are in
 * view-reducer.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { HubEvent, HubEventBody, UploadStatus } from '../../shared/messages.js';
import { Ticker } from '../../client/web/refresh.js';
import {
  QUIET_MS, createdView, isDone, isQuiet, isWaiting, present, remainingSeconds, startingView, wholeBarEta, withCancelRefused, withCancelling,
  withConnectionLost, withEnd, withEvent, withStatus, type UploadView,
} from '../../client/web/view.js';

const MiB = 1024 * 1024;
const ID = 'AbCdEfGhIjKlMnOp';
const T0 = 1_800_000_000_000;
let eventId = 0;

function ev(body: HubEventBody extends infer B ? (B extends HubEventBody ? Omit<B, 'uploadId'> : never) : never, at = T0): HubEvent {
  eventId += 1;
  return { ...body, id: eventId, uploadId: ID, at } as HubEvent;
}

function status(fields: Partial<UploadStatus>): UploadStatus {
  return {
    id: ID, name: 'a.bin', size: 100 * MiB, mimeType: 'application/octet-stream', metadata: {}, owner: 'anonymous', state: 'uploading',
    bytes: 0, percent: 0, phase: 'upload', attached: true, createdAt: T0, updatedAt: T0, ...fields,
  };
}

/** A dashboard row that saw its upload start and move to 25% (half the bytes, stages to come). */
function uploadingHalfway(at = T0): UploadView {
  let view = withEvent(createdView(at), ev({ type: 'created', upload: status({ state: 'created', attached: false }) }), at);
  view = withEvent(view, ev({ type: 'uploading', bytes: 0 }), at);
  return withEvent(view, ev({ type: 'progress', bytes: 50 * MiB, total: 100 * MiB, percent: 25, phase: 'upload', bytesPerSecond: 10 * MiB, etaSeconds: 5 }), at);
}

const show = (view: UploadView, now = T0) => present(view, now, 'waiting for client');

describe('ETA: the rest of the whole bar, counting down', () => {
  it('while uploading, covers the stages still to come at the pace the upload sets', () => {
    // Half the bytes fill 25% of the bar (stages share the other 50%); 10 MiB/s moves the bar
    // 5%/s, so the remaining 75% take 15 s, not the 5 s the upload phase has left.
    expect(wholeBarEta({ phase: 'upload', percent: 25, bytes: 50 * MiB, bytesPerSecond: 10 * MiB, etaSeconds: 5 })).toBeCloseTo(15);
    // Without stages the upload is the whole bar.
    expect(wholeBarEta({ phase: 'upload', percent: 50, bytes: 50 * MiB, bytesPerSecond: 10 * MiB, etaSeconds: 5 })).toBeCloseTo(5);
    // Processing: the hub's estimate already runs to 100%.
    expect(wholeBarEta({ phase: 'processing', percent: 60, bytes: 100 * MiB, bytesPerSecond: 0, etaSeconds: 8 })).toBe(8);
    expect(wholeBarEta({ phase: 'upload', percent: 0, bytes: 0, bytesPerSecond: 0, etaSeconds: null })).toBeNull();
    expect(show(uploadingHalfway()).eta).toBe('15 s');
  });

  it('counts down between events and says nothing once the estimate has run out', () => {
    const view = uploadingHalfway();
    expect(remainingSeconds(view, T0)).toBeCloseTo(15);
    expect(show(view, T0 + 1000).eta).toBe('14 s');
    expect(show(view, T0 + 10_000).eta).toBe('5 s');
    expect(show(view, T0 + 14_500).eta).toBe('< 1 s');
    expect(show(view, T0 + 16_000).eta).toBe('—');
    expect(remainingSeconds(view, T0 + 16_000)).toBeNull();
  });

  it('keeps counting down through the end of the upload until processing measures its own, and knows nothing while queued', () => {
    let view = uploadingHalfway();
    view = withEvent(view, ev({ type: 'uploaded', bytes: 100 * MiB, sha256: 'a'.repeat(64) }), T0 + 5000);
    expect(show(view, T0 + 5000).eta).toBe('10 s');
    expect(show(view, T0 + 5000).rate).toBe('—');
    view = withEvent(view, ev({ type: 'processing' }), T0 + 5000);
    // A stage's rate is measured afresh: its first progress has no estimate yet.
    view = withEvent(view, ev({ type: 'progress', bytes: 100 * MiB, total: 100 * MiB, percent: 50, phase: 'processing', stage: 'scan', stagePercent: 0, bytesPerSecond: 0, etaSeconds: null }), T0 + 6000);
    expect(show(view, T0 + 6000).eta).toBe('9 s');
    view = withEvent(view, ev({ type: 'progress', bytes: 100 * MiB, total: 100 * MiB, percent: 60, phase: 'processing', stage: 'scan', stagePercent: 20, bytesPerSecond: 0, etaSeconds: 40 }), T0 + 7000);
    expect(show(view, T0 + 7000).eta).toBe('40 s');
    expect(show(view, T0 + 9000).eta).toBe('38 s');

    const queued = withEvent(withEvent(uploadingHalfway(), ev({ type: 'uploaded', bytes: 100 * MiB, sha256: 'a'.repeat(64) }), T0), ev({ type: 'queued', position: 2 }), T0);
    expect(show(queued).eta).toBe('—');
    expect(show(queued).badge).toBe('queued #2');
    expect(show(queued).queue).toBe('#2');
  });
});

describe('finished items', () => {
  it('a completed item says it is done, full, with no speed, ETA or stage percent', () => {
    let view = uploadingHalfway();
    view = withEvent(view, ev({ type: 'processing' }), T0);
    view = withEvent(view, ev({ type: 'progress', bytes: 100 * MiB, total: 100 * MiB, percent: 75, phase: 'processing', stage: 'scan', stagePercent: 50, bytesPerSecond: 0, etaSeconds: 3 }), T0);
    expect(show(view).phase).toBe('processing');
    expect(show(view).stage).toBe('scan 50%');
    view = withEvent(view, ev({ type: 'completed' }), T0 + 1000);
    const shown = show(view, T0 + 1000);
    expect(shown).toMatchObject({ state: 'completed', badge: 'completed', phase: 'done', rate: '—', eta: '—', stage: '—', queue: '—', percent: 100, percentText: '100%' });
    expect(isDone(view)).toBe(true);
  });

  it('an upload that completes with no stages shows no frozen speed', () => {
    let view = withEvent(createdView(T0), ev({ type: 'uploading', bytes: 0 }), T0);
    view = withEvent(view, ev({ type: 'progress', bytes: 50 * MiB, total: 100 * MiB, percent: 50, phase: 'upload', bytesPerSecond: 30 * MiB, etaSeconds: 2 }), T0);
    expect(show(view).rate).toBe('30 MiB/s');
    view = withEvent(view, ev({ type: 'progress', bytes: 100 * MiB, total: 100 * MiB, percent: 100, phase: 'upload', bytesPerSecond: 30 * MiB, etaSeconds: 0 }), T0);
    view = withEvent(view, ev({ type: 'uploaded', bytes: 100 * MiB, sha256: 'a'.repeat(64) }), T0);
    view = withEvent(view, ev({ type: 'completed' }), T0);
    expect(show(view)).toMatchObject({ phase: 'done', rate: '—', eta: '—' });
  });

  it('failed and cancelled items say how they ended and where, and nothing moves', () => {
    const failed = withEvent(uploadingHalfway(), ev({ type: 'failed', error: { code: 'ERR_STORAGE_FULL', message: 'full' } }), T0);
    expect(show(failed)).toMatchObject({ state: 'failed', badge: 'failed', phase: 'failed', rate: '—', eta: '—' });
    const cancelled = withEvent(withEvent(uploadingHalfway(), ev({ type: 'stage', stage: 'scan', index: 0, count: 1 }), T0), ev({ type: 'cancelled', stage: 'scan' }), T0);
    expect(show(cancelled)).toMatchObject({ state: 'cancelled', phase: 'cancelled', stage: 'scan', rate: '—', eta: '—' });
    expect(show(cancelled).percent).toBe(25);
  });

  it('terminal states are final: later events and statuses change nothing', () => {
    const done = withEvent(uploadingHalfway(), ev({ type: 'completed' }), T0);
    expect(withEvent(done, ev({ type: 'progress', bytes: 1, total: 100 * MiB, percent: 1, phase: 'upload', bytesPerSecond: 5, etaSeconds: 9 }), T0)).toBe(done);
    expect(withEvent(done, ev({ type: 'expired' }), T0)).toBe(done);
    expect(withStatus(done, status({ state: 'failed', error: { code: 'ERR_INTERNAL', message: 'x' } }), T0)).toBe(done);
  });
});

describe('ended while the page was away', () => {
  it('a status fetched after a reconnect ends the item in its real state', () => {
    let view = withEvent(uploadingHalfway(), ev({ type: 'processing' }), T0);
    view = withStatus(view, status({ state: 'completed', bytes: 100 * MiB, percent: 100, phase: 'processing', attached: false }), T0 + 60_000, T0 + 59_000);
    expect(show(view, T0 + 60_000)).toMatchObject({ state: 'completed', phase: 'done', rate: '—', eta: '—', percent: 100 });
    const failed = withStatus(uploadingHalfway(), status({ state: 'failed', error: { code: 'ERR_STORAGE', message: 'EIO', stage: 'scan' } }), T0);
    expect(show(failed)).toMatchObject({ state: 'failed', stage: 'scan' });
  });

  it('a hub that no longer knows the upload makes it `gone`, not a guessed state', () => {
    const gone = withEnd(uploadingHalfway(), 'gone', T0);
    expect(show(gone)).toMatchObject({ state: 'gone', badge: 'gone', phase: 'gone', rate: '—', eta: '—' });
    expect(isDone(gone)).toBe(true);
  });

  it('a status older than the events heard since does not take the view back', () => {
    const uploaded = withEvent(uploadingHalfway(), ev({ type: 'uploaded', bytes: 100 * MiB, sha256: 'a'.repeat(64) }), T0 + 2000);
    // Asked before the `uploaded` event, answered after it.
    const view = withStatus(uploaded, status({ state: 'uploading', bytes: 60 * MiB, percent: 30, attached: false }), T0 + 3000, T0 + 1000);
    expect(view.state).toBe('uploaded');
    expect(view.bytes).toBe(100 * MiB);
    expect(isWaiting(view)).toBe(false);
    // Even asked later, a status never moves the state backwards.
    expect(withStatus(uploaded, status({ state: 'uploading', attached: false }), T0 + 9000, T0 + 8000).state).toBe('uploaded');
  });

  it('the percent never goes back', () => {
    const view = withStatus(uploadingHalfway(), status({ state: 'uploading', bytes: 10 * MiB, percent: 5 }), T0 + 5000, T0 + 5000);
    expect(view.percent).toBe(25);
    expect(withEvent(view, ev({ type: 'progress', bytes: 10, total: 100 * MiB, percent: 3, phase: 'upload', bytesPerSecond: 1, etaSeconds: null }), T0).percent).toBe(25);
  });
});

describe('waiting for its client', () => {
  it('an upload whose writer went away waits, at no speed and with no ETA, until bytes move again', () => {
    const moving = uploadingHalfway();
    expect(show(moving)).toMatchObject({ badge: 'uploading', rate: '10 MiB/s', waiting: false });
    // Nothing heard for a while: the page asks, and the hub says nobody holds it.
    expect(isQuiet(moving, T0 + QUIET_MS - 1)).toBe(false);
    expect(isQuiet(moving, T0 + QUIET_MS)).toBe(true);
    const waiting = withStatus(moving, status({ state: 'uploading', bytes: 50 * MiB, percent: 25, attached: false }), T0 + QUIET_MS, T0 + QUIET_MS);
    expect(show(waiting, T0 + QUIET_MS)).toMatchObject({ state: 'uploading', waiting: true, badge: 'waiting for client', rate: '—', eta: '—' });
    expect(isQuiet(waiting, T0 + QUIET_MS + 1)).toBe(false);
    // Its client resumed: committed bytes mean a writer again.
    const back = withEvent(waiting, ev({ type: 'progress', bytes: 60 * MiB, total: 100 * MiB, percent: 30, phase: 'upload', bytesPerSecond: 8 * MiB, etaSeconds: 5 }), T0 + 9000);
    expect(show(back, T0 + 9000)).toMatchObject({ badge: 'uploading', waiting: false, rate: '8.0 MiB/s' });
  });

  it('a silent upload whose writer is still there stays uploading', () => {
    const view = withStatus(uploadingHalfway(), status({ state: 'uploading', bytes: 50 * MiB, percent: 25, attached: true }), T0 + QUIET_MS, T0 + QUIET_MS);
    expect(show(view, T0 + QUIET_MS)).toMatchObject({ badge: 'uploading', waiting: false });
  });

  it('a new upload is not waiting just because `created` is published before its creator attaches', () => {
    const view = withEvent(createdView(T0), ev({ type: 'created', upload: status({ state: 'created', attached: false }) }), T0);
    expect(isWaiting(view)).toBe(false);
    expect(show(view).badge).toBe('created');
    // ...but one that stays silent and unattached is.
    expect(isWaiting(withStatus(view, status({ state: 'created', attached: false }), T0 + QUIET_MS))).toBe(true);
  });

  it('only the upload phase waits for a client: processing goes on without one', () => {
    const processing = withEvent(withEvent(uploadingHalfway(), ev({ type: 'uploaded', bytes: 100 * MiB, sha256: 'a'.repeat(64) }), T0), ev({ type: 'processing' }), T0);
    const view = withStatus(processing, status({ state: 'processing', phase: 'processing', bytes: 100 * MiB, percent: 60, attached: false }), T0 + QUIET_MS);
    expect(isWaiting(view)).toBe(false);
    expect(isQuiet(view, T0 + 60_000)).toBe(false);
    expect(show(view).badge).toBe('processing');
  });

  it('on the upload page, a lost connection makes its uploads wait for it', () => {
    let view = withEvent(startingView(T0, 100 * MiB), ev({ type: 'uploading', bytes: 0 }), T0);
    view = withEvent(view, ev({ type: 'progress', bytes: 50 * MiB, total: 100 * MiB, percent: 50, phase: 'upload', bytesPerSecond: 10 * MiB, etaSeconds: 5 }), T0);
    view = withConnectionLost(view);
    expect(present(view, T0, 'waiting for connection')).toMatchObject({ badge: 'waiting for connection', rate: '—', eta: '—', waiting: true });
  });
});

describe('cancelling', () => {
  it('shows cancelling until the end is heard, and goes back if the cancel is refused', () => {
    const view = withCancelling(uploadingHalfway());
    expect(show(view)).toMatchObject({ state: 'cancelling', badge: 'cancelling', rate: '—', eta: '—' });
    expect(show(withEvent(view, ev({ type: 'uploaded', bytes: 100 * MiB, sha256: 'a'.repeat(64) }), T0)).state).toBe('cancelling');
    expect(show(withEvent(view, ev({ type: 'cancelled' }), T0)).state).toBe('cancelled');
    expect(show(withCancelRefused(view)).state).toBe('uploading');
  });
});

describe('Ticker', () => {
  it('ticks while needed and visible, and holds no timer otherwise', async () => {
    let visible = true;
    let ticks = 0;
    let onTick: () => void = () => undefined;
    const ticker = new Ticker(() => {
      ticks += 1;
      onTick();
      return ticks < 3;
    }, () => visible, 5);
    expect(ticker.running).toBe(false);
    const third = new Promise<void>((resolve) => (onTick = () => ticks === 3 && resolve()));
    ticker.update(true);
    expect(ticker.running).toBe(true);
    await third;
    // The third tick said it was no longer needed: the interval is gone.
    expect(ticker.running).toBe(false);

    visible = false;
    ticker.update(true);
    expect(ticker.running).toBe(false);
    visible = true;
    ticker.update(true);
    expect(ticker.running).toBe(true);
    ticker.stop();
    expect(ticker.running).toBe(false);
    expect(ticks).toBe(3);
  });
});
