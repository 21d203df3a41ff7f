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
  /** The least share of maxBufferedBytes an attached upload gets however many share it (a slow upload's own window may be smaller). Default 256 KiB. */
  minWindow: positiveInt.default(256 * KiB),
  /** An upload's first window, before its rate is measured; it grows as acks come back. Default 64 KiB. */
  initialWindow: positiveInt.default(64 * KiB),
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
   * Unsent output one watcher may hold on the hub, on every transport. Past a quarter of it
   * progress is coalesced (and a `watching` reply's pieces wait); past it an SSE/NDJSON response
   * is closed and a socket gets ERR_SLOW_CONSUMER (close code 4503) and is disconnected. Its
   * client reconnects and resumes from its last event id; only a reader that stopped reading
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

/**
 * Options that cannot be used, one problem each, naming the option as it was given:
 * `PORT="abc": expected an integer` (environment), `--port "abc": ...` (flag), `port: ...` (code).
 */
export class OptionsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid hub options:\n${problems.map((problem) => `  ${problem}`).join('\n')}`);
    this.name = 'OptionsError';
  }
}

/** How options were given outside code (`PORT="abc"`), so errors name what the user typed. */
export type OptionLabels = Partial<Record<keyof HubOptions, string>>;

/** Validates options (throws OptionsError naming every bad option) and fills defaults. */
export function resolveOptions(input: HubOptionsInput = {}, labels: OptionLabels = {}): HubOptions {
  const label = (key: PropertyKey | undefined) => (typeof key === 'string' ? (labels[key as keyof HubOptions] ?? key) : '(options)');
  const result = hubOptionsSchema.safeParse(input);
  if (!result.success) throw new OptionsError(result.error.issues.map((issue) => `${label(issue.path[0])}: ${issue.message}`));
  const options = result.data;
  const problems: string[] = [];
  if (options.chunkSize > options.maxChunkSize) problems.push(`${label('chunkSize')}: must not exceed maxChunkSize (${options.maxChunkSize})`);
  if (options.minWindow > options.uploadWindow) problems.push(`${label('minWindow')}: must not exceed uploadWindow (${options.uploadWindow})`);
  if (problems.length > 0) throw new OptionsError(problems);
  return options;
}

/** What an option's value is, as far as parsing a string goes; read off its schema. */
export type OptionKind = 'integer' | 'number' | 'string' | 'boolean';

/** How one option is spelled outside code. */
export interface OptionSpelling {
  key: keyof HubOptions;
  kind: OptionKind;
  /** Its environment variable: `maxFileSize` -> `MAX_FILE_SIZE`. */
  env: string;
  /** Its `upload-hub serve` flag without the dashes: `maxFileSize` -> `max-file-size`. */
  flag: string;
  defaultValue: unknown;
}

function optionKind(key: string, schema: z.ZodType): OptionKind {
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) inner = inner.unwrap() as z.ZodType;
  if (inner instanceof z.ZodNumber) return inner.isInt ? 'integer' : 'number';
  if (inner instanceof z.ZodString || inner instanceof z.ZodEnum) return 'string';
  if (inner instanceof z.ZodBoolean) return 'boolean';
  throw new Error(`Option ${key} has a type no environment variable can carry: teach optionKind in server/config.ts to parse it`);
}

/**
 * Every option's environment variable and flag, generated from the schema so that a new option
 * gets both without a line of its own.
 */
export const OPTION_SPELLINGS: readonly OptionSpelling[] = Object.entries(hubOptionsSchema.shape).map(([key, schema]) => ({
  key: key as keyof HubOptions,
  kind: optionKind(key, schema),
  env: key.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase(),
  flag: key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`),
  defaultValue: schema.parse(undefined),
}));

// Strict on purpose: Number() would read '' as 0 (a random port) and '3000x' as NaN, and
// parseInt('1.5') as 1.
const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

function parseValue(spelling: OptionSpelling, raw: string): { value: string | number | boolean } | { problem: string } {
  if (raw === '') return { problem: `empty; give a value, or unset it for the default (${String(spelling.defaultValue)})` };
  switch (spelling.kind) {
    case 'integer':
      return INTEGER.test(raw) ? { value: Number(raw) } : { problem: 'expected an integer' };
    case 'number':
      return DECIMAL.test(raw) ? { value: Number(raw) } : { problem: 'expected a number' };
    case 'boolean':
      if (raw === 'true' || raw === '1') return { value: true };
      if (raw === 'false' || raw === '0') return { value: false };
      return { problem: 'expected true or false' };
    case 'string':
      return { value: raw };
  }
}

/**
 * Options for `upload-hub serve` and `npm start`: every option from its flag
 * (`--max-file-size 5`), else its environment variable (`MAX_FILE_SIZE=5`), else its default.
 * `flags` are parseArgs values keyed by flag name. Throws OptionsError naming every bad
 * variable and flag as it was given (`PORT="abc": expected an integer`).
 */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env, flags: Readonly<Record<string, string | boolean | undefined>> = {}): HubOptions {
  const input: Record<string, unknown> = {};
  const labels: OptionLabels = {};
  const problems: string[] = [];
  for (const spelling of OPTION_SPELLINGS) {
    const flag = flags[spelling.flag];
    const variable = env[spelling.env];
    let label: string;
    let parsed: ReturnType<typeof parseValue>;
    if (typeof flag === 'boolean') {
      label = `--${spelling.flag}`;
      parsed = { value: flag };
    } else if (flag !== undefined) {
      label = `--${spelling.flag} ${JSON.stringify(flag)}`;
      parsed = parseValue(spelling, flag);
    } else if (variable !== undefined) {
      label = `${spelling.env}=${JSON.stringify(variable)}`;
      parsed = parseValue(spelling, variable);
    } else continue;
    labels[spelling.key] = label;
    if ('problem' in parsed) problems.push(`${label}: ${parsed.problem}`);
    else input[spelling.key] = parsed.value;
  }
  if (problems.length > 0) throw new OptionsError(problems);
  return resolveOptions(input as HubOptionsInput, labels);
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
