/**
 * How the command line writes numbers for people: sizes, rates, durations, clock times, and an
 * option's default in `serve --help`. Pure functions.
 */

import { formatBytes as formatSize, formatPercent } from '../../shared/units.js';

export { formatPercent };

/** 1536 -> "1.5 KiB" (shared/units.ts); "-" for a bad number, as a terminal shows nothing else. */
export function formatBytes(bytes: number): string {
  return formatSize(bytes, '-');
}

/** Bytes per second; "-" while unknown or zero (as during processing). */
export function formatRate(bytesPerSecond: number | undefined): string {
  return bytesPerSecond !== undefined && bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '-';
}

/** 75 -> "1m15s", 3700 -> "1h01m", 2.5 -> "2.5s"; null or unknown -> "-". */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '-';
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}


/** Local wall-clock time, "14:03:07". */
export function formatClock(at: number): string {
  const time = new Date(at);
  return [time.getHours(), time.getMinutes(), time.getSeconds()].map((part) => String(part).padStart(2, '0')).join(':');
}

/** `text` cut or padded to exactly `width` characters; a cut ends in "…". */
export function fit(text: string, width: number): string {
  if (text.length <= width) return text.padEnd(width);
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

const DURATIONS: ReadonlyArray<[number, string]> = [[3_600_000, 'h'], [60_000, 'min'], [1_000, 's']];

/**
 * An option's default as `serve --help` shows it: the number as typed, then what it means when
 * that is not obvious. 10737418240 bytes -> "10737418240 = 10 GiB"; 86400000 ms -> "86400000 = 24 h";
 * a list as it is typed (comma-separated), an empty one "none".
 */
export function formatDefault(value: unknown, unit: string | undefined): string {
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',');
  if (typeof value !== 'number') return JSON.stringify(value);
  if ((unit === 'bytes' || unit === 'bytes/s') && value >= 1024) {
    return `${value} = ${formatBytes(value)}${unit === 'bytes/s' ? '/s' : ''}`;
  }
  if (unit === 'ms' && value >= 1000) {
    const [size, name] = DURATIONS.find(([ms]) => value % ms === 0) ?? [1, 'ms'];
    return `${value} = ${value / size} ${name}`;
  }
  return String(value);
}
