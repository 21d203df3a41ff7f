/**
 * JSON answers and errors for the HTTP routes. Every error is `{ error: { code, message } }`
 * with the HTTP status of its code in shared/errors.ts, so HTTP clients see the same codes as
 * socket clients.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { UploadHubError, toHubError } from '../../../shared/errors.js';
import { UPLOAD_ID_PATTERN, type ErrorInfo } from '../../../shared/messages.js';

export interface ErrorBody {
  error: ErrorInfo;
}

export function sendError(res: Response, error: unknown, extra: Record<string, unknown> = {}): void {
  const hubError = toHubError(error);
  if (res.headersSent) {
    res.destroy(hubError);
    return;
  }
  if (hubError.retryAfterMs !== undefined) setRetryAfter(res, hubError.retryAfterMs);
  res.status(hubError.status).json({ ...extra, error: hubError.toJSON() } satisfies ErrorBody & Record<string, unknown>);
}

/** `Retry-After` in whole seconds (HTTP has no finer unit), rounded up so a client never comes back early. */
export function setRetryAfter(res: Response, ms: number): void {
  res.setHeader('Retry-After', String(Math.max(1, Math.ceil(ms / 1000))));
}

/** Lets an async route throw: the error becomes its JSON answer. */
export function route(handler: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return (req, res) => {
    handler(req, res).catch((error: unknown) => sendError(res, error));
  };
}

/** The `:id` parameter, refused as ERR_NOT_FOUND before it reaches the core when it cannot be an id. */
export function uploadIdParam(req: Request): string {
  const id = req.params.id;
  if (typeof id !== 'string' || !UPLOAD_ID_PATTERN.test(id)) throw new UploadHubError('ERR_NOT_FOUND', 'No such upload');
  return id;
}

/**
 * Maps body-parser failures (bad JSON, body too large) to the hub's codes, and any other error
 * express or body-parser raised for the request itself (a path that does not decode, a body that
 * does not inflate: a 4xx `status`) to ERR_BAD_MESSAGE rather than ERR_INTERNAL.
 */
export function jsonErrors(error: unknown, _req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) {
    next(error);
    return;
  }
  const { type, status } = (error ?? {}) as { type?: unknown; status?: unknown };
  if (type === 'entity.too.large') sendError(res, new UploadHubError('ERR_MESSAGE_TOO_LARGE'));
  else if (type === 'entity.parse.failed') sendError(res, new UploadHubError('ERR_BAD_MESSAGE', 'Body is not valid JSON'));
  else if (error instanceof UploadHubError) sendError(res, error);
  else if (typeof type === 'string' || (typeof status === 'number' && status >= 400 && status < 500)) sendError(res, new UploadHubError('ERR_BAD_MESSAGE', (error as Error).message));
  else sendError(res, error);
}

/** The answer under /api when no route takes the request: a coded 404 like every other error, not express's HTML page. */
export function noRoute(req: Request, res: Response): void {
  sendError(res, new UploadHubError('ERR_NOT_FOUND', `No route ${req.method} ${req.originalUrl.split('?')[0]}`));
}
