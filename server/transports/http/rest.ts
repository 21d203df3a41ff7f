/**
 * The REST routes over the core: create, list, status, cancel. Bodies and queries are checked
 * with the protocol's zod schemas, so a create over HTTP accepts exactly what `create` over a
 * socket does.
 */
import express, { type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import { UploadHubError } from '../../../shared/errors.js';
import { createMessage, UPLOAD_ID_PATTERN, UPLOAD_STATES, type UploadStatus } from '../../../shared/messages.js';
import type { ListFilter, ListOrder, ListPosition, UploadHub } from '../../core/UploadHub.js';
import { principalOf } from '../httpAuth.js';
import { jsonErrors, route, sendError, uploadIdParam } from './respond.js';

/** `POST /api/uploads` body: the socket `create` message without `type` and `reqId`. */
export const createBody = createMessage.omit({ type: true, reqId: true });

const stateFilter = z.array(z.enum(UPLOAD_STATES));

const JSON_TYPE = 'application/json';

/** `GET /api/uploads` page sizes: `limit` when the request names none, and the most it may name. */
export const LIST_DEFAULT_LIMIT = 100;
export const LIST_MAX_LIMIT = 1000;

const listLimit = z.coerce.number().int().min(1).max(LIST_MAX_LIMIT);
const listOrder = z.enum(['asc', 'desc'] as const satisfies readonly ListOrder[]);

/** The opaque `cursor` of the next page: the last listed upload's place in the list's order. */
export function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${position.createdAt}.${position.id}`).toString('base64url');
}

export function decodeCursor(cursor: string): ListPosition {
  const match = /^(\d{1,16})\.(.+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match || !UPLOAD_ID_PATTERN.test(match[2] as string)) throw new UploadHubError('ERR_BAD_MESSAGE', 'Invalid cursor: pass nextCursor from a previous page as it is');
  return { createdAt: Number(match[1]), id: match[2] as string };
}

/** `GET /api/uploads` answer: one page, oldest first (newest first with `order=desc`); `nextCursor` is null on the last page. */
export interface UploadListPage {
  uploads: UploadStatus[];
  nextCursor: string | null;
}

/** Query values as a flat list: `?state=a&state=b` and `?state=a,b` alike. */
export function queryList(value: unknown): string[] {
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values.flatMap((item) => (typeof item === 'string' ? item.split(',') : [])).map((item) => item.trim()).filter((item) => item !== '');
}

function invalid(what: string, error: z.ZodError): UploadHubError {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  return new UploadHubError('ERR_BAD_MESSAGE', `Invalid ${what}${where}: ${issue?.message ?? 'schema mismatch'}`);
}

/**
 * A create body that is not JSON (a form, no Content-Type at all) would otherwise be read as an
 * empty object and refused for its missing fields, which hides what is actually wrong.
 */
const requireJson: RequestHandler = (req, res, next) => {
  const type = req.get('content-type');
  if (type?.split(';')[0]?.trim().toLowerCase() === JSON_TYPE) {
    next();
    return;
  }
  // The body is not read: closing the connection spares waiting for it.
  res.setHeader('Connection', 'close');
  sendError(res, new UploadHubError('ERR_UNSUPPORTED_MEDIA_TYPE', `POST /api/uploads takes a JSON body (Content-Type: application/json), not ${type === undefined ? 'a body without Content-Type' : type}`));
};

export function uploadLocation(id: string): string {
  return `/api/uploads/${id}`;
}

/** Mounted at /api. */
export function restRoutes(hub: UploadHub): Router {
  const router = express.Router();
  const json = express.json({ limit: hub.options.maxMessageBytes, type: JSON_TYPE });

  router.post('/uploads', requireJson, json, route(async (req, res) => {
    const principal = await principalOf(hub, req);
    const body = createBody.safeParse(req.body ?? {});
    if (!body.success) throw invalid('create body', body.error);
    const upload = await hub.create(principal, body.data);
    res.status(201).location(uploadLocation(upload.id)).json(upload satisfies UploadStatus);
  }));

  router.get('/uploads', route(async (req, res) => {
    const principal = await principalOf(hub, req);
    const states = stateFilter.safeParse(queryList(req.query.state));
    if (!states.success) throw invalid('state filter', states.error);
    const rawLimit = queryList(req.query.limit)[0];
    const limit = rawLimit === undefined ? LIST_DEFAULT_LIMIT : listLimit.safeParse(rawLimit).data;
    if (limit === undefined) throw new UploadHubError('ERR_BAD_MESSAGE', `limit must be an integer from 1 to ${LIST_MAX_LIMIT}`);
    const order = listOrder.safeParse(queryList(req.query.order)[0] ?? 'asc');
    if (!order.success) throw new UploadHubError('ERR_BAD_MESSAGE', 'order must be asc or desc');
    const cursor = queryList(req.query.cursor)[0];
    // A cursor is a position, not a direction: the next page needs the same order again.
    const filter: ListFilter = { limit: limit + 1, order: order.data };
    if (states.data.length > 0) filter.state = states.data;
    if (cursor !== undefined) filter.after = decodeCursor(cursor);
    // One more than the page tells whether a next page exists, without counting them all.
    const uploads = await hub.list(principal, filter);
    const more = uploads.length > limit;
    if (more) uploads.length = limit;
    const last = uploads.at(-1);
    res.json({ uploads, nextCursor: more && last ? encodeCursor(last) : null } satisfies UploadListPage);
  }));

  router.get('/uploads/:id', route(async (req, res) => {
    const principal = await principalOf(hub, req);
    res.json(await hub.status(principal, uploadIdParam(req)));
  }));

  router.delete('/uploads/:id', route(async (req, res) => {
    const principal = await principalOf(hub, req);
    res.json(await hub.cancel(principal, uploadIdParam(req)));
  }));

  router.use(jsonErrors);
  return router;
}
