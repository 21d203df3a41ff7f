/**
 * What `send` tells its reporter, and the summary it ends with. Two reporters print it: the
 * terminal one (bars, server/cli/barsReport.ts) and the NDJSON one (server/cli/ndjsonReport.ts).
 */
import type { UploadHubError } from '../../shared/errors.js';
import type { HubEvent } from '../../shared/messages.js';
import type { UploadLogLine, UploadProgress, UploadResult } from '../../client/node.js';

export type EntryState = 'waiting' | 'sending' | 'completed' | 'failed' | 'cancelled';

/** One FILE of the command line and how far it got. */
export interface SendEntry {
  /** As typed. */
  readonly file: string;
  /** Its base name, for narrow columns. */
  readonly name: string;
  readonly size: number;
  id: string | undefined;
  state: EntryState;
  progress: UploadProgress | undefined;
  result?: UploadResult;
  error?: UploadHubError;
  startedAt?: number;
  endedAt?: number;
}

export interface SendFailure {
  file: string;
  id: string | undefined;
  code: string;
  message: string;
  stage?: string;
}

export interface SendSummary {
  files: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Files never started (Ctrl-C came first). */
  notSent: number;
  /** Bytes of the completed files. */
  bytes: number;
  durationMs: number;
  /** bytes / duration; 0 for an instant run. */
  bytesPerSecond: number;
  interrupted: boolean;
  failures: SendFailure[];
}

/** Ctrl-C: the uploads being cancelled (first), or left resumable on the hub (second). */
export type Interruption = 'cancelling' | 'cancelled' | 'unconfirmed' | 'left-resumable';

export interface SendReporter {
  started(entry: SendEntry): void;
  /** The hub assigned the entry its id. */
  created(entry: SendEntry): void;
  /** `entry.progress` changed. */
  progress(entry: SendEntry): void;
  /** Every hub event about the entry's upload. */
  event(entry: SendEntry, event: HubEvent): void;
  log(entry: SendEntry, line: UploadLogLine): void;
  finished(entry: SendEntry): void;
  interrupted(what: Interruption, entries: readonly SendEntry[]): void;
  summary(summary: SendSummary): void;
  /** Stops timers and gives the terminal back (cursor, line wrapping); safe twice. */
  close(): void;
}

export function summarize(entries: readonly SendEntry[], startedAt: number, interrupted: boolean, now = Date.now()): SendSummary {
  const durationMs = Math.max(0, now - startedAt);
  const completed = entries.filter((entry) => entry.state === 'completed');
  const bytes = completed.reduce((sum, entry) => sum + entry.size, 0);
  return {
    files: entries.length,
    completed: completed.length,
    failed: entries.filter((entry) => entry.state === 'failed').length,
    cancelled: entries.filter((entry) => entry.state === 'cancelled').length,
    notSent: entries.filter((entry) => entry.state === 'waiting').length,
    bytes,
    durationMs,
    bytesPerSecond: durationMs > 0 ? Math.round((bytes * 1000) / durationMs) : 0,
    interrupted,
    failures: entries.filter((entry) => entry.state === 'failed' && entry.error).map((entry) => failureOf(entry, entry.error as UploadHubError)),
  };
}

export function failureOf(entry: SendEntry, error: UploadHubError): SendFailure {
  return { file: entry.file, id: entry.id, code: error.code, message: error.message, ...(error.stage === undefined ? {} : { stage: error.stage }) };
}

/** "ID (file)", or the file alone before the hub gave it an id. */
export function describeUpload(entry: SendEntry): string {
  return entry.id === undefined ? `${entry.file} (not created yet)` : `${entry.id} (${entry.file})`;
}
