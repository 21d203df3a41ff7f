/**
 * One log line per HTTP request and per upgrade, with tokens kept out: a token sent in the
 * query (`?token=`, for EventSource, which cannot set headers) is redacted from the logged URL,
 * and headers (Authorization, Cookie) are never logged.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';

/** Query parameters that carry credentials. */
const SECRET_PARAMS = /^(token|access_token|auth|authorization|api_key|apikey)$/i;

/** `url` with the value of every credential-carrying query parameter replaced. */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query === -1) return url;
  const parts = url.slice(query + 1).split('&').map((pair) => {
    const equals = pair.indexOf('=');
    const name = equals === -1 ? pair : pair.slice(0, equals);
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      // A malformed escape is logged as sent.
    }
    return equals !== -1 && SECRET_PARAMS.test(decoded) ? `${name}=[REDACTED]` : pair;
  });
  return `${url.slice(0, query)}?${parts.join('&')}`;
}

function remoteOf(req: IncomingMessage): string | undefined {
  return req.socket.remoteAddress;
}

/** Express middleware: one `info` line when each response ends (or the client goes away). */
export function accessLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.info({ method: req.method, url: redactUrl(req.originalUrl), status: res.statusCode, ms: Math.round(ms * 10) / 10, remote: remoteOf(req), ...(res.writableFinished ? {} : { aborted: true }) }, 'http request');
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}

/** The line for an upgrade request (ws, Socket.IO): logged when it arrives, whatever its fate. */
export function logUpgrade(logger: Logger, req: IncomingMessage): void {
  logger.info({ method: req.method, url: redactUrl(req.url ?? '/'), upgrade: req.headers.upgrade, remote: remoteOf(req) }, 'upgrade request');
}
