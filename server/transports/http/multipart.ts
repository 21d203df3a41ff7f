/**
 * `POST /api/uploads/multipart`: multipart/form-data through busboy, each file part streamed
 * straight into the core as one upload (never a whole file in memory), with the hub's limits.
 *
 * - Form fields become the metadata of every file part after them, so fields must come before
 *   the files they describe. Two names are not metadata but apply to the next file part only:
 *   `size` (its length in bytes, when the sender knows it) and `sha256` (checked by the hub).
 * - A part's size bound, for progress and the size check, is its `size` field if sent, else the
 *   request's Content-Length minus the bytes of earlier parts, else maxFileSize; the upload's
 *   final size is what arrived.
 * - The answer comes once every part is stored (state `uploaded` or later); with
 *   `?wait=completed`, once every upload has reached a terminal state (processing included).
 */
import type { Request, RequestHandler, Response } from 'express';
import busboy from 'busboy';
import type { Readable } from 'node:stream';
import { ERROR_CODES, UploadHubError, toHubError } from '../../../shared/errors.js';
import { isTerminalState, type CreateInput, type ErrorInfo, type UploadState, type UploadStatus } from '../../../shared/messages.js';
import { derivedLimits } from '../../config.js';
import type { Principal } from '../../core/auth.js';
import type { UploadHub } from '../../core/UploadHub.js';
import { principalOf } from '../httpAuth.js';
import { UploadRateFloor } from './bodyTimeouts.js';
import { route, sendError, setRetryAfter } from './respond.js';
import { createBody, queryList } from './rest.js';

/** busboy's read and file buffers; Node's 16 KiB default costs several times the CPU at upload sizes. */
const STREAM_HIGH_WATER_MARK = 1024 * 1024;

/** Field names that describe the next file part instead of becoming metadata. */
export const PART_SIZE_FIELD = 'size';
export const PART_SHA256_FIELD = 'sha256';

/** One file part in the answer, in the order the parts came. */
export interface MultipartFileResult {
  /** The form field name of the part. */
  field: string;
  name: string;
  /** Absent when the part was refused before an upload was created. */
  id?: string;
  state: UploadState;
  size: number;
  bytes: number;
  sha256?: string;
  error?: ErrorInfo;
}

export interface MultipartResponse {
  uploads: MultipartFileResult[];
  /** Set when any part or the request failed; the HTTP status is this code's. */
  error?: ErrorInfo;
}

type FileStream = Readable & { truncated?: boolean };


function invalidPart(message: string): UploadHubError {
  return new UploadHubError('ERR_BAD_MESSAGE', message);
}

/**
 * What a body that busboy cannot parse is: the client sent its whole request, so the form is
 * malformed (400 ERR_BAD_MESSAGE), not aborted. The hub's own reasons (idle, aborted, too slow)
 * arrive as coded errors and stay as they are.
 */
function malformed(error: unknown): UploadHubError {
  if (error instanceof UploadHubError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  const hint = /^Unexpected end of (form|file)$/.test(reason) ? ': the body ended before the closing boundary' : '';
  return new UploadHubError('ERR_BAD_MESSAGE', `Malformed multipart body (${reason})${hint}`, { cause: error });
}

/** The upload's status once it has ended (or moved to another node); early, as it is, when `res` closes. */
async function whenEnded(hub: UploadHub, principal: Principal, id: string, res: Response): Promise<UploadStatus> {
  if (res.destroyed) return hub.status(principal, id);
  let onClose: (() => void) | undefined;
  const closed = new Promise<void>((resolve) => res.once('close', (onClose = resolve)));
  try {
    await Promise.race([hub.settledStatus(principal, id), closed]);
  } finally {
    if (onClose) res.off('close', onClose);
  }
  return hub.status(principal, id);
}

/** One file part, streamed into its upload by the hub's ingest(). */
class PartWriter {
  failure: UploadHubError | undefined;
  /** Bytes read from the part so far, stored or dropped. */
  bytesSeen = 0;
  private readonly aborter = new AbortController();

  constructor(
    private readonly hub: UploadHub,
    private readonly principal: Principal,
    readonly field: string,
    readonly name: string,
    private readonly stream: FileStream,
  ) {
    // busboy reports the limit as soon as it is reached, possibly before the upload exists.
    stream.once('limit', () => this.fail(new UploadHubError('ERR_FILE_TOO_LARGE', `File exceeds maxFileSize ${hub.options.maxFileSize}`)));
  }

  /**
   * Creates the upload and streams the part into it; the hub finalizes it at the part's end or
   * fails it (bytes removed) on the part's failure. `sizeKnown`: the sender gave the part's size
   * or the request's length, not only maxFileSize bounds it.
   */
  async run(input: CreateInput, sizeKnown: boolean): Promise<MultipartFileResult> {
    let created: UploadStatus;
    try {
      if (this.failure) throw this.failure;
      created = await this.hub.create(this.principal, input, { sizeKnown });
    } catch (error) {
      this.stream.resume();
      return this.refused(toHubError(error));
    }
    const id = created.id;
    try {
      await this.hub.ingest(this.principal, id, this.bytes(), { exactSize: false, signal: this.aborter.signal });
    } catch (error) {
      this.fail(toHubError(error));
    }
    // After a failure the rest of the part is read and dropped, so later parts still arrive.
    this.stream.resume();
    return this.result(await this.hub.status(this.principal, id));
  }

  /** Fails the part: the hub fails its upload at once, so the partial bytes go while the rest still arrives. */
  fail(error: UploadHubError): void {
    if (this.failure) return;
    this.failure = error;
    this.aborter.abort(error);
  }

  result(status: UploadStatus): MultipartFileResult {
    const result: MultipartFileResult = { field: this.field, name: status.name, id: status.id, state: status.state, size: status.size, bytes: status.bytes };
    if (status.sha256) result.sha256 = status.sha256;
    const error = status.error ?? (status.state === 'completed' ? undefined : this.failure?.toJSON());
    if (error) result.error = error;
    return result;
  }

  refused(error: UploadHubError): MultipartFileResult {
    return { field: this.field, name: this.name, state: 'failed', size: 0, bytes: 0, error: error.toJSON() };
  }

  /**
   * The part's bytes, counted as they are read. Leaving the loop early (a failure) keeps the
   * stream alive: busboy needs it read to the end to reach the next part.
   */
  private async *bytes(): AsyncGenerator<Uint8Array> {
    for await (const chunk of this.stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      this.bytesSeen += chunk.byteLength;
      yield chunk;
    }
    // busboy marks a part cut at maxFileSize as truncated when it ends.
    if (this.stream.truncated) throw new UploadHubError('ERR_FILE_TOO_LARGE', `File exceeds maxFileSize ${this.hub.options.maxFileSize}`);
  }
}

/** One multipart request: its fields so far, its parts, and request-wide errors. */
class MultipartForm {
  private readonly metadata: Record<string, string> = {};
  private next: { size?: string; sha256?: string } = {};
  private readonly parts: Array<Promise<MultipartFileResult | undefined>> = [];
  private readonly writers: PartWriter[] = [];
  /** A limit or parse error of the request as a whole. */
  error: UploadHubError | undefined;
  aborted = false;

  constructor(
    private readonly hub: UploadHub,
    private readonly principal: Principal,
    private readonly contentLength: number | undefined,
  ) {}

  /** Reads the whole body; resolves when every part has been stored or refused. */
  read(req: Request, parser: busboy.Busboy): Promise<MultipartFileResult[]> {
    const limits = derivedLimits(this.hub.options).busboyLimits;
    parser.on('field', (name, value, info) => {
      if (info.nameTruncated || info.valueTruncated) {
        this.error ??= new UploadHubError('ERR_TOO_MANY_FIELDS', `Field ${name} exceeds multipartMaxFieldSize ${limits.fieldSize}`);
      } else if (name === PART_SIZE_FIELD || name === PART_SHA256_FIELD) {
        this.next[name] = value;
      } else {
        this.metadata[name] = value;
      }
    });
    parser.on('file', (field, stream, info) => this.part(field, stream, info));
    parser.on('filesLimit', () => {
      this.error ??= new UploadHubError('ERR_TOO_MANY_FILES', `At most ${limits.files} files per request (multipartMaxFiles)`);
    });
    parser.on('fieldsLimit', () => {
      this.error ??= new UploadHubError('ERR_TOO_MANY_FIELDS', `At most ${limits.fields} fields per request (multipartMaxFields)`);
    });
    const onRequestClose = (): void => {
      if (req.complete) return;
      this.aborted = true;
      parser.destroy(new UploadHubError('ERR_UPLOAD_ABORTED'));
    };
    req.once('close', onRequestClose);
    // A client that stops sending holds its uploads attached: after idleTimeoutMs without a
    // byte the request fails, like an idle socket upload. The clock stops once the body is in.
    const idleMs = this.hub.options.idleTimeoutMs;
    const onIdle = (): void => {
      parser.destroy(new UploadHubError('ERR_IDLE_TIMEOUT', `No body bytes for ${idleMs} ms`));
    };
    if (idleMs > 0) req.setTimeout(idleMs, onIdle);
    const { minUploadRate, minUploadRateWindowMs } = this.hub.options;
    const rateFloor = new UploadRateFloor(req, minUploadRate, minUploadRateWindowMs, (rate) => {
      parser.destroy(new UploadHubError('ERR_TOO_SLOW', `The body arrived at ${Math.floor(rate)} B/s over ${minUploadRateWindowMs} ms, under minUploadRate ${minUploadRate} B/s`));
    });
    return new Promise((resolve) => {
      // busboy may report one failure twice (emitted, then again when destroyed): handle each.
      parser.on('error', (error: unknown) => {
        this.error ??= malformed(error);
        req.unpipe(parser);
        req.resume();
        // Destroys the file stream of the part being read, which fails its writer (see part()).
        // Earlier parts were read to their end and complete normally.
        if (!parser.destroyed) parser.destroy(this.error);
      });
      parser.once('close', () => {
        rateFloor.stop();
        req.off('close', onRequestClose);
        req.off('timeout', onIdle);
        if (idleMs > 0 && !req.socket.destroyed) req.socket.setTimeout(0);
        void Promise.all(this.parts).then((results) => resolve(results.filter((result) => result !== undefined)));
      });
      req.pipe(parser);
    });
  }

  private part(field: string, stream: FileStream, info: busboy.FileInfo): void {
    let attached: PartWriter | undefined;
    // busboy destroys the part's stream with the request's failure (a body ending inside the
    // part, an idle or aborted request): handled from the stream's first moment, skipped parts
    // included, or that 'error' would kill the process.
    stream.on('error', (error: unknown) => attached?.fail(this.error ?? malformed(error)));
    const declared = this.next;
    this.next = {};
    // A browser form's empty file input sends a part with an empty filename: no file chosen.
    if (info.filename === '') {
      stream.resume();
      return;
    }
    const name = info.filename ?? field;
    const writer = new PartWriter(this.hub, this.principal, field, name, stream);
    attached = writer;
    this.writers.push(writer);
    if (this.error) {
      stream.resume();
      this.parts.push(Promise.resolve(writer.refused(this.error)));
      return;
    }
    this.parts.push((async () => {
      const input = createBody.safeParse({
        name,
        size: declared.size !== undefined ? Number(declared.size) : this.bound(),
        mimeType: info.mimeType,
        metadata: { ...this.metadata },
        ...(declared.sha256 === undefined ? {} : { sha256: declared.sha256 }),
      });
      if (!input.success) {
        stream.resume();
        const issue = input.error.issues[0];
        return writer.refused(invalidPart(`Invalid part ${field}${issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : ''}: ${issue?.message ?? 'schema mismatch'}`));
      }
      return writer.run(input.data, declared.size !== undefined || this.contentLength !== undefined);
    })().catch((error: unknown) => writer.refused(toHubError(error))));
  }

  /** An upper bound of a part's size: what the body has room for, within maxFileSize. */
  private bound(): number {
    const max = this.hub.options.maxFileSize;
    if (this.contentLength === undefined) return max;
    // Bytes of earlier parts counted so far: an undercount only makes the bound looser.
    let used = 0;
    for (const writer of this.writers) used += writer.bytesSeen;
    return Math.min(max, Math.max(0, this.contentLength - used));
  }
}

function contentLengthOf(req: Request): number | undefined {
  const raw = req.headers['content-length'];
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
}

/** Answers before the body is read: the connection closes, so the unread body is not waited for. */
function refuse(res: Response, error: UploadHubError): void {
  res.setHeader('Connection', 'close');
  sendError(res, error);
}

export function multipartHandler(hub: UploadHub): RequestHandler {
  return route(async (req, res) => {
    let principal: Principal;
    try {
      principal = await principalOf(hub, req);
    } catch (error) {
      refuse(res, toHubError(error));
      return;
    }
    const wait = queryList(req.query.wait)[0];
    if (wait !== undefined && wait !== 'completed') {
      refuse(res, new UploadHubError('ERR_BAD_MESSAGE', '?wait= takes only "completed"'));
      return;
    }
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: derivedLimits(hub.options).busboyLimits,
        highWaterMark: STREAM_HIGH_WATER_MARK,
        fileHwm: STREAM_HIGH_WATER_MARK,
        defParamCharset: 'utf8',
      });
    } catch (error) {
      refuse(res, new UploadHubError('ERR_BAD_MESSAGE', `Expected a multipart/form-data body: ${(error as Error).message}`));
      return;
    }
    const form = new MultipartForm(hub, principal, contentLengthOf(req));
    let uploads = await form.read(req, parser);
    if (form.aborted || res.destroyed) return;
    if (wait === 'completed') {
      uploads = await Promise.all(uploads.map(async (upload) =>
        upload.id === undefined || isTerminalState(upload.state) ? upload : { ...upload, ...pick(await whenEnded(hub, principal, upload.id, res)) }));
    }
    const error = form.error?.toJSON() ?? uploads.find((upload) => upload.error)?.error ??
      (uploads.length === 0 ? new UploadHubError('ERR_BAD_MESSAGE', 'The form has no file part').toJSON() : undefined);
    const body: MultipartResponse = error === undefined ? { uploads } : { uploads, error };
    // A body not read to its end cannot be followed by another request on this connection.
    if (!req.complete) res.setHeader('Connection', 'close');
    if (error?.code === 'ERR_RATE_LIMITED') setRetryAfter(res, hub.limits.rate.retryAfterMs(principal.id));
    res.status(error === undefined ? 200 : ERROR_CODES[error.code].status).json(body);
  });
}

function pick(status: UploadStatus): Partial<MultipartFileResult> {
  const out: Partial<MultipartFileResult> = { state: status.state, size: status.size, bytes: status.bytes };
  if (status.sha256) out.sha256 = status.sha256;
  if (status.error) out.error = status.error;
  return out;
}
