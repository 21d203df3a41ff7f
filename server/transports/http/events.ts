/**
 * `GET /api/events` (every upload the caller may see, or those named by `?upload=ID`) and
 * `GET /api/uploads/:id/events` (one upload; the response ends after its terminal event), as
 * Server-Sent Events, or NDJSON when `Accept` prefers `application/x-ndjson`.
 *
 * A request with `Last-Event-ID` (header, or `lastEventId` query parameter) gets the events it
 * missed from the hub's bounded history, or a fresh `snapshot` when the id is too old.
 */
import type { Request, RequestHandler, Response } from 'express';
import { UploadHubError } from '../../../shared/errors.js';
import { isTerminalState, UPLOAD_ID_PATTERN, UPLOAD_STATES, type HubEvent, type UploadStatus } from '../../../shared/messages.js';
import type { Principal } from '../../core/auth.js';
import type { UploadHub } from '../../core/UploadHub.js';
import { holdStream } from '../connectionLimit.js';
import { principalOf } from '../httpAuth.js';
import { EventStream, NDJSON_CONTENT_TYPE, SSE_CONTENT_TYPE, type StreamFormat, type StreamSet } from './EventStream.js';
import { route, uploadIdParam } from './respond.js';
import { queryList } from './rest.js';

export const LAST_EVENT_ID_QUERY_PARAM = 'lastEventId';

/** What the all-uploads snapshot shows: finished uploads are history, not activity. */
const ACTIVE_STATES = UPLOAD_STATES.filter((state) => !isTerminalState(state));

export interface EventRouteContext {
  hub: UploadHub;
  streams: StreamSet;
  /** Unsent bytes above which a stream is closed. */
  maxBufferedBytes: number;
}

/** SSE unless the request prefers NDJSON (`*\/*` and no Accept at all get SSE). */
export function streamFormat(req: Request): StreamFormat {
  return req.accepts([SSE_CONTENT_TYPE, NDJSON_CONTENT_TYPE]) === NDJSON_CONTENT_TYPE ? 'ndjson' : 'sse';
}

function lastEventIdOf(req: Request): number | undefined {
  const raw = req.get('last-event-id') ?? queryList(req.query[LAST_EVENT_ID_QUERY_PARAM])[0];
  if (raw === undefined || !/^\d{1,16}$/.test(raw.trim())) return undefined;
  return Number(raw.trim());
}

function openStream(context: EventRouteContext, req: Request, res: Response, principal: Principal, watched: string[] | undefined, single: boolean): void {
  const { hub, streams } = context;
  // The client may have left while its token was checked: nothing to open then.
  if (res.destroyed) return;
  const crowded = holdStream(hub, req, res);
  if (crowded !== undefined) throw crowded;
  // From here on everything is synchronous: no event can be published between the snapshot
  // (or replay) and the subscription, so none is lost or sent twice.
  const statuses: UploadStatus[] | undefined = watched?.map((id) => hub.status(principal, id));
  if (req.method === 'HEAD') {
    // Node sends a HEAD's headers only when it ends, never on a write: a stream would hang it.
    res.status(200).type(`${streamFormat(req) === 'sse' ? SSE_CONTENT_TYPE : NDJSON_CONTENT_TYPE}; charset=utf-8`).end();
    return;
  }
  const ids = watched === undefined ? undefined : new Set(watched);
  const accepts = (event: HubEvent): boolean => (ids === undefined || ids.has(event.uploadId)) && hub.canSee(principal, event.uploadId);
  const lastEventId = lastEventIdOf(req);
  const replay = lastEventId === undefined ? undefined : hub.events.since(lastEventId)?.filter(accepts);
  const finished = single && statuses?.[0] !== undefined && isTerminalState(statuses[0].state);
  if (finished && replay?.length === 0) {
    // The client has seen the end already; 204 tells EventSource to stop reconnecting.
    res.status(204).end();
    return;
  }
  const stream = new EventStream(res, {
    format: streamFormat(req),
    throttle: { intervalMs: hub.options.progressIntervalMs, minStepPercent: hub.options.progressMinStepPercent },
    retryMs: hub.options.sseRetryMs,
    maxBufferedBytes: context.maxBufferedBytes,
    endAfterTerminalOf: single ? watched?.[0] : undefined,
    onClose: (closed) => streams.delete(closed),
  });
  streams.add(stream);
  const subscription = hub.events.subscribe({ all: ids === undefined, accepts, deliver: (event) => stream.push(event) });
  for (const id of ids ?? []) subscription.add(id);
  stream.attach(subscription);
  if (replay !== undefined && lastEventId !== undefined) {
    stream.position = lastEventId;
    for (const event of replay) stream.push(event);
  } else {
    stream.snapshot(statuses ?? hub.list(principal, { state: ACTIVE_STATES }), hub.events.lastId);
    if (finished) stream.end();
  }
}

/** GET /api/events */
export function allEventsHandler(context: EventRouteContext): RequestHandler {
  return route(async (req, res) => {
    const principal = await principalOf(context.hub, req);
    const listed = queryList(req.query.upload);
    for (const id of listed) if (!UPLOAD_ID_PATTERN.test(id)) throw new UploadHubError('ERR_NOT_FOUND', `No upload ${id}`);
    openStream(context, req, res, principal, listed.length === 0 ? undefined : [...new Set(listed)], false);
  });
}

/** GET /api/uploads/:id/events */
export function uploadEventsHandler(context: EventRouteContext): RequestHandler {
  return route(async (req, res) => {
    const principal = await principalOf(context.hub, req);
    openStream(context, req, res, principal, [uploadIdParam(req)], true);
  });
}
