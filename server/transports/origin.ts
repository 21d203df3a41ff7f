/**
 * Which web origins may drive the hub: the one rule for every transport. A browser sends
 * `Origin` with every WebSocket handshake and every cross-site POST or DELETE, a multipart form
 * post included (browsers send those without a CORS preflight), and lets the page read nothing
 * of the answer but still delivers the request. So a page on any site could otherwise open
 * sockets to a hub on the visitor's machine or network and list, create and cancel uploads.
 *
 * A request is allowed when it has no `Origin` (curl, Node, other non-browser clients: they
 * can send anything anyway), when its origin is the hub's own (its host and port are those of
 * the request's `Host` header, scheme http or https), or when the origin is listed in
 * `allowedOrigins` or `corsOrigins` (`*` in either allows every origin). Everything else gets
 * ERR_ORIGIN_NOT_ALLOWED (403) before the request is read or the socket exists.
 *
 * `X-Forwarded-Host` is not read: a proxy that rewrites `Host` makes the hub's public origin a
 * foreign one, so list it in `allowedOrigins` (or let the proxy pass `Host` through).
 *
 * Used by app.ts (every upgrade: raw WebSocket and Socket.IO's websocket transport), by the
 * Socket.IO transport (its long-polling handshake) and by the HTTP API (originGuard).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestHandler } from 'express';
import { UploadHubError } from '../../shared/errors.js';
import type { HubOptions } from '../config.js';
import { sendError } from './http/respond.js';

/** In `allowedOrigins` or `corsOrigins`: every origin. */
export const ANY_ORIGIN = '*';

export type OriginOptions = Pick<HubOptions, 'allowedOrigins' | 'corsOrigins'>;

/** Methods that change nothing: a cross-site page may send them, but without CORS it cannot read the answer. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What a CORS origin may send: every method and request header the API reads. */
const CORS_ALLOW_METHODS = 'GET, HEAD, POST, DELETE';
const CORS_ALLOW_HEADERS = 'Authorization, Content-Type, Last-Event-ID';
/** Response headers a CORS page may read besides the safelisted ones. */
const CORS_EXPOSE_HEADERS = 'Location, Retry-After';
/** How long a browser may reuse a preflight answer, in seconds. */
const CORS_MAX_AGE_S = 600;

/** Long enough for any real origin; a longer header is cut in the error message. */
const MAX_SHOWN_ORIGIN = 200;

/**
 * An origin as browsers serialize it: `HTTPS://App.Example.com:443/` -> `https://app.example.com`.
 * Undefined for what is not an http(s) origin: `null`, other schemes, a path, query or user info.
 */
export function canonicalOrigin(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') return undefined;
  // URL keeps a bare `?` or `#` as an empty search or hash; an origin has neither.
  if (/[?#]/.test(text)) return undefined;
  return url.origin;
}

/** Whether `origin` (canonical) is the one the request was sent to: same host and port as `Host`. */
function isOwnOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || host === '' || /[/?#@\\\s]/.test(host)) return false;
  const { protocol, host: originHost } = new URL(origin);
  try {
    // Read with the origin's scheme, so a default port written out (`hub.example:443`) compares equal.
    return new URL(`${protocol}//${host}`).host === originHost;
  } catch {
    return false;
  }
}

function listed(list: readonly string[], origin: string): boolean {
  return list.includes(ANY_ORIGIN) || list.includes(origin);
}

/**
 * Whether a request with these headers may open a socket or change state.
 *
 * @example originAllowed({ origin: 'http://127.0.0.1:3000', host: '127.0.0.1:3000' }, hub.options) // true
 */
export function originAllowed(headers: IncomingHttpHeaders, options: OriginOptions): boolean {
  const header = headers.origin;
  if (header === undefined) return true;
  if (options.allowedOrigins.includes(ANY_ORIGIN) || options.corsOrigins.includes(ANY_ORIGIN)) return true;
  const origin = canonicalOrigin(header);
  if (origin === undefined) return false;
  return listed(options.allowedOrigins, origin) || listed(options.corsOrigins, origin) || isOwnOrigin(origin, headers.host);
}

/** ERR_ORIGIN_NOT_ALLOWED for a request that may not go on, naming its origin; undefined when it may. */
export function originRefusal(headers: IncomingHttpHeaders, options: OriginOptions): UploadHubError | undefined {
  if (originAllowed(headers, options)) return undefined;
  const origin = headers.origin ?? '';
  const shown = origin.length > MAX_SHOWN_ORIGIN ? `${origin.slice(0, MAX_SHOWN_ORIGIN)}…` : origin;
  return new UploadHubError('ERR_ORIGIN_NOT_ALLOWED', `Origin ${shown} may not use this hub: only its own origin and ALLOWED_ORIGINS may`);
}

/** The `Access-Control-Allow-Origin` value for a request from a CORS origin; undefined for any other. */
function corsOrigin(headers: IncomingHttpHeaders, options: OriginOptions): string | undefined {
  if (headers.origin === undefined || options.corsOrigins.length === 0) return undefined;
  if (options.corsOrigins.includes(ANY_ORIGIN)) return ANY_ORIGIN;
  const origin = canonicalOrigin(headers.origin);
  return origin !== undefined && options.corsOrigins.includes(origin) ? origin : undefined;
}

/**
 * The HTTP API's half: CORS headers for `corsOrigins` (and their preflights answered, 204), and
 * every request that is not GET, HEAD or OPTIONS refused with 403 ERR_ORIGIN_NOT_ALLOWED when
 * its origin is not allowed. Mounted before every route, so a refused body is never read.
 */
export function originGuard(options: OriginOptions): RequestHandler {
  return (req, res, next) => {
    // With CORS on, answers differ by Origin: caches must keep them apart.
    if (options.corsOrigins.length > 0) res.vary('Origin');
    const allowOrigin = corsOrigin(req.headers, options);
    if (allowOrigin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', allowOrigin);
      res.setHeader('Access-Control-Expose-Headers', CORS_EXPOSE_HEADERS);
      if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
        res.setHeader('Access-Control-Allow-Methods', CORS_ALLOW_METHODS);
        res.setHeader('Access-Control-Allow-Headers', CORS_ALLOW_HEADERS);
        res.setHeader('Access-Control-Max-Age', String(CORS_MAX_AGE_S));
        res.status(204).end();
        return;
      }
    }
    const refused = SAFE_METHODS.has(req.method) ? undefined : originRefusal(req.headers, options);
    if (refused === undefined) {
      next();
      return;
    }
    // The body (a whole file, perhaps) is not read: closing the connection spares waiting for it.
    res.setHeader('Connection', 'close');
    sendError(res, refused);
  };
}
