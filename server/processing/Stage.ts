/**
 * What an application writes to process uploads: named, weighted stages that run after the
 * last byte is in, in order, each with an AbortSignal that fires on cancel.
 */
import type { Readable } from 'node:stream';
import type { JsonValue, LogLevel } from '../../shared/messages.js';

/** What the stage may know about the upload it processes. */
export interface StageUpload {
  id: string;
  name: string;
  size: number;
  mimeType: string;
  metadata: Readonly<Record<string, string>>;
  sha256: string;
}

export interface StageContext {
  upload: StageUpload;
  /** A fresh stream over the stored file (1 MiB reads): stages reach the bytes through the store, wherever it keeps them. */
  createReadStream(): Readable;
  /** A directory for this upload's outputs; removed when the upload is cancelled or purged. */
  outputDir(): Promise<string>;
  /** Fires on cancel or timeout. A stage should stop promptly; one that does not is abandoned after the deadline. */
  signal: AbortSignal;
  /** Reports the stage's own progress in any unit (bytes, rows). */
  progress(done: number, total: number): void;
  log(level: LogLevel, text: string): void;
  /** Results of the stages that ran before this one, by stage name. */
  results: Readonly<Record<string, JsonValue>>;
}

export interface Stage {
  /** Shown to users in progress and stage events; unique within a pipeline. */
  name: string;
  /** Share of the processing part of the bar, relative to the other stages that run. Default 1. */
  weight?: number;
  /** Whether the stage runs for this upload (by type, metadata...). Default: always. */
  when?(upload: StageUpload): boolean;
  /** Overrides the hub's stageTimeoutMs for this stage, in ms. 0 no limit. */
  timeoutMs?: number;
  /** Does the work. What it returns (JSON) becomes `result[name]` in `completed`. */
  run(ctx: StageContext): Promise<JsonValue | void> | JsonValue | void;
}
