/**
 * The hub's abuse limits, checked once here for every transport and route: what one principal
 * may hold and start (maxOpenUploadsPerPrincipal, createsPerMinutePerPrincipal), what one upload
 * may declare (maxMetadataBytes, allowedTypes, minFreeDiskBytes), and what its first bytes must
 * be (allowedTypes again, sniffed with file-type). Every refusal happens before a record exists
 * or while the bytes stream, never after they are all in. The per-address connection limit is
 * the transports' (transports/connectionLimit.ts): an address is a transport's to know.
 *
 * @example
 * const limits = new Limits(options, store, (id, error) => hub.fail(id, error));
 * await limits.admit(principal, { name: 'a.png', size: 3, mimeType: 'image/png' }, id);
 */
import { fileTypeFromBuffer } from 'file-type';
import { UploadHubError } from '../../shared/errors.js';
import { isTerminalState, type CreateInput } from '../../shared/messages.js';
import type { HubOptions } from '../config.js';
import type { UploadRecord, UploadStore } from '../store/UploadStore.js';
import { storageError } from '../store/storageError.js';
import type { Principal } from './auth.js';

/** What file-type reads to name a type (its `reasonableDetectionSizeInBytes`): the most ever held per sniff. */
export const SNIFF_BYTES = 4100;
/** Most metadata keys of one upload, whatever their size. */
export const MAX_METADATA_KEYS = 64;

const MINUTE_MS = 60_000;
const DEFAULT_MIME_TYPE = 'application/octet-stream';

export type LimitOptions = Pick<HubOptions, 'maxOpenUploadsPerPrincipal' | 'createsPerMinutePerPrincipal' | 'maxMetadataBytes' | 'allowedTypes' | 'minFreeDiskBytes'>;

/** What file-type named from the first bytes. */
export interface SniffedType {
  ext: string;
  mime: string;
}

/** Refuses metadata over `maxBytes` (UTF-8 bytes of its JSON) or over MAX_METADATA_KEYS keys. */
export function checkMetadata(metadata: Readonly<Record<string, string>> | undefined, maxBytes: number): void {
  if (metadata === undefined) return;
  const keys = Object.keys(metadata).length;
  if (keys > MAX_METADATA_KEYS) throw new UploadHubError('ERR_METADATA_TOO_LARGE', `Metadata has ${keys} keys; at most ${MAX_METADATA_KEYS}`);
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > maxBytes) throw new UploadHubError('ERR_METADATA_TOO_LARGE', `Metadata is ${bytes} bytes as JSON; at most maxMetadataBytes ${maxBytes}`);
}

/**
 * createsPerMinutePerPrincipal as a token bucket per principal: `perMinute` creates at once,
 * refilled evenly over a minute. A principal whose bucket has filled up again is forgotten, so
 * memory follows the principals active in the last minute, not every one ever seen.
 */
export class CreateRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweptAt: number;

  /** @param perMinute 0: no limit. */
  constructor(private readonly perMinute: number, private readonly now: () => number = Date.now) {
    this.sweptAt = now();
  }

  /** Takes one create from `principal`'s bucket: 0 when taken, else the ms until one will be there. */
  take(principal: string): number {
    if (this.perMinute === 0) return 0;
    const now = this.now();
    this.sweep(now);
    const tokens = this.tokens(principal, now);
    if (tokens < 1) return this.wait(tokens);
    this.buckets.set(principal, { tokens: tokens - 1, at: now });
    return 0;
  }

  /** Ms until `principal` may create again; 0 now. */
  retryAfterMs(principal: string): number {
    if (this.perMinute === 0) return 0;
    const tokens = this.tokens(principal, this.now());
    return tokens >= 1 ? 0 : this.wait(tokens);
  }

  /** Principals remembered (bounded: see the class). */
  get size(): number {
    return this.buckets.size;
  }

  private tokens(principal: string, now: number): number {
    const bucket = this.buckets.get(principal);
    if (bucket === undefined) return this.perMinute;
    // max(0, …): a clock stepping back refills nothing rather than draining the bucket.
    return Math.min(this.perMinute, bucket.tokens + (Math.max(0, now - bucket.at) * this.perMinute) / MINUTE_MS);
  }

  private wait(tokens: number): number {
    return Math.max(1, Math.ceil(((1 - tokens) * MINUTE_MS) / this.perMinute));
  }

  /** At most once a minute, so a create costs O(1) however many principals there are. */
  private sweep(now: number): void {
    if (now - this.sweptAt < MINUTE_MS) return;
    this.sweptAt = now;
    for (const [principal] of this.buckets) {
      if (this.tokens(principal, now) >= this.perMinute) this.buckets.delete(principal);
    }
  }
}

// Types that are text: file-type names none of them, so their bytes cannot be matched; a declared
// text type is taken at its word when its bytes look like text.
const TEXT_MIME_TYPES: ReadonlySet<string> = new Set([
  'application/json', 'application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/xml', 'application/javascript',
  'application/ecmascript', 'application/yaml', 'application/x-yaml', 'application/toml', 'application/csv', 'application/x-csv', 'application/sql',
]);
// For a type declared as nothing in particular (application/octet-stream), as the CLI and many forms send.
const TEXT_EXTENSIONS: ReadonlySet<string> = new Set([
  '.txt', '.text', '.csv', '.tsv', '.json', '.ndjson', '.jsonl', '.md', '.markdown', '.xml', '.yaml', '.yml', '.toml', '.log', '.html', '.htm',
  '.css', '.js', '.mjs', '.ts', '.svg', '.ini', '.conf', '.sql', '.sh',
]);
/** Extensions file-type names one way and people another. */
const EXTENSION_ALIASES: Readonly<Record<string, string>> = { '.jpeg': '.jpg', '.tif': '.tiff', '.htm': '.html' };

function baseMimeType(mimeType: string): string {
  return (mimeType.split(';')[0] ?? '').trim().toLowerCase();
}

function extensionEntry(entry: string): string {
  return EXTENSION_ALIASES[entry] ?? entry;
}

/** The name lower-cased, its extension spelled as allowedTypes entries are (`a.JPEG` -> `a.jpg`). */
function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  for (const [alias, ext] of Object.entries(EXTENSION_ALIASES)) {
    if (lower.endsWith(alias)) return `${lower.slice(0, -alias.length)}${ext}`;
  }
  return lower;
}

/**
 * allowedTypes: entries as config.ts normalizes them, MIME types (`image/png`), families
 * (`image/*`) and extensions (`.png`). Empty allows everything and checks nothing.
 */
export class TypeRules {
  private readonly mimeTypes = new Set<string>();
  private readonly families = new Set<string>();
  private readonly extensions: string[] = [];

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      if (entry.endsWith('/*')) this.families.add(entry.slice(0, -1));
      else if (entry.includes('/')) this.mimeTypes.add(entry);
      else this.extensions.push(extensionEntry(entry));
    }
  }

  get all(): boolean {
    return this.mimeTypes.size === 0 && this.families.size === 0 && this.extensions.length === 0;
  }

  /** At create: the declared MIME type is listed, or the name ends in a listed extension. */
  declared(mimeType: string | undefined, name: string): boolean {
    if (this.all) return true;
    const file = canonicalName(name);
    return this.mime(baseMimeType(mimeType || DEFAULT_MIME_TYPE)) || this.extensions.some((ext) => file.endsWith(ext));
  }

  /**
   * On the first bytes: what file-type named must be listed (as a MIME type or an extension).
   * Bytes it cannot name pass only as text: declared as a text type that `declared()` allows,
   * and holding no NUL byte (binary formats nearly always do; text in UTF-8 never does).
   */
  content(sniffed: SniffedType | undefined, head: Uint8Array, mimeType: string, name: string): boolean {
    if (this.all) return true;
    if (sniffed !== undefined) return this.mime(sniffed.mime.toLowerCase()) || this.extensions.includes(extensionEntry(`.${sniffed.ext.toLowerCase()}`));
    return this.declaredText(mimeType, name) && this.declared(mimeType, name) && !head.includes(0);
  }

  private mime(mimeType: string): boolean {
    if (this.mimeTypes.has(mimeType)) return true;
    const slash = mimeType.indexOf('/');
    return slash > 0 && this.families.has(mimeType.slice(0, slash + 1));
  }

  private declaredText(mimeType: string, name: string): boolean {
    const base = baseMimeType(mimeType || DEFAULT_MIME_TYPE);
    if (base.startsWith('text/') || TEXT_MIME_TYPES.has(base) || base.endsWith('+json') || base.endsWith('+xml')) return true;
    if (base !== DEFAULT_MIME_TYPE) return false;
    const dot = name.lastIndexOf('.');
    return dot >= 0 && TEXT_EXTENSIONS.has(name.slice(dot).toLowerCase());
  }
}

/** What file-type makes of the first bytes; undefined when it cannot tell (or trips over them). */
export async function sniffType(head: Uint8Array): Promise<SniffedType | undefined> {
  try {
    const found = await fileTypeFromBuffer(head);
    return found === undefined ? undefined : { ext: found.ext, mime: found.mime };
  } catch {
    return undefined;
  }
}

/** A content check under way or done: `refused` resolves true once a refused upload has failed. */
export interface ContentCheck {
  refused: Promise<boolean>;
  /** This call started the sniff (the caller may track it); later calls get the same check. */
  started: boolean;
}

export class Limits {
  readonly rate: CreateRate;
  readonly types: TypeRules;
  /** Unfinished uploads by owner, for maxOpenUploadsPerPrincipal. */
  private readonly open = new Map<string, Set<string>>();
  /** One sniff per upload, kept until it ends. */
  private readonly checks = new Map<string, Promise<boolean>>();

  /**
   * @param refuse fails an upload whose first bytes are of a type not allowed (the hub's fail
   *               path: bytes removed, record saved, `failed` published); awaited.
   */
  constructor(
    private readonly options: LimitOptions,
    private readonly store: UploadStore,
    private readonly refuse: (uploadId: string, error: UploadHubError) => Promise<void>,
    now: () => number = Date.now,
    /**
     * Several nodes: the principal's unfinished uploads across the cluster (the registry's
     * count). Absent: this node's own count. Creates racing on two nodes may both pass.
     */
    private readonly countOpen?: (owner: string) => Promise<number>,
  ) {
    this.rate = new CreateRate(options.createsPerMinutePerPrincipal, now);
    this.types = new TypeRules(options.allowedTypes);
  }

  /**
   * Every check a create passes before its record exists, the cheap ones first: metadata,
   * declared type, the principal's unfinished uploads, its rate, then the free disk. Passing
   * counts `id` as one of the principal's unfinished uploads (closed() gives it back).
   *
   * @param sizeKnown false when `input.size` is only an upper bound (a multipart part of unknown
   *                  length): the free disk cannot be judged from it, and a full disk fails the
   *                  upload as it writes instead.
   */
  async admit(principal: Principal, input: CreateInput, id: string, sizeKnown = true): Promise<void> {
    checkMetadata(input.metadata, this.options.maxMetadataBytes);
    if (!this.types.declared(input.mimeType, input.name)) {
      throw new UploadHubError('ERR_TYPE_NOT_ALLOWED', `${JSON.stringify(input.name)} of type ${input.mimeType || DEFAULT_MIME_TYPE} is not in allowedTypes`);
    }
    const max = this.options.maxOpenUploadsPerPrincipal;
    const here = this.open.get(principal.id)?.size ?? 0;
    const open = max > 0 && this.countOpen ? Math.max(here, await this.countOpen(principal.id)) : here;
    if (max > 0 && open >= max) {
      throw new UploadHubError('ERR_TOO_MANY_UPLOADS', `${open} unfinished uploads of this principal; at most maxOpenUploadsPerPrincipal ${max}: finish or cancel one first`);
    }
    const retryAfterMs = this.rate.take(principal.id);
    if (retryAfterMs > 0) {
      throw new UploadHubError('ERR_RATE_LIMITED', `More than createsPerMinutePerPrincipal ${this.options.createsPerMinutePerPrincipal} creates; retry after ${retryAfterMs} ms (retryAfterMs: ${retryAfterMs})`, { retryAfterMs });
    }
    // Counted before the disk is asked, so creates racing past this await still see each other.
    this.opened(principal.id, id);
    try {
      if (sizeKnown) await this.assertRoom(input.size);
    } catch (error) {
      this.closed(principal.id, id);
      throw error;
    }
  }

  /** An unfinished upload of `owner` (a create, or one found at start-up). */
  opened(owner: string, id: string): void {
    let ids = this.open.get(owner);
    if (ids === undefined) this.open.set(owner, (ids = new Set()));
    ids.add(id);
  }

  /** The upload ended (or was never created): it no longer counts, and its check is forgotten. */
  closed(owner: string, id: string): void {
    const ids = this.open.get(owner);
    if (ids?.delete(id) === true && ids.size === 0) this.open.delete(owner);
    this.checks.delete(id);
  }

  /** Unfinished uploads of `owner`, as counted for maxOpenUploadsPerPrincipal. */
  openUploads(owner: string): number {
    return this.open.get(owner)?.size ?? 0;
  }

  /**
   * allowedTypes against the upload's first bytes, sniffed once: as soon as SNIFF_BYTES are
   * committed, or at the end for a smaller file (`complete`). Undefined while there is nothing
   * to check yet (or nothing to check at all: allowedTypes empty, upload over).
   */
  checkContent(record: UploadRecord, committed: number, complete: boolean): ContentCheck | undefined {
    if (this.types.all || isTerminalState(record.state)) return undefined;
    const check = this.checks.get(record.id);
    if (check !== undefined) return { refused: check, started: false };
    if (!complete && committed < SNIFF_BYTES) return undefined;
    const refused = this.sniff(record, Math.min(committed, SNIFF_BYTES));
    this.checks.set(record.id, refused);
    return { refused, started: true };
  }

  private async sniff(record: UploadRecord, bytes: number): Promise<boolean> {
    let refusal: UploadHubError | undefined;
    try {
      const head = await this.readHead(record.id, bytes);
      const sniffed = await sniffType(head);
      if (!this.types.content(sniffed, head, record.mimeType, record.name)) {
        refusal = new UploadHubError('ERR_TYPE_NOT_ALLOWED', sniffed !== undefined
          ? `The content is ${sniffed.mime} (.${sniffed.ext}), which is not in allowedTypes`
          : `The content's type cannot be told from its first bytes and is not text of an allowed type (declared ${record.mimeType})`);
      }
    } catch (error) {
      refusal = storageError(error, "Reading the upload's first bytes");
    }
    if (refusal === undefined) return false;
    await this.refuse(record.id, refusal).catch(() => undefined);
    return true;
  }

  /** The first `bytes` (at most SNIFF_BYTES) of what the store holds, never more in memory. */
  private async readHead(id: string, bytes: number): Promise<Uint8Array> {
    if (bytes === 0) return new Uint8Array(0);
    const pieces: Buffer[] = [];
    let length = 0;
    for await (const piece of this.store.createReadStream(id, { start: 0, end: bytes })) {
      pieces.push(piece as Buffer);
      length += (piece as Buffer).byteLength;
    }
    return Buffer.concat(pieces, Math.min(length, bytes));
  }

  /** minFreeDiskBytes: what the store has free, less the declared size, must stay above it. */
  private async assertRoom(size: number): Promise<void> {
    if (this.store.freeBytes === undefined) return;
    let free: number;
    try {
      free = await this.store.freeBytes();
    } catch (error) {
      throw storageError(error, 'Reading the free space of the data directory');
    }
    const min = this.options.minFreeDiskBytes;
    if (free - size < min) {
      throw new UploadHubError('ERR_STORAGE_FULL', `The hub has no room for ${size} bytes: it keeps minFreeDiskBytes (${min}) free on its disk`);
    }
  }
}
