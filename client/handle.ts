/**
 * What `upload()` and `resumeUpload()` take and give back: the options, the handle, its events,
 * progress and result. Apart from UploadClient so that UploadTask, which implements the handle,
 * needs nothing of the client itself (no import cycle).
 */
import { UploadHubError } from '../shared/errors.js';
import { isTerminalState, type HubEvent, type JsonValue, type LogLevel, type Phase, type UploadStatus } from '../shared/messages.js';

export interface UploadOptions {
  /** Default: the file's name, else 'upload.bin'. */
  name?: string;
  /** MIME type. Default: the Blob's type, else application/octet-stream. */
  type?: string;
  metadata?: Record<string, string>;
  /** Lowercase hex sha256 of the whole file; the hub fails the upload with ERR_CHECKSUM_MISMATCH if it differs. */
  sha256?: string;
  /** Bytes per chunk. Default: what the hub announces (1 MiB by default). */
  chunkSize?: number;
  /** Required for stream sources: the stream's length in bytes. */
  size?: number;
  /** Aborting cancels the upload (on the hub too). */
  signal?: AbortSignal;
  /**
   * With a fingerprint store: look the file up and resume its unfinished upload. Default true.
   * false always creates a new upload (which is remembered all the same).
   */
  resume?: boolean;
  onProgress?: (progress: UploadProgress) => void;
  onLog?: (line: UploadLogLine) => void;
}

/**
 * One moment of the bar: what progress events and `handle.progress` carry. It is what the
 * shared reducer (shared/view.ts) makes of the hub's events and statuses, the same the upload
 * page and the dashboard show; a `progress` event is emitted whenever any field changes.
 */
export interface UploadProgress {
  /** Bytes the hub has committed. */
  bytes: number;
  total: number;
  /** Overall percent across upload and processing; never goes back. */
  percent: number;
  phase: Phase;
  stage?: string;
  stagePercent?: number;
  /** Position in the processing queue while waiting. */
  queuePosition?: number;
  /** Upload speed as the hub measures it; 0 once the bytes are in. */
  bytesPerSecond: number;
  /** The hub's estimate of the seconds to the end of the current phase; null while unknown, 0 once completed. */
  etaSeconds: number | null;
}

export interface UploadLogLine {
  level: LogLevel;
  text: string;
  stage?: string;
}

export interface UploadResult {
  id: string;
  name: string;
  size: number;
  sha256: string | undefined;
  /** What the processing stages returned, by stage name. */
  result: JsonValue | undefined;
}

export type UploadEvents = {
  /** The upload's id is known: the hub created it, or (resumeUpload, a fingerprint) found it to resume. */
  created: (id: string) => void;
  /**
   * The hub took the upload on a connection (created, resumed, or after a reconnect or a
   * pause): sending continues from `offset`, its committed offset.
   */
  attached: (offset: number) => void;
  /** pause() took effect: every chunk sent has been answered, nothing more is sent. */
  paused: () => void;
  /** resume() after `paused`. */
  resumed: () => void;
  progress: (progress: UploadProgress) => void;
  stage: (stage: string, index: number, count: number) => void;
  log: (line: UploadLogLine) => void;
  /** Every hub event about this upload, unfiltered. */
  event: (event: HubEvent) => void;
};

/** What `upload()` and `resumeUpload()` return. */
export interface UploadHandle {
  /** The upload's id once created (see the `created` event); resumeUpload's at once. */
  readonly id: string | undefined;
  readonly progress: UploadProgress;
  readonly done: Promise<UploadResult>;
  /** Whether pause() is in force (false again after resume(), and once the upload has ended). */
  readonly paused: boolean;
  on<K extends keyof UploadEvents>(name: K, listener: UploadEvents[K]): () => void;
  /** Cancels on the hub too (paused or not); resolves once the upload has ended. */
  cancel(): Promise<void>;
  /**
   * Stops sending after the chunks in flight (`paused` follows once they are answered). The hub
   * keeps the upload resumable however long the pause: no byte is lost. Processing, once
   * started, is not paused, and `done` still settles when it ends. Idempotent.
   */
  pause(): void;
  /** Continues from the hub's committed offset (sends `resume`). Idempotent. */
  resume(): void;
}

/** Maps a terminal status to what `done` settles with. */
export function settleFromStatus(status: UploadStatus): UploadResult | UploadHubError | undefined {
  if (!isTerminalState(status.state)) return undefined;
  if (status.state === 'completed') {
    return { id: status.id, name: status.name, size: status.size, sha256: status.sha256, result: status.result };
  }
  if (status.state === 'cancelled') return new UploadHubError('ERR_CANCELLED', undefined, status.stage === undefined ? undefined : { stage: status.stage });
  if (status.state === 'expired') return new UploadHubError('ERR_EXPIRED');
  const error = status.error;
  return error ? new UploadHubError(error.code, error.message, error.stage === undefined ? undefined : { stage: error.stage }) : new UploadHubError('ERR_INTERNAL', 'Upload failed');
}
