/**
 * Every option of the hub with its default and unit, validated once at start-up. Transport
 * limits (`ws` maxPayload, Socket.IO maxHttpBufferSize, busboy limits) are derived from these
 * numbers in `derivedLimits`, never set on their own.
 */
import { z } from 'zod';
import { MAX_FRAME_HEADER_BYTES } from '../shared/frame.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const bytes = z.number().int().min(0);
const positiveInt = z.number().int().min(1);
const ms = z.number().int().min(0);

export const hubOptionsSchema = z.object({
  /** TCP port; 0 picks a free one. Env PORT. */
  port: z.number().int().min(0).max(65535).default(3000),
  /** Interface to listen on. Env HOST. */
  host: z.string().default('127.0.0.1'),
  /** Where bytes and state live. Env DATA_DIR. */
  dataDir: z.string().default('./data'),

  /** Largest file accepted, in bytes. Default 10 GiB. */
  maxFileSize: bytes.default(10 * GiB),
  /** Largest chunk accepted, in bytes; `ws` maxPayload and Socket.IO maxHttpBufferSize derive from it. Default 4 MiB. */
  maxChunkSize: positiveInt.default(4 * MiB),
  /** Chunk size recommended to clients (announced in `welcome`), in bytes. Default 1 MiB. */
  chunkSize: positiveInt.default(1 * MiB),
  /** Bytes one upload may have in flight (granted, not yet on disk). Default 8 MiB. */
  uploadWindow: positiveInt.default(8 * MiB),
  /** Bytes all uploads together may have in flight; windows shrink to share it. Default 64 MiB. */
  maxBufferedBytes: positiveInt.default(64 * MiB),
  /** The smallest window granted however many uploads share maxBufferedBytes. Default 256 KiB. */
  minWindow: positiveInt.default(256 * KiB),
  /** Uploads one connection may have attached at once. Default 16. */
  maxUploadsPerConnection: positiveInt.default(16),
  /** Largest JSON control message, in bytes. Default 64 KiB. */
  maxMessageBytes: positiveInt.default(64 * KiB),

  /** An attached upload that receives no chunk for this long is detached (it stays resumable), in ms. Default 30 s. */
  idleTimeoutMs: ms.default(30_000),
  /** A connection must say hello within this long, in ms. Default 10 s. */
  helloTimeoutMs: ms.default(10_000),
  /** An incomplete upload untouched for this long expires and its bytes are deleted, in ms. Default 24 h. 0 never. */
  uploadTtlMs: ms.default(24 * 60 * 60 * 1000),
  /** A finished upload's record is kept this long for status queries, in ms. Default 24 h. 0 forever. */
  finishedRetentionMs: ms.default(24 * 60 * 60 * 1000),

  /** Progress throttle per upload per subscriber. */
  progressIntervalMs: ms.default(100),
  progressMinStepPercent: z.number().min(0).max(100).default(1),

  /** Events kept for replay (SSE Last-Event-ID). Default 10,000. */
  eventHistorySize: positiveInt.default(10_000),
  /** SSE heartbeat comment interval, in ms. Default 15 s. 0 turns it off. */
  heartbeatMs: ms.default(15_000),
  /** SSE `retry:` sent to EventSource clients, in ms. Default 2 s. */
  sseRetryMs: ms.default(2_000),
  /**
   * An SSE/NDJSON response whose unsent output passes this is closed (its client reconnects
   * and replays); progress is coalesced long before, so only a reader that stopped reading
   * gets here. In bytes. Default 1 MiB.
   */
  watcherMaxBufferedBytes: positiveInt.default(1 * MiB),

  /** Bodies of routes that are not uploads (JSON) must arrive within this long, in ms. Default 30 s. 0 no limit. */
  requestTimeoutMs: ms.default(30_000),
  /**
   * An HTTP upload body (multipart) that arrives slower than this, averaged over
   * minUploadRateWindowMs, is aborted and its upload fails with ERR_TOO_SLOW. In bytes per
   * second. Default 1 KiB/s. 0 turns it off.
   */
  minUploadRate: bytes.default(1 * KiB),
  /** The window minUploadRate is averaged over, in ms. Default 30 s. */
  minUploadRateWindowMs: positiveInt.default(30_000),

  /** Multipart: most files per request. Default 10. */
  multipartMaxFiles: positiveInt.default(10),
  /** Multipart: most non-file fields per request. Default 100. */
  multipartMaxFields: positiveInt.default(100),
  /** Multipart: largest field value, in bytes. Default 64 KiB. */
  multipartMaxFieldSize: positiveInt.default(64 * KiB),

  /** Part of the bar the upload phase fills when stages run, in percent. Default 50. */
  uploadShare: z.number().min(0).max(100).default(50),
  /** Uploads processed at once; the rest wait in a queue. Default 2. */
  processingConcurrency: positiveInt.default(2),
  /** A stage running longer than this fails with ERR_STAGE_TIMEOUT, in ms. Default 10 min. 0 no limit. */
  stageTimeoutMs: ms.default(10 * 60 * 1000),
  /** After abort, how long a stage may take to settle before it is abandoned, in ms. Default 5 s. */
  abortDeadlineMs: ms.default(5_000),
  /** Log lines per second per upload that reach subscribers; the rest are counted in a summary line. Default 20. */
  logLinesPerSecond: positiveInt.default(20),
});

export type HubOptions = z.infer<typeof hubOptionsSchema>;
export type HubOptionsInput = z.input<typeof hubOptionsSchema>;

/** Validates options (throws a readable error naming the bad option) and fills defaults. */
export function resolveOptions(input: HubOptionsInput = {}): HubOptions {
  const result = hubOptionsSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${issue.path.join('.') || '(options)'}: ${issue.message}`);
    throw new Error(`Invalid hub options:\n${lines.join('\n')}`);
  }
  const options = result.data;
  if (options.chunkSize > options.maxChunkSize) throw new Error('Invalid hub options:\n  chunkSize: must not exceed maxChunkSize');
  if (options.minWindow > options.uploadWindow) throw new Error('Invalid hub options:\n  minWindow: must not exceed uploadWindow');
  return options;
}

/** Options from the environment, for `npm start` and the CLI. Unset variables keep defaults. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): HubOptionsInput {
  const input: HubOptionsInput = {};
  if (env.PORT !== undefined) input.port = Number(env.PORT);
  if (env.HOST !== undefined) input.host = env.HOST;
  if (env.DATA_DIR !== undefined) input.dataDir = env.DATA_DIR;
  if (env.MAX_FILE_SIZE !== undefined) input.maxFileSize = Number(env.MAX_FILE_SIZE);
  if (env.MAX_CHUNK_SIZE !== undefined) input.maxChunkSize = Number(env.MAX_CHUNK_SIZE);
  return input;
}

/** Transport limits derived from the hub's numbers, so no transport has a limit of its own. */
export function derivedLimits(options: HubOptions) {
  return {
    /** `ws` maxPayload: one chunk frame. */
    wsMaxPayload: options.maxChunkSize + MAX_FRAME_HEADER_BYTES,
    /** Socket.IO maxHttpBufferSize: one chunk plus its event envelope. */
    socketIoMaxBuffer: options.maxChunkSize + options.maxMessageBytes,
    busboyLimits: {
      // busboy flags a part as truncated when it reaches fileSize, so a file of exactly
      // maxFileSize needs one byte more to pass.
      fileSize: options.maxFileSize + 1,
      files: options.multipartMaxFiles,
      fields: options.multipartMaxFields,
      fieldSize: options.multipartMaxFieldSize,
    },
  } as const;
}
