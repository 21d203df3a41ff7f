/**
 * An upload this node is working on (receiving, finalizing or processing), under its lease:
 * its byte path, its bar, its stages and log limiter. Finished uploads and uploads other nodes
 * hold are not kept; their status is built from the registry's record.
 */
import type { UploadStatus } from '../../shared/messages.js';
import type { Stage } from '../processing/Stage.js';
import type { UploadRecord } from '../store/UploadStore.js';
import type { Principal } from './auth.js';
import type { LogLimiter } from './LogLimiter.js';
import type { ProgressBar } from './ProgressBar.js';
import type { Upload } from './Upload.js';

export interface ActiveUpload {
  upload: Upload;
  bar: ProgressBar;
  stages: Stage[];
  logs: LogLimiter;
  /** Set once finalizing started; resolves when it is over. */
  finalizing: Promise<void> | undefined;
  /** Set when a write failed; resolves once the upload is failed, saved and published. */
  writeFailure: Promise<void> | undefined;
  /** The principal of the latest writer, re-checked before the upload is finalized. */
  writerPrincipal: Principal | undefined;
  /** Resolves when this node stops working on the upload: it ended, or another node took it. */
  readonly gone: Promise<void>;
  /** Resolves `gone`; called once the hub let go of the upload. */
  leave(): void;
}

/** What a client sees of an upload this node works on. */
export function activeStatus(active: ActiveUpload): UploadStatus {
  const { upload, bar } = active;
  const status = recordStatus(upload.record, upload.committed, bar.percent);
  status.phase = bar.phase;
  status.attached = upload.writer !== undefined;
  const stage = bar.stage ?? upload.record.stage;
  if (stage !== undefined) status.stage = stage;
  if (bar.stagePercent !== undefined) status.stagePercent = bar.stagePercent;
  if (bar.queuePosition !== undefined) status.queuePosition = bar.queuePosition;
  return status;
}

/** What a client sees of an upload from its record alone (finished, or held by another node). */
export function recordStatus(record: UploadRecord, committed: number | undefined, percent?: number): UploadStatus {
  const status: UploadStatus = {
    id: record.id,
    name: record.name,
    size: record.size,
    mimeType: record.mimeType,
    metadata: record.metadata,
    owner: record.owner,
    state: record.state,
    bytes: committed ?? record.bytes ?? 0,
    percent: percent ?? record.percent ?? 0,
    phase: record.phase ?? (record.state === 'processing' ? 'processing' : 'upload'),
    attached: false,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
  if (record.stage !== undefined) status.stage = record.stage;
  if (record.stagePercent !== undefined) status.stagePercent = record.stagePercent;
  if (record.sha256) status.sha256 = record.sha256;
  if (record.error) status.error = record.error;
  if (record.result !== undefined) status.result = record.result;
  return status;
}
