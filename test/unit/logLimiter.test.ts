// The per-upload log stream limit: at most N lines a second, the rest counted and summarised
// in one line when the window ends, on flush (before a terminal event), or before the next line.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { droppedSummary, LogLimiter, type LogLine } from '../../server/core/LogLimiter.js';

function line(n: number): LogLine {
  return { level: 'info', text: `line ${n}`, stage: 'import' };
}

describe('LogLimiter', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('passes perSecond lines a window and summarises the dropped ones when the window ends', () => {
    const out: LogLine[] = [];
    const limiter = new LogLimiter(3, (l) => out.push(l));
    for (let i = 1; i <= 10; i++) limiter.push(line(i));
    expect(out.map((l) => l.text)).toEqual(['line 1', 'line 2', 'line 3']);
    expect(limiter.pending).toBe(7);
    expect(limiter.hasTimer).toBe(true);
    vi.advanceTimersByTime(999);
    expect(out).toHaveLength(3);
    vi.advanceTimersByTime(1);
    expect(out.at(-1)).toEqual({ level: 'warn', text: '7 log lines dropped (limit 3/s)' });
    expect(limiter.pending).toBe(0);
    expect(limiter.hasTimer).toBe(false);
    // The next window admits again.
    limiter.push(line(11));
    expect(out.at(-1)).toEqual(line(11));
  });

  it('puts the summary before the first line of the next window when the timer has not run yet', () => {
    let now = 0;
    const out: LogLine[] = [];
    const limiter = new LogLimiter(1, (l) => out.push(l), () => now);
    limiter.push(line(1));
    limiter.push(line(2));
    limiter.push(line(3));
    now = 1000; // the clock moved, the (fake) timer did not fire
    limiter.push(line(4));
    expect(out.map((l) => l.text)).toEqual(['line 1', droppedSummary(2, 1), 'line 4']);
    expect(limiter.hasTimer).toBe(false);
  });

  it('flush() sends the summary at once; close() stops everything', () => {
    const out: LogLine[] = [];
    const limiter = new LogLimiter(2, (l) => out.push(l));
    for (let i = 1; i <= 5; i++) limiter.push(line(i));
    limiter.flush();
    expect(out.map((l) => l.text)).toEqual(['line 1', 'line 2', '3 log lines dropped (limit 2/s)']);
    expect(limiter.hasTimer).toBe(false);
    limiter.flush();
    expect(out).toHaveLength(3);
    limiter.push(line(6));
    limiter.close();
    expect(limiter.hasTimer).toBe(false);
    vi.advanceTimersByTime(5000);
    limiter.push(line(7));
    limiter.flush();
    expect(out).toHaveLength(3);
  });

  it('arms no timer while under the limit, and words a single drop in the singular', () => {
    const out: LogLine[] = [];
    const limiter = new LogLimiter(2, (l) => out.push(l));
    limiter.push(line(1));
    limiter.push(line(2));
    expect(limiter.hasTimer).toBe(false);
    limiter.push(line(3));
    vi.runAllTimers();
    expect(out.at(-1)?.text).toBe('1 log line dropped (limit 2/s)');
  });
});
