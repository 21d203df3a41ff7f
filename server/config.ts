/**
 * Every option of the hub with its default and unit, validated once at start-up. Transport
 * limits (`ws` maxPayload, Socket.IO maxHttpBufferSize, busboy limits) are derived from these
 * numbers in `derivedLimits`, never set on their own.
 */
import { z } from 'zod';
import { MAX_FRAME_HEADER_BYTES } from '../shared/frame.js';
import { ANY_ORIGIN, canonicalOrigin } from './transports/origin.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const bytes = z.number().int().min(0);
const positiveInt = z.number().int().min(1);
const ms = z.number().int().min(0);

/** Web origins, each kept as browsers write it (`https://app.example.com`), or `*`. */
const origins = z.array(z.string().transform((value, ctx) => {
  if (value === ANY_ORIGIN) return value;
  const origin = canonicalOrigin(value);
  if (origin !== undefined) return origin;
  ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not an origin: expected scheme://host[:port] with scheme http or https and no path (https://app.example.com), or *` });
  return z.NEVER;
}));

/**
 * allowedTypes entries, lower-cased: a MIME type (`image/png`), a MIME family (`image/*`), or a
 * file name extension, kept with its dot (`png` and `.png` are `.png`).
 */
const MIME_TYPE_ENTRY = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/;
const EXTENSION_ENTRY = /^\.?[a-z0-9][a-z0-9_+-]*$/;
const contentTypes = z.array(z.string().transform((value, ctx) => {
  const entry = value.trim().toLowerCase();
  if (MIME_TYPE_ENTRY.test(entry)) return entry;
  if (EXTENSION_ENTRY.test(entry)) return entry.startsWith('.') ? entry : `.${entry}`;
  ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a type: expected a MIME type (image/png), a family (image/*) or an extension (.png)` });
  return z.NEVER;
}));

/** What an option's number counts, shown in `serve --help` (`--max-file-size <bytes>`). */
export type OptionUnit = 'bytes' | 'bytes/s' | 'ms' | 'percent';

/**
 * What `serve --help` says of an option, kept on its schema entry so there is one definition:
 * what it does (its default is read off the schema), the unit of its number, and for a value
 * that has no unit the placeholder of its flag.
 */
type OptionDoc = {
  description: string;
  unit?: OptionUnit;
  placeholder?: string;
};

function doc(description: string, unit?: OptionUnit, placeholder?: string): OptionDoc {
  return { description, ...(unit === undefined ? {} : { unit }), ...(placeholder === undefined ? {} : { placeholder }) };
}

export const hubOptionsSchema = z.object({
  port: z.number().int().min(0).max(65535).default(3000).meta(doc('TCP port; 0 picks a free one', undefined, 'port')),
  host: z.string().default('127.0.0.1').meta(doc('interface to listen on', undefined, 'address')),
  dataDir: z.string().default('./data').meta(doc('where bytes and upload records live; one hub per directory', undefined, 'path')),
  tokensFile: z.string().min(1).optional().meta(doc('JSON file of [{ id, role, tokenSha256 }] admitting tokens (upload-hub token makes entries); re-read on SIGHUP. Unset: anonymous, loopback only', undefined, 'path')),
  insecure: z.boolean().default(false).meta(doc('let a hub without tokens listen on a non-loopback host')),

  maxFileSize: bytes.default(10 * GiB).meta(doc('largest file accepted', 'bytes')),
  maxChunkSize: positiveInt.default(4 * MiB).meta(doc('largest chunk accepted; ws maxPayload and Socket.IO maxHttpBufferSize derive from it', 'bytes')),
  chunkSize: positiveInt.default(1 * MiB).meta(doc('chunk size recommended to clients (announced in welcome)', 'bytes')),
  uploadWindow: positiveInt.default(8 * MiB).meta(doc('bytes one upload may have in flight (granted, not yet on disk)', 'bytes')),
  maxBufferedBytes: positiveInt.default(64 * MiB).meta(doc('bytes all uploads together may have in flight; windows shrink to share it', 'bytes')),
  minWindow: positiveInt.default(256 * KiB).meta(doc('least share of maxBufferedBytes an attached upload gets however many share it (a slow upload\'s own window may be smaller)', 'bytes')),
  initialWindow: positiveInt.default(64 * KiB).meta(doc("an upload's first window, before its rate is measured; it grows as acks come back", 'bytes')),
  maxUploadsPerConnection: positiveInt.default(16).meta(doc('uploads one connection may have attached at once')),
  maxMessageBytes: positiveInt.default(64 * KiB).meta(doc('largest JSON control message', 'bytes')),

  idleTimeoutMs: ms.default(30_000).meta(doc('an attached upload that receives no chunk for this long is detached (it stays resumable)', 'ms')),
  helloTimeoutMs: ms.default(10_000).meta(doc('a connection must say hello within this long', 'ms')),
  uploadTtlMs: ms.default(24 * 60 * 60 * 1000).meta(doc('an incomplete upload untouched this long expires and its bytes are deleted; 0 never', 'ms')),
  finishedRetentionMs: ms.default(24 * 60 * 60 * 1000).meta(doc("a finished upload's record is kept this long for status queries; 0 forever", 'ms')),

  progressIntervalMs: ms.default(100).meta(doc('least time between two progress events of one upload to one subscriber; 0 off', 'ms')),
  progressMinStepPercent: z.number().min(0).max(100).default(1).meta(doc('least step between two progress events of one upload; 0 off', 'percent')),

  eventHistorySize: positiveInt.default(10_000).meta(doc('events kept for replay (SSE Last-Event-ID, watch since)')),
  heartbeatMs: ms.default(15_000).meta(doc('SSE heartbeat comment and WebSocket ping interval; 0 off', 'ms')),
  sseRetryMs: ms.default(2_000).meta(doc('retry: sent to EventSource clients', 'ms')),
  // Past a quarter of it progress is coalesced (and a `watching` reply's pieces wait); past it an
  // SSE/NDJSON response is closed and a socket gets ERR_SLOW_CONSUMER (close code 4503) and is
  // disconnected. Its client reconnects and resumes from its last event id; only a reader that
  // stopped reading gets here.
  watcherMaxBufferedBytes: positiveInt.default(1 * MiB).meta(doc('unsent output one watcher may hold on the hub, on every transport, before it is disconnected (ERR_SLOW_CONSUMER)', 'bytes')),

  requestTimeoutMs: ms.default(30_000).meta(doc('bodies of routes that are not uploads (JSON) must arrive within this long (408 ERR_REQUEST_TIMEOUT); 0 no limit', 'ms')),
  minUploadRate: bytes.default(1 * KiB).meta(doc('an HTTP upload body slower than this, averaged over minUploadRateWindowMs, is aborted with ERR_TOO_SLOW; 0 off', 'bytes/s')),
  minUploadRateWindowMs: positiveInt.default(30_000).meta(doc('the window minUploadRate is averaged over', 'ms')),

  // A page elsewhere must not drive the hub through its visitors' browsers (transports/origin.ts).
  allowedOrigins: origins.default([]).meta(doc("web origins besides the hub's own whose pages may open sockets and send POST/DELETE (https://app.example.com,...); * allows all", undefined, 'origins')),
  corsOrigins: origins.default([]).meta(doc('web origins whose pages may call the HTTP API (CORS; off when empty); each is also an allowed origin; * allows all', undefined, 'origins')),

  // Abuse limits, each refused with its own code (core/Limits.ts; per address:
  // transports/connectionLimit.ts). Anonymous connections are one principal, `anonymous`.
  maxOpenUploadsPerPrincipal: z.number().int().min(0).default(100).meta(doc('unfinished uploads one principal may own at once (429 ERR_TOO_MANY_UPLOADS); 0 no limit')),
  createsPerMinutePerPrincipal: z.number().int().min(0).default(120).meta(doc('creates one principal may make per minute, as a bucket refilled over the minute (429 ERR_RATE_LIMITED with Retry-After); 0 no limit')),
  maxConnectionsPerIp: z.number().int().min(0).default(64).meta(doc('WebSocket and Socket.IO connections and SSE/NDJSON streams one client address may hold together (429 ERR_TOO_MANY_CONNECTIONS); 0 no limit')),
  maxMetadataBytes: positiveInt.default(8 * KiB).meta(doc("an upload's metadata as UTF-8 JSON, at most 64 keys (413 ERR_METADATA_TOO_LARGE)", 'bytes')),
  allowedTypes: contentTypes.default([]).meta(doc('MIME types (image/png), families (image/*) or extensions (.png) an upload may have, checked at create and against its first bytes (415 ERR_TYPE_NOT_ALLOWED); empty allows all', undefined, 'types')),
  minFreeDiskBytes: bytes.default(1 * GiB).meta(doc("a create whose declared size would leave less than this free in dataDir is refused before any byte (507 ERR_STORAGE_FULL)", 'bytes')),

  multipartMaxFiles: positiveInt.default(10).meta(doc('multipart: most files per request')),
  multipartMaxFields: positiveInt.default(100).meta(doc('multipart: most non-file fields per request')),
  multipartMaxFieldSize: positiveInt.default(64 * KiB).meta(doc('multipart: largest field value', 'bytes')),

  uploadShare: z.number().min(0).max(100).default(50).meta(doc('part of the bar the upload phase fills when stages run', 'percent')),
  processingConcurrency: positiveInt.default(2).meta(doc('uploads processed at once; the rest wait in a queue')),
  stageTimeoutMs: ms.default(10 * 60 * 1000).meta(doc('a stage running longer than this fails with ERR_STAGE_TIMEOUT; 0 no limit', 'ms')),
  abortDeadlineMs: ms.default(5_000).meta(doc('after abort, how long a stage may take to settle before it is abandoned', 'ms')),
  logLinesPerSecond: positiveInt.default(20).meta(doc('log lines per second per upload that reach subscribers; the rest are counted in a summary line')),

  // Scale-out (server/store/redis/): without redisUrl nothing of Redis is loaded.
  redisUrl: z.string().regex(/^rediss?:\/\/[^\s]+$/, 'expected redis://host:port[/db] or rediss://...').optional().meta(doc('Redis to share uploads, leases and events with other hub nodes (redis://host:6379/0); every node must see the same dataDir. Unset: one node, no Redis', undefined, 'url')),
  redisPrefix: z.string().min(1).default('upload-hub:').meta(doc('prefix of every Redis key of this hub cluster', undefined, 'prefix')),
  nodeId: z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only').optional().meta(doc("this node's name in leases and logs; unique per cluster. Unset: hostname-pid", undefined, 'name')),
  leaseTtlMs: positiveInt.default(5_000).meta(doc("how long a node's lease on an upload lasts unless renewed: a node cut off from Redis longer loses its uploads to the others (a dead node's are taken once its liveness key, min(2 s, this), runs out)", 'ms')),
  shutdownTimeoutMs: ms.default(10_000).meta(doc('SIGTERM: how long a draining node waits for writes and stages to finish before it releases its uploads and exits', 'ms')),
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
export type OptionKind = 'integer' | 'number' | 'string' | 'boolean' | 'list';

/** How one option is spelled outside code. */
export interface OptionSpelling {
  key: keyof HubOptions;
  kind: OptionKind;
  /** Its environment variable: `maxFileSize` -> `MAX_FILE_SIZE`. */
  env: string;
  /** Its `upload-hub serve` flag without the dashes: `maxFileSize` -> `max-file-size`. */
  flag: string;
  defaultValue: unknown;
  /** What it does, for `serve --help`. */
  description: string;
  unit: OptionUnit | undefined;
  /** What its flag takes, for `serve --help`: `<bytes>`, `<ms>`, `<path>`, `<n>`. */
  placeholder: string;
}

function optionKind(key: string, schema: z.ZodType): OptionKind {
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) inner = inner.unwrap() as z.ZodType;
  if (inner instanceof z.ZodNumber) return inner.isInt ? 'integer' : 'number';
  if (inner instanceof z.ZodString || inner instanceof z.ZodEnum) return 'string';
  if (inner instanceof z.ZodBoolean) return 'boolean';
  if (inner instanceof z.ZodArray) return 'list';
  throw new Error(`Option ${key} has a type no environment variable can carry: teach optionKind in server/config.ts to parse it`);
}

function describeOption(key: string, schema: z.ZodType): Pick<OptionSpelling, 'description' | 'unit' | 'placeholder'> {
  const meta = schema.meta() as Partial<OptionDoc> | undefined;
  if (typeof meta?.description !== 'string') throw new Error(`Option ${key} has no description: add .meta(doc(...)) to it in server/config.ts (serve --help shows it)`);
  const kind = optionKind(key, schema);
  return { description: meta.description, unit: meta.unit, placeholder: meta.unit ?? meta.placeholder ?? (kind === 'string' ? 'text' : kind === 'boolean' ? '' : 'n') };
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
  ...describeOption(key, schema),
}));

// Strict on purpose: Number() would read '' as 0 (a random port) and '3000x' as NaN, and
// parseInt('1.5') as 1.
const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

function parseValue(spelling: OptionSpelling, raw: string): { value: string | number | boolean | string[] } | { problem: string } {
  if (raw === '') return { problem: `empty; give a value, or unset it for the default (${shownDefault(spelling.defaultValue)})` };
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
    case 'list':
      // Comma-separated; each item is then checked by the option's schema, which names it.
      return { value: raw.split(',').map((item) => item.trim()).filter((item) => item !== '') };
  }
}

function shownDefault(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',');
  return String(value);
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
