/**
 * Who is asking, for every HTTP route. `EventSource` cannot set headers, so besides the
 * `Authorization: Bearer <token>` header the token is taken from a cookie or a query parameter,
 * in that order of preference.
 *
 * The query parameter ends up in access logs, proxy logs and browser history: use it only
 * with short-lived tokens, and prefer the header (fetch, curl) or the cookie (EventSource in a
 * browser on the hub's own origin).
 */
import type { IncomingMessage } from 'node:http';
import type { Principal } from '../core/auth.js';
import type { UploadHub } from '../core/UploadHub.js';

/** Cookie carrying the token, e.g. `Set-Cookie: upload_hub_token=...; HttpOnly; SameSite=Strict`. */
export const TOKEN_COOKIE = 'upload_hub_token';
/** Query parameter carrying the token: `/api/events?token=...`. */
export const TOKEN_QUERY_PARAM = 'token';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function fromCookie(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== TOKEN_COOKIE) continue;
    const raw = pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}

function fromQuery(url: string | undefined): string | undefined {
  const q = url?.indexOf('?') ?? -1;
  if (!url || q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get(TOKEN_QUERY_PARAM) ?? undefined;
}

/** The request's token: Authorization header, else the cookie, else `?token=`. */
export function tokenOf(req: IncomingMessage): string | undefined {
  const bearer = BEARER.exec(req.headers.authorization ?? '');
  if (bearer) return bearer[1];
  return fromCookie(req.headers.cookie) ?? fromQuery(req.url);
}

/** The request's principal through the hub's authenticate hook; throws ERR_UNAUTHORIZED when refused. */
export function principalOf(hub: UploadHub, req: IncomingMessage): Promise<Principal> {
  return hub.authenticate(tokenOf(req));
}
