/**
 * Reaching a hub from the client commands (send, watch, status, ls, cancel): the --url, --token
 * and --transport flags with their variables, the first socket connection, and the REST
 * requests. Each failure to reach the hub, or a refused token, is one line and exit 3.
 */
import { UploadHubError, isErrorCode, toHubError } from '../../shared/errors.js';
import type { UploadClient, TransportName } from '../../client/node.js';
import { CliError, EXIT, usageError } from './errors.js';

export const TRANSPORTS: readonly TransportName[] = ['ws', 'socket.io'];
export const DEFAULT_URL = 'http://127.0.0.1:3000';
/**
 * How long a command waits for the hub's first answer, and for each REST reply. An address that
 * drops packets gives no error at all, only the kernel's connect timeout (two minutes on Linux).
 */
export const CONNECT_TIMEOUT_MS = 10_000;

export interface HubAccess {
  url: string;
  token?: string;
  transport: TransportName;
}

/** The flags as commander parsed them. */
export interface HubFlags {
  url?: string;
  token?: string;
  transport?: string;
}

/** Checks --url/UPLOAD_HUB_URL and --transport; every problem at once, exit 2. */
export function hubAccess(flags: HubFlags, env: NodeJS.ProcessEnv): HubAccess {
  const problems: string[] = [];
  const [url, urlLabel] = flags.url !== undefined ? [flags.url, '--url'] : env.UPLOAD_HUB_URL !== undefined ? [env.UPLOAD_HUB_URL, 'UPLOAD_HUB_URL'] : [DEFAULT_URL, 'url'];
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  // 'localhost:3000' parses, as scheme "localhost:": only http(s) is a hub's address.
  if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') {
    problems.push(`${urlLabel} ${JSON.stringify(url)} is not a hub URL: it needs a scheme, http:// or https:// (e.g. ${DEFAULT_URL})`);
  }
  const transport = flags.transport ?? 'ws';
  if (!(TRANSPORTS as readonly string[]).includes(transport)) {
    problems.push(`--transport ${JSON.stringify(transport)} is not a transport: use ${TRANSPORTS.join(' or ')}`);
  }
  if (problems.length > 0) throw usageError(problems);
  const token = flags.token ?? env.UPLOAD_HUB_TOKEN;
  return { url, transport: transport as TransportName, ...(token === undefined || token === '' ? {} : { token }) };
}

/** The hub could not be asked at all, or would not take the token: exit 3, naming which. */
function unreachable(access: HubAccess, how: string, error: UploadHubError): CliError {
  const what = error.code === 'ERR_UNAUTHORIZED' ? 'the hub refused the token' : error.code === 'ERR_CONNECTION_LOST' || error.code === 'ERR_TIMEOUT' ? 'cannot reach the hub' : 'the hub refused the connection';
  return new CliError(`${what} at ${access.url} (${how}): ${error.code} ${error.message}`, EXIT.UNREACHABLE);
}

/**
 * Opens the client's connection once, bounded by CONNECT_TIMEOUT_MS. Without this an
 * unreachable hub would be tried for the client's whole reconnect budget before anything is
 * printed.
 */
export async function reach(client: UploadClient, access: HubAccess): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UploadHubError('ERR_TIMEOUT', `no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
  });
  try {
    await Promise.race([client.ping(), timeout]);
  } catch (error) {
    const hubError = toHubError(error, 'ERR_CONNECTION_LOST');
    throw unreachable(access, access.transport, hubError.code === 'ERR_TIMEOUT' ? new UploadHubError('ERR_CONNECTION_LOST', hubError.message) : hubError);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One REST request to the hub. Resolves with the JSON body of a 2xx answer; a hub error other
 * than a refused token rejects with its UploadHubError (the caller decides what it means); no
 * answer, or 401, is a CliError with exit 3.
 */
export async function hubRequest<T>(access: HubAccess, method: 'GET' | 'DELETE', path: string): Promise<T> {
  let response: Response;
  let body: unknown;
  try {
    response = await fetch(new URL(path, access.url), {
      method,
      headers: { accept: 'application/json', ...(access.token === undefined ? {} : { authorization: `Bearer ${access.token}` }) },
      signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
    });
    body = await response.json().catch(() => undefined);
  } catch (error) {
    // fetch says "fetch failed" and keeps the reason (ECONNREFUSED, ENOTFOUND) in its cause.
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${CONNECT_TIMEOUT_MS / 1000} s` : (cause?.code ?? cause?.message ?? (error as Error).message);
    throw unreachable(access, 'http', new UploadHubError('ERR_CONNECTION_LOST', reason));
  }
  if (response.ok) return body as T;
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const hubError = isErrorCode(error?.code)
    ? new UploadHubError(error.code, typeof error.message === 'string' ? error.message : undefined)
    : new UploadHubError('ERR_CONNECTION_LOST', `HTTP ${response.status} from something that is not an upload hub`);
  if (hubError.code === 'ERR_UNAUTHORIZED' || hubError.code === 'ERR_CONNECTION_LOST') throw unreachable(access, 'http', hubError);
  throw hubError;
}
