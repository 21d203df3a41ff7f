/**
 * The one event/status -> view reducer (shared/view.ts) that the client's upload handle, its
 * watcher, the upload page and the dashboard all run: the bar never goes back, a terminal state
 * is final, a status newer than what was heard (after a reconnect) replaces the view, and the
 * stage fields follow the stages.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HubEvent, HubEventBody, UploadStatus } from '../../shared/messages.js';
import {
  createdView, isDone, isWaiting, reduce, startingView, withConnectionLost, withEvent, withStatus, type UploadView, type ViewState,
} from '../../shared/view.js';
import { FUZZ_SEED, hubEvent as anyEvent, uploadStatus as anyStatus } from '../fuzzArbitraries.js';

const MiB = 1024 * 1024;
const ID = 'AbCdEfGhIjKlMnOp';
const T0 = 1_800_000_000_000;
let eventId = 0;

type Body = HubEventBody extends infer B ? (B extends HubEventBody ? Omit<B, 'uploadId'> : never) : never;

function ev(body: Body, at = T0): HubEvent {
  eventId += 1;
  return { ...body, id: eventId, uploadId: ID, at } as HubEvent;
}

function status(fields: Partial<UploadStatus>): UploadStatus {
  return {
    id: ID, name: 'a.bin', size: 100 * MiB, mimeType: 'application/octet-stream', metadata: {}, owner: 'anonymous', state: 'uploading',
    bytes: 0, percent: 0, phase: 'upload', attached: true, createdAt: T0, updatedAt: T0, ...fields,
  };
}

const progress = (fields: Partial<Extract<HubEvent, { type: 'progress' }>>) =>
  ev({ type: 'progress', bytes: 0, total: 100 * MiB, percent: 0, phase: 'upload', bytesPerSecond: 0, etaSeconds: null, ...fields });

/** Applies inputs in order, a status asked for at the moment it is applied. */
function replay(view: UploadView, inputs: ReadonlyArray<HubEvent | UploadStatus>, now = T0): UploadView {
  return inputs.reduce((current, input) => reduce(current, input, now), view);
}

/** The order states move in: what "a state never goes back" means. */
const ORDER: Record<ViewState, number> = {
  starting: 0, created: 1, uploading: 2, uploaded: 3, queued: 4, processing: 5, completed: 6, failed: 6, cancelled: 6, expired: 6, gone: 6,
};

describe('the bar never goes back', () => {
  it('a late progress event and an older status leave the percent where it was', () => {
    let view = replay(createdView(T0), [ev({ type: 'uploading', bytes: 0 }), progress({ bytes: 40 * MiB, percent: 40 })]);
    view = reduce(view, progress({ bytes: 30 * MiB, percent: 30 }), T0 + 10);
    expect(view.percent).toBe(40);
    view = reduce(view, status({ bytes: 20 * MiB, percent: 20 }), T0 + 20, T0 - 1_000);
    expect(view).toMatchObject({ percent: 40, state: 'uploading' });
  });

  it('whatever arrives, in any order: the percent never falls and the state never goes back', () => {
    const input = fc.oneof(anyEvent.map((event) => ({ ...event, uploadId: ID })), anyStatus.map((upload) => ({ ...upload, id: ID })));
    fc.assert(
      fc.property(fc.array(fc.tuple(input, fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: -5_000, max: 0 })), { maxLength: 40 }), (steps) => {
        let view = createdView(T0);
        let now = T0;
        for (const [next, later, askedBefore] of steps) {
          now += later;
          const before = view;
          view = reduce(view, next, now, now + askedBefore);
          expect(view.percent).toBeGreaterThanOrEqual(before.percent);
          expect(ORDER[view.state]).toBeGreaterThanOrEqual(ORDER[before.state]);
          if (isDone(before)) expect(view).toBe(before);
        }
      }),
      { seed: FUZZ_SEED, numRuns: 300 },
    );
  });
});

describe('terminal states are final', () => {
  it('completed is a full, still bar that nothing changes afterwards', () => {
    const done = replay(createdView(T0), [
      ev({ type: 'uploading', bytes: 0 }),
      progress({ bytes: 60 * MiB, percent: 60, bytesPerSecond: MiB, etaSeconds: 40 }),
      ev({ type: 'completed' }),
    ]);
    expect(done).toMatchObject({ state: 'completed', percent: 100, bytes: 100 * MiB, bytesPerSecond: 0, eta: null, queuePosition: undefined });
    const after = replay(done, [
      ev({ type: 'failed', error: { code: 'ERR_INTERNAL', message: 'late' } }),
      progress({ percent: 10 }),
      status({ state: 'uploading', percent: 5 }),
      status({ state: 'expired' }),
    ]);
    expect(after).toBe(done);
  });

  it('failed, cancelled and expired keep the bar where it stopped, and keep the stage they ended in', () => {
    const processing = replay(createdView(T0), [
      ev({ type: 'processing' }),
      ev({ type: 'stage', stage: 'scan', index: 0, count: 2 }),
      progress({ phase: 'processing', bytes: 100 * MiB, percent: 70, stage: 'scan', stagePercent: 40 }),
    ]);
    const failed = reduce(processing, ev({ type: 'failed', error: { code: 'ERR_STAGE_FAILED', message: 'bad', stage: 'scan' } }), T0);
    expect(failed).toMatchObject({ state: 'failed', percent: 70, stage: 'scan', stagePercent: 40 });
    expect(reduce(failed, ev({ type: 'completed' }), T0)).toBe(failed);
    expect(reduce(processing, ev({ type: 'cancelled', stage: 'scan' }), T0)).toMatchObject({ state: 'cancelled', percent: 70, stage: 'scan' });
    expect(reduce(processing, status({ state: 'expired', percent: 70 }), T0)).toMatchObject({ state: 'expired', percent: 70 });
  });

  it('a terminal status is taken even when asked for before the last event', () => {
    const moving = replay(createdView(T0), [ev({ type: 'uploading', bytes: 0 }), progress({ bytes: MiB, percent: 1 })], T0 + 5_000);
    expect(reduce(moving, status({ state: 'cancelled' }), T0 + 6_000, T0)).toMatchObject({ state: 'cancelled' });
  });
});

describe('a status after a reconnect replaces the view', () => {
  it('takes the state, bytes, stage and writer the hub reports now, and the bar only forward', () => {
    let view = replay(startingView(T0, 100 * MiB), [
      status({ state: 'created', attached: true }),
      ev({ type: 'uploading', bytes: 0 }),
      progress({ bytes: 25 * MiB, percent: 25, bytesPerSecond: 5 * MiB, etaSeconds: 15 }),
    ]);
    view = withConnectionLost(view);
    expect(isWaiting(view)).toBe(true);
    // Meanwhile the bytes arrived through another connection and processing began.
    const now = T0 + 10_000;
    view = reduce(view, status({ state: 'processing', phase: 'processing', bytes: 100 * MiB, percent: 70, stage: 'index', stagePercent: 40, attached: false }), now);
    expect(view).toMatchObject({
      state: 'processing', phase: 'processing', bytes: 100 * MiB, percent: 70, stage: 'index', stagePercent: 40, attached: false, bytesPerSecond: 0, heardAt: now,
    });
    expect(isWaiting(view)).toBe(false);
  });

  it('a queued upload comes back with its queue position, and loses it once processing', () => {
    const view = reduce(createdView(T0), status({ state: 'queued', bytes: 100 * MiB, percent: 50, queuePosition: 3 }), T0);
    expect(view).toMatchObject({ state: 'queued', queuePosition: 3, eta: null });
    expect(reduce(view, ev({ type: 'processing' }), T0)).toMatchObject({ state: 'processing', queuePosition: undefined });
  });

  it('a status asked for before the last event does not undo it (only a higher percent is taken)', () => {
    const view = replay(createdView(T0), [ev({ type: 'processing' }), ev({ type: 'stage', stage: 'index', index: 1, count: 2 })], T0 + 100);
    // Asked for while the first stage ran; it arrives after the second started.
    const stale = reduce(view, status({ state: 'processing', phase: 'processing', bytes: 100 * MiB, percent: 80, stage: 'parse', stagePercent: 90 }), T0 + 200, T0);
    expect(stale).toMatchObject({ state: 'processing', phase: 'processing', stage: 'index', stagePercent: 0, percent: 80 });
    // Nor one of a state behind the view's, whenever it was asked for.
    expect(reduce(view, status({ state: 'uploading', bytes: MiB }), T0 + 300)).toMatchObject({ state: 'processing', stage: 'index' });
  });
});

describe('stage fields', () => {
  it('follow the stages: a stage starts at 0%, progress moves it, completion fills it', () => {
    let view = replay(createdView(T0), [ev({ type: 'uploaded', bytes: 100 * MiB, sha256: 'a'.repeat(64) }), ev({ type: 'processing' })]);
    expect(view).toMatchObject({ stage: undefined, stagePercent: undefined });
    view = reduce(view, ev({ type: 'stage', stage: 'parse', index: 0, count: 2 }), T0);
    expect(view).toMatchObject({ stage: 'parse', stagePercent: 0 });
    view = reduce(view, progress({ phase: 'processing', bytes: 100 * MiB, percent: 60, stage: 'parse', stagePercent: 50 }), T0);
    expect(view).toMatchObject({ stage: 'parse', stagePercent: 50, percent: 60 });
    view = reduce(view, ev({ type: 'stage', stage: 'index', index: 1, count: 2 }), T0);
    expect(view).toMatchObject({ stage: 'index', stagePercent: 0, percent: 60 });
    view = reduce(view, ev({ type: 'completed' }), T0);
    expect(view).toMatchObject({ stage: 'index', stagePercent: 100, percent: 100 });
  });

  it('upload-phase progress carries no stage', () => {
    const view = reduce(createdView(T0), progress({ phase: 'upload', bytes: MiB, percent: 1, stage: 'stray', stagePercent: 5 }), T0);
    expect(view).toMatchObject({ stage: undefined, stagePercent: undefined });
  });
});

it('reduce is withEvent for an event and withStatus for a status', () => {
  const view = createdView(T0);
  const event = progress({ bytes: MiB, percent: 1 });
  expect(reduce(view, event, T0 + 1)).toEqual(withEvent(view, event, T0 + 1));
  const upload = status({ state: 'queued', queuePosition: 2 });
  expect(reduce(view, upload, T0 + 1, T0)).toEqual(withStatus(view, upload, T0 + 1, T0));
});
