/**
 * The REST calls the dashboard makes besides its one event stream: a page of the upload list
 * (`GET /api/uploads`, newest first) and cancel (`DELETE /api/uploads/:id`). Every call is
 * bounded in time and size; every failure is an UploadHubError with the hub's own code (a 403
 * is `ERR_FORBIDDEN`), so the page shows what went wrong instead of throwing.
 */
import { z } from 'zod';
import { isErrorCode, UploadHubError, type ErrorCode } from '../../shared/errors.js';
import { uploadStatus, type UploadState, type UploadStatus } from '../../shared/messages.js';

/** A list page is at most 1000 statuses; a larger answer is not one. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

const DEFAULT_TIMEOUT_MS = 15_000;

const listPage = z.object({ uploads: z.array(uploadStatus), nextCursor: z.string().nullable() });
export type UploadPage = z.infer<typeof listPage>;

const errorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export interface HubAddress {
  /** The hub's origin, e.g. `location.origin`. */
  base: string;
  token: string | undefined;
}

function headers(hub: HubAddress): Record<string, string> {
  return hub.token === undefined ? {} : { authorization: `Bearer ${hub.token}` };
}

/** The body as text, refusing more than `maxBytes` (a missing or lying Content-Length included). */
async function readBounded(response: Response, maxBytes: number): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      await reader.cancel();
      throw new UploadHubError('ERR_BAD_MESSAGE', `The hub's answer is larger than ${maxBytes} bytes`);
    }
    text += decoder.decode(value, { stream: true });
  }
}

function statusCode(status: number): ErrorCode {
  if (status === 401) return 'ERR_UNAUTHORIZED';
  if (status === 403) return 'ERR_FORBIDDEN';
  if (status === 404) return 'ERR_NOT_FOUND';
  return 'ERR_INTERNAL';
}

/** A hub request; the answer's JSON when it is 2xx, else the hub's coded error. */
async function call(hub: HubAddress, method: 'GET' | 'DELETE', path: string, timeoutMs: number): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(new URL(path, hub.base), { method, headers: headers(hub), cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    throw new UploadHubError(timedOut ? 'ERR_TIMEOUT' : 'ERR_CONNECTION_LOST', `${method} ${path}: ${timedOut ? 'no answer in time' : 'the hub cannot be reached'}`, { cause: error });
  }
  const text = await readBounded(response, MAX_ANSWER_BYTES);
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (response.ok) return body;
  const parsed = errorBody.safeParse(body);
  if (parsed.success && isErrorCode(parsed.data.error.code)) throw new UploadHubError(parsed.data.error.code, parsed.data.error.message);
  throw new UploadHubError(statusCode(response.status), `${method} ${path}: HTTP ${response.status}`);
}

export interface PageQuery {
  limit: number;
  cursor?: string | null | undefined;
  state?: readonly UploadState[];
}

/** One page of the uploads this token may see, newest first. */
export async function fetchUploadPage(hub: HubAddress, query: PageQuery, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<UploadPage> {
  const params = new URLSearchParams({ order: 'desc', limit: String(query.limit) });
  if (query.cursor) params.set('cursor', query.cursor);
  if (query.state && query.state.length > 0) params.set('state', query.state.join(','));
  const parsed = listPage.safeParse(await call(hub, 'GET', `/api/uploads?${params}`, timeoutMs));
  if (!parsed.success) throw new UploadHubError('ERR_BAD_MESSAGE', 'The hub answered the list with something else than a page of uploads');
  return parsed.data;
}

/** Cancels an upload on the hub; resolves with its status (a finished one unchanged). */
export async function cancelUpload(hub: HubAddress, id: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<UploadStatus> {
  const parsed = uploadStatus.safeParse(await call(hub, 'DELETE', `/api/uploads/${encodeURIComponent(id)}`, timeoutMs));
  if (!parsed.success) throw new UploadHubError('ERR_BAD_MESSAGE', 'The hub answered the cancel with something else than a status');
  return parsed.data;
}
