/**
 * The dashboard's pure logic: throughput over a time window (client/web/throughput.ts), sorting,
 * filtering, step durations and the hour's tally (client/web/board.ts), the chart's scale and
 * the formats it adds.
 */
import { describe, expect, it } from 'vitest';
import {
  compareEntries, DEFAULT_SORT, durationOf, matchesFilter, nextSort, NO_FILTER, OutcomeTally, sortEntries, timeline, type BoardEntry, type Journal,
} from '../../client/web/board.js';
import { niceScale } from '../../client/web/chart.js';
import { formatDuration, formatMebibytesPerSecond } from '../../client/web/format.js';
import { ThroughputSeries } from '../../client/web/throughput.js';
import { createdView, liveRate, withEvent, withStatus } from '../../client/web/view.js';
import type { HubEvent, UploadStatus } from '../../shared/messages.js';

const MiB = 1024 * 1024;
/** A whole second, so buckets line up with the numbers below. */
const T0 = 1_800_000_000_000;

describe('ThroughputSeries: bytes per second over the last minutes', () => {
  it('counts each progress event\'s growth in the second it was heard, and leaves out the second under way', () => {
    const series = new ThroughputSeries(T0);
    series.baseline('a', 0);
    expect(series.record('a', MiB, T0 + 200)).toBe(MiB);
    expect(series.record('a', 3 * MiB, T0 + 900)).toBe(2 * MiB);
    expect(series.record('a', 4 * MiB, T0 + 1500)).toBe(MiB);
    // Still in the second that started at T0 + 1000: only the first second is whole.
    expect(series.points(T0 + 1999)).toEqual([{ at: T0, bytesPerSecond: 3 * MiB }]);
    expect(series.points(T0 + 3000)).toEqual([
      { at: T0, bytesPerSecond: 3 * MiB },
      { at: T0 + 1000, bytesPerSecond: MiB },
      { at: T0 + 2000, bytesPerSecond: 0 },
    ]);
  });

  it('adds uploads together', () => {
    const series = new ThroughputSeries(T0);
    series.baseline('a', 0);
    series.baseline('b', 5 * MiB);
    series.record('a', MiB, T0 + 100);
    series.record('b', 7 * MiB, T0 + 600);
    expect(series.points(T0 + 1000)).toEqual([{ at: T0, bytesPerSecond: 3 * MiB }]);
  });

  it('takes bytes from a status, or from an upload first heard of mid-way, as a starting point, not a burst', () => {
    const series = new ThroughputSeries(T0);
    series.baseline('a', 50 * MiB);
    expect(series.record('a', 51 * MiB, T0 + 100)).toBe(MiB);
    // First heard of through a progress event: its bytes so far were sent before the page listened.
    expect(series.record('b', 80 * MiB, T0 + 200)).toBe(0);
    expect(series.record('b', 82 * MiB, T0 + 300)).toBe(2 * MiB);
    expect(series.points(T0 + 1000)).toEqual([{ at: T0, bytesPerSecond: 3 * MiB }]);
  });

  it('never counts a byte twice: an older status does not take the starting point back', () => {
    const series = new ThroughputSeries(T0);
    series.baseline('a', 0);
    series.record('a', 6 * MiB, T0 + 100);
    // The list was asked for before that event and answers after it.
    series.baseline('a', 4 * MiB);
    expect(series.record('a', 7 * MiB, T0 + 200)).toBe(MiB);
    // After a reconnect the snapshot is newer: what was committed meanwhile is not throughput of any second.
    series.baseline('a', 20 * MiB);
    expect(series.record('a', 21 * MiB, T0 + 300)).toBe(MiB);
    expect(series.points(T0 + 1000)).toEqual([{ at: T0, bytesPerSecond: 8 * MiB }]);
  });

  it('counts bytes heard before the first whole second in that second, never drops them', () => {
    const series = new ThroughputSeries(T0 + 500);
    series.baseline('a', 0);
    series.record('a', MiB, T0 + 700);
    expect(series.points(T0 + 2000)).toEqual([{ at: T0 + 1000, bytesPerSecond: MiB }]);
  });

  it('keeps the window: older seconds drop out, and nothing is drawn from before the page listened', () => {
    const series = new ThroughputSeries(T0 + 500, { windowMs: 10_000 });
    series.baseline('a', 0);
    series.record('a', MiB, T0 + 1200);
    // The page started listening half-way through T0's second: that second is not drawn.
    expect(series.points(T0 + 3000).map((point) => point.at)).toEqual([T0 + 1000, T0 + 2000]);
    expect(series.hasData(T0 + 3000)).toBe(true);
    const later = series.points(T0 + 60_000);
    expect(later).toHaveLength(10);
    expect(later[0]?.at).toBe(T0 + 50_000);
    expect(later.every((point) => point.bytesPerSecond === 0)).toBe(true);
    expect(series.hasData(T0 + 60_000)).toBe(false);
  });

  it('forgets an upload that ended; a rewind counts nothing', () => {
    const series = new ThroughputSeries(T0);
    series.baseline('a', 0);
    series.record('a', 2 * MiB, T0 + 100);
    expect(series.record('a', MiB, T0 + 200)).toBe(0);
    expect(series.record('a', 2 * MiB, T0 + 300)).toBe(MiB);
    series.forget('a');
    expect(series.record('a', 10 * MiB, T0 + 400)).toBe(0);
    expect(series.points(T0 + 1000)).toEqual([{ at: T0, bytesPerSecond: 3 * MiB }]);
  });

  it('bucket width: a point is the bytes of its bucket as a rate per second', () => {
    const series = new ThroughputSeries(T0, { bucketMs: 500 });
    series.baseline('a', 0);
    series.record('a', MiB, T0 + 100);
    expect(series.points(T0 + 500)).toEqual([{ at: T0, bytesPerSecond: 2 * MiB }]);
  });
});

function entry(fields: Partial<BoardEntry> & { id: string }): BoardEntry {
  return {
    name: `${fields.id}.bin`, owner: 'anonymous', size: 100, state: 'completed', stage: undefined, percent: 100, bytes: 100, speed: 0, eta: null,
    createdAt: T0, durationMs: 1000, errorCode: undefined, errorMessage: undefined, ...fields,
  };
}

const ids = (entries: BoardEntry[]) => entries.map((item) => item.id);

describe('sorting the table', () => {
  const a = entry({ id: 'a', name: 'b-file.bin', size: 300, createdAt: T0 + 1, owner: 'bob', state: 'uploading', speed: 5, eta: 30 });
  const b = entry({ id: 'b', name: 'a-file.bin', size: 10, createdAt: T0 + 3, owner: 'alice', state: 'failed', errorCode: 'ERR_STORAGE', errorMessage: 'disk' });
  const c = entry({ id: 'c', name: 'file10.bin', size: 100, createdAt: T0 + 2, owner: 'alice', state: 'cancelled' });
  const d = entry({ id: 'd', name: 'file9.bin', size: undefined, createdAt: undefined, owner: 'carol', state: 'processing', eta: 5 });
  const all = [a, b, c, d];

  it('newest first by default; uploads whose creation is unknown last', () => {
    expect(DEFAULT_SORT).toEqual({ column: 'created', direction: 'descending' });
    expect(ids(sortEntries(all, DEFAULT_SORT))).toEqual(['b', 'c', 'a', 'd']);
  });

  it('by a number either way, unknown values last in both directions', () => {
    expect(ids(sortEntries(all, { column: 'size', direction: 'ascending' }))).toEqual(['b', 'c', 'a', 'd']);
    expect(ids(sortEntries(all, { column: 'size', direction: 'descending' }))).toEqual(['a', 'c', 'b', 'd']);
    // Only moving uploads have a speed; only some have an ETA or an error.
    expect(ids(sortEntries(all, { column: 'speed', direction: 'descending' }))[0]).toBe('a');
    expect(ids(sortEntries(all, { column: 'eta', direction: 'ascending' }))).toEqual(['d', 'a', 'b', 'c']);
    expect(ids(sortEntries(all, { column: 'error', direction: 'descending' }))).toEqual(['b', 'c', 'a', 'd']);
  });

  it('by text with numbers read as numbers; ties newest first', () => {
    expect(ids(sortEntries(all, { column: 'file', direction: 'ascending' }))).toEqual(['b', 'a', 'd', 'c']);
    expect(ids(sortEntries(all, { column: 'owner', direction: 'ascending' }))).toEqual(['b', 'c', 'a', 'd']);
  });

  it('by state in the order an upload goes through them', () => {
    expect(ids(sortEntries(all, { column: 'state', direction: 'ascending' }))).toEqual(['a', 'd', 'b', 'c']);
  });

  it('never says two different rows are equal, so the order does not flicker', () => {
    const twin = { ...a, id: 'a2' };
    expect(compareEntries(a, twin, { column: 'size', direction: 'ascending' })).toBeLessThan(0);
    expect(compareEntries(twin, a, { column: 'size', direction: 'ascending' })).toBeGreaterThan(0);
  });

  it('a click turns the column around; another column starts ascending', () => {
    expect(nextSort(DEFAULT_SORT, 'created')).toEqual({ column: 'created', direction: 'ascending' });
    expect(nextSort({ column: 'created', direction: 'ascending' }, 'created')).toEqual({ column: 'created', direction: 'descending' });
    expect(nextSort(DEFAULT_SORT, 'size')).toEqual({ column: 'size', direction: 'ascending' });
  });
});

describe('filtering the table', () => {
  it('by state, by group of states, and by owner', () => {
    const running = entry({ id: 'r', state: 'processing', owner: 'alice' });
    const failed = entry({ id: 'f', state: 'failed', owner: 'bob' });
    const gone = entry({ id: 'g', state: 'gone', owner: 'bob' });
    const rows = [running, failed, gone];
    const shown = (state: Parameters<typeof matchesFilter>[1]['state'], owner?: string) => rows.filter((row) => matchesFilter(row, { state, owner })).map((row) => row.id);
    expect(rows.filter((row) => matchesFilter(row, NO_FILTER))).toHaveLength(3);
    expect(shown('active')).toEqual(['r']);
    expect(shown('finished')).toEqual(['f', 'g']);
    expect(shown('failed')).toEqual(['f']);
    expect(shown('completed')).toEqual([]);
    expect(shown('all', 'bob')).toEqual(['f', 'g']);
    expect(shown('finished', 'alice')).toEqual([]);
  });
});

describe('steps and their durations', () => {
  const journal = (fields: Partial<Journal>): Journal => ({ createdAt: T0, uploaded: false, stages: [], ended: false, ...fields });

  it('each step ends where the next began; the last ends with the upload', () => {
    const steps = timeline(journal({
      uploaded: true, uploadedAt: T0 + 4000, queuedAt: T0 + 4000, processingAt: T0 + 6500,
      stages: [{ name: 'verify', at: T0 + 6500 }, { name: 'import', at: T0 + 8000 }], endedAt: T0 + 9200, ended: true,
    }), T0 + 20_000);
    expect(steps.map((step) => [step.name, step.kind, step.durationMs, step.running])).toEqual([
      ['upload', 'upload', 4000, false],
      ['queue', 'queue', 2500, false],
      ['verify', 'stage', 1500, false],
      ['import', 'stage', 1200, false],
    ]);
  });

  it('what is still going counts up to now', () => {
    const uploading = timeline(journal({}), T0 + 3000);
    expect(uploading).toEqual([{ name: 'upload', kind: 'upload', startedAt: T0, endedAt: undefined, durationMs: 3000, running: true }]);
    const processing = timeline(journal({ uploaded: true, uploadedAt: T0 + 1000, processingAt: T0 + 1000, stages: [{ name: 'verify', at: T0 + 1000 }] }), T0 + 1600);
    expect(processing.map((step) => [step.name, step.durationMs, step.running])).toEqual([['upload', 1000, false], ['verify', 600, true]]);
  });

  it('a step whose start or end was not heard has no duration rather than a wrong one', () => {
    // The page opened mid-processing: it heard the second stage start, nothing before.
    const joined = timeline(journal({ uploaded: true, stages: [{ name: 'import', at: T0 + 5000 }], endedAt: T0 + 7000, ended: true }), T0 + 9000);
    expect(joined.map((step) => [step.name, step.durationMs])).toEqual([['upload', 5000], ['import', 2000]]);
    // It ended before the page opened: only its status is known, its bytes were all in.
    const unseen = timeline(journal({ uploaded: true, endedAt: T0 + 7000, ended: true }), T0 + 9000);
    expect(unseen).toEqual([{ name: 'upload', kind: 'upload', startedAt: T0, endedAt: undefined, durationMs: undefined, running: false }]);
    // It failed while uploading: the upload step ends with it.
    const failed = timeline(journal({ endedAt: T0 + 2500, ended: true }), T0 + 9000);
    expect(failed[0]).toMatchObject({ durationMs: 2500, running: false });
    // Its creation is unknown (heard of through a later event, status not yet in): running, for how long unknown.
    expect(timeline(journal({ createdAt: undefined }), T0)[0]).toMatchObject({ durationMs: undefined, running: true });
  });

  it('an upload\'s duration: to its end, or to now', () => {
    expect(durationOf(T0, T0 + 1500, T0 + 9000)).toBe(1500);
    expect(durationOf(T0, undefined, T0 + 9000)).toBe(9000);
    expect(durationOf(undefined, T0, T0)).toBeUndefined();
    // Hub and page clocks may disagree a little: never negative.
    expect(durationOf(T0 + 50, undefined, T0)).toBe(0);
  });
});

describe('the last hour\'s tally', () => {
  it('counts each upload once by how it ended, and lets ends older than the hour go', () => {
    const tally = new OutcomeTally(3_600_000);
    tally.note('a', 'completed', T0);
    tally.note('b', 'failed', T0 + 1000);
    tally.note('c', 'cancelled', T0 + 2000);
    tally.note('a', 'completed', T0);
    tally.note('d', 'expired', T0);
    tally.note('e', 'uploading', T0);
    expect(tally.counts(T0 + 3000)).toEqual({ completed: 1, failed: 1, cancelled: 1 });
    expect(tally.nextExpiry()).toBe(T0 + 3_600_000);
    expect(tally.counts(T0 + 3_600_500)).toEqual({ completed: 0, failed: 1, cancelled: 1 });
    expect(tally.nextExpiry()).toBe(T0 + 3_601_000);
    expect(tally.counts(T0 + 4_000_000)).toEqual({ completed: 0, failed: 0, cancelled: 0 });
    expect(tally.nextExpiry()).toBeUndefined();
  });
});

describe('the tiles\' numbers', () => {
  function status(fields: Partial<UploadStatus>): UploadStatus {
    return {
      id: 'AbCdEfGhIjKlMnOp', name: 'a.bin', size: 100 * MiB, mimeType: 'application/octet-stream', metadata: {}, owner: 'anonymous', state: 'uploading',
      bytes: 0, percent: 0, phase: 'upload', attached: true, createdAt: T0, updatedAt: T0, ...fields,
    };
  }
  const progress = (fields: Partial<Extract<HubEvent, { type: 'progress' }>>): HubEvent => ({
    id: 1, uploadId: 'AbCdEfGhIjKlMnOp', at: T0, type: 'progress', bytes: MiB, total: 100 * MiB, percent: 1, phase: 'upload', bytesPerSecond: 3 * MiB, etaSeconds: 30, ...fields,
  });

  it('an upload adds its speed to the total only while its bytes move', () => {
    const moving = withEvent(withStatus(createdView(T0), status({}), T0), progress({}), T0);
    expect(liveRate(moving)).toBe(3 * MiB);
    expect(liveRate(withStatus(moving, status({ attached: false, bytes: MiB }), T0 + 5000, T0 + 5000))).toBe(0);
    expect(liveRate(withEvent(moving, { id: 2, uploadId: 'AbCdEfGhIjKlMnOp', at: T0, type: 'completed' }, T0))).toBe(0);
    expect(liveRate(withEvent(moving, progress({ phase: 'processing', stage: 'verify', stagePercent: 10 }), T0))).toBe(0);
  });

  it('format as the tiles and the chart do', () => {
    expect(formatMebibytesPerSecond(0)).toBe('0.0 MiB/s');
    expect(formatMebibytesPerSecond(1.5 * MiB)).toBe('1.5 MiB/s');
    expect(formatMebibytesPerSecond(Number.NaN)).toBe('0.0 MiB/s');
    expect(formatDuration(320)).toBe('320 ms');
    expect(formatDuration(4200)).toBe('4.2 s');
    expect(formatDuration(75_000)).toBe('1 min 15 s');
    expect(formatDuration(undefined)).toBe('—');
  });

  it('the chart\'s axis ends at a round number at or above its peak', () => {
    expect(niceScale(0)).toBe(1024);
    expect(niceScale(1.5 * MiB)).toBe(2 * MiB);
    expect(niceScale(2 * MiB)).toBe(2 * MiB);
    expect(niceScale(6 * MiB)).toBe(10 * MiB);
    expect(niceScale(600 * MiB)).toBe(1024 * MiB);
  });
});
