/**
 * Formatting shared by the upload page and the dashboard: sizes, rates, ETAs and the one-line
 * description of where an upload is. Pure functions (no DOM), unit-tested in test/unit.
 */
import type { JsonValue, Phase, UploadState } from '../../shared/messages.js';
import { formatBytes, formatPercent } from '../../shared/units.js';

export { formatBytes, formatPercent };

/** Bytes per second; "—" when unknown or zero (as during processing). */
export function formatRate(bytesPerSecond: number | undefined): string {
  return bytesPerSecond && bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '—';
}

/** 75 -> "1 min 15 s"; null (rate unknown) -> "—". */
export function formatEta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 1) return seconds === 0 ? '0 s' : '< 1 s';
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}


/** Everything the page may show about where an upload is. */
export interface ProgressView {
  /** `starting`, `cancelling` and `gone` (the hub no longer knows it) are the page's own. */
  state: UploadState | 'starting' | 'cancelling' | 'gone';
  phase: Phase;
  percent: number;
  stage?: string | undefined;
  stagePercent?: number | undefined;
  queuePosition?: number | undefined;
}

/** "processing · import 40%", "queued #2", "uploading"... */
export function describeProgress(view: ProgressView): string {
  switch (view.state) {
    case 'queued':
      return view.queuePosition === undefined ? 'queued' : `queued #${view.queuePosition}`;
    case 'processing':
      if (view.stage === undefined) return 'processing';
      return view.stagePercent === undefined ? `processing · ${view.stage}` : `processing · ${view.stage} ${Math.floor(view.stagePercent)}%`;
    default:
      return view.state;
  }
}

/** States after which nothing changes. Mirrors shared/messages.ts for the page's local states. */
export function isFinished(state: ProgressView['state']): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled' || state === 'expired' || state === 'gone';
}

/** 320 -> "320 ms", 4200 -> "4.2 s", 75000 -> "1 min 15 s"; undefined -> "—". For how long something took. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatEta(ms / 1000);
}

/** Bytes per second in MiB/s with one decimal, whatever the size ("0.0 MiB/s" when still), for totals that keep one unit. */
export function formatMebibytesPerSecond(bytesPerSecond: number): string {
  const value = Number.isFinite(bytesPerSecond) && bytesPerSecond > 0 ? bytesPerSecond / (1024 * 1024) : 0;
  return `${value.toFixed(1)} MiB/s`;
}

/** How much of a result the summary shows; the whole JSON stays one click away. */
const SUMMARY_LINES = 6;
const SUMMARY_FIELDS = 4;
const SUMMARY_TEXT = 40;

/** One value in a few characters: long strings and hashes are cut, nested values counted. */
function summarizeValue(value: JsonValue): string {
  if (value === null) return '—';
  if (typeof value === 'string') return value.length > SUMMARY_TEXT ? `${value.slice(0, /^[0-9a-f]+$/i.test(value) ? 12 : SUMMARY_TEXT - 1)}…` : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.length === 1 ? '1 item' : `${value.length} items`;
  const keys = Object.keys(value);
  const shown = keys.slice(0, SUMMARY_FIELDS).map((key) => `${key} ${summarizeValue(value[key] as JsonValue)}`);
  return keys.length > SUMMARY_FIELDS ? `${shown.join(', ')}, +${keys.length - SUMMARY_FIELDS} more` : shown.join(', ') || 'empty';
}

/**
 * A processing result in a few short lines, one per stage (the result is keyed by stage name):
 * { verify: { bytes: 12, sha256: '9f86d0…' } } -> ["verify: bytes 12, sha256 9f86d081884c…"].
 * Nothing for no result.
 */
export function summarizeResult(result: JsonValue | undefined): string[] {
  if (result === undefined) return [];
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return [summarizeValue(result)];
  const keys = Object.keys(result);
  const lines = keys.slice(0, SUMMARY_LINES).map((key) => `${key}: ${summarizeValue(result[key] as JsonValue)}`);
  if (keys.length > SUMMARY_LINES) lines.push(`+${keys.length - SUMMARY_LINES} more`);
  return lines;
}
