import { describe, expect, it } from 'vitest';
import { describeProgress, formatBytes, formatEta, formatPercent, formatRate, isFinished } from '../../client/web/format.js';

describe('page formatting', () => {
  it('formats sizes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(8 * 1024 * 1024)).toBe('8.0 MiB');
    expect(formatBytes(300 * 1024 + 7)).toBe('300 KiB');
    expect(formatBytes(-1)).toBe('—');
  });

  it('formats rates and ETAs, with a dash while unknown', () => {
    expect(formatRate(0)).toBe('—');
    expect(formatRate(undefined)).toBe('—');
    expect(formatRate(2 * 1024 * 1024)).toBe('2.0 MiB/s');
    expect(formatEta(null)).toBe('—');
    expect(formatEta(0)).toBe('0 s');
    expect(formatEta(0.4)).toBe('< 1 s');
    expect(formatEta(75)).toBe('1 min 15 s');
    expect(formatEta(3 * 3600 + 120)).toBe('3 h 2 min');
  });

  it('never shows 100% before the end', () => {
    expect(formatPercent(99.99)).toBe('99%');
    expect(formatPercent(100)).toBe('100%');
    expect(formatPercent(50.5)).toBe('50%');
    expect(formatPercent(-3)).toBe('0%');
  });

  it('describes where an upload is', () => {
    expect(describeProgress({ state: 'queued', phase: 'upload', percent: 50, queuePosition: 2 })).toBe('queued #2');
    expect(describeProgress({ state: 'processing', phase: 'processing', percent: 60, stage: 'gzip', stagePercent: 40.7 })).toBe('processing · gzip 40%');
    expect(describeProgress({ state: 'processing', phase: 'processing', percent: 50 })).toBe('processing');
    expect(describeProgress({ state: 'uploading', phase: 'upload', percent: 3 })).toBe('uploading');
    expect(isFinished('cancelled')).toBe(true);
    expect(isFinished('gone')).toBe(true);
    expect(isFinished('cancelling')).toBe(false);
  });
});
