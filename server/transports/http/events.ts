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
import { maySee, type Principal } from '../../core/auth.js';
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

/** Events held while a stream's snapshot or replay is read, at most; past it the stream ends (the client resumes from its last id). */
const HELD_EVENTS_MAX = 10_000;

async function openStream(context: EventRouteContext, req: Request, res: Response, principal: Principal, watched: string[] | undefined, single: boolean): Promise<void> {
  const { hub, streams } = context;
  // The client may have left while its token was checked: nothing to open then.
  if (res.destroyed) return;
  const crowded = holdStream(hub, req, res);
  if (crowded !== undefined) throw crowded;
  const statuses: UploadStatus[] | undefined = watched && (await Promise.all(watched.map((id) => hub.status(principal, id))));
  if (req.method === 'HEAD') {
    // Node sends a HEAD's headers only when it ends, never on a write: a stream would hang it.
    res.status(200).type(`${streamFormat(req) === 'sse' ? SSE_CONTENT_TYPE : NDJSON_CONTENT_TYPE}; charset=utf-8`).end();
    return;
  }
  if (res.destroyed) return;
  const ids = watched === undefined ? undefined : new Set(watched);
  const accepts = (event: HubEvent, owner: string): boolean => (ids === undefined || ids.has(event.uploadId)) && maySee(principal, owner);
  // Followed first; events delivered while the replay or snapshot is read are held and follow
  // it, so none is lost (one also reflected in the snapshot may come again, which is harmless).
  const startId = hub.events.lastId;
  let held: HubEvent[] | undefined = [];
  let overflow = false;
  let stream: EventStream | undefined;
  const subscription = hub.events.subscribe({
    all: ids === undefined,
    accepts,
    deliver: (event) => {
      if (!held) stream?.push(event);
      else if (held.length < HELD_EVENTS_MAX) held.push(event);
      else overflow = true;
    },
  });
  for (const id of ids ?? []) subscription.add(id);
  let replay: HubEvent[] | undefined;
  let snapshot: readonly UploadStatus[] | undefined;
  try {
    const lastEventId = lastEventIdOf(req);
    replay = lastEventId === undefined ? undefined : await hub.events.since(lastEventId, accepts);
    const finished = single && statuses?.[0] !== undefined && isTerminalState(statuses[0].state);
    if (finished && replay?.length === 0) {
      // The client has seen the end already; 204 tells EventSource to stop reconnecting.
      subscription.close();
      res.status(204).end();
      return;
    }
    if (replay === undefined) snapshot = statuses ?? (await hub.list(principal, { state: ACTIVE_STATES }));
    if (res.destroyed) {
      subscription.close();
      return;
    }
    stream = new EventStream(res, {
      format: streamFormat(req),
      throttle: { intervalMs: hub.options.progressIntervalMs, minStepPercent: hub.options.progressMinStepPercent },
      retryMs: hub.options.sseRetryMs,
      maxBufferedBytes: context.maxBufferedBytes,
      endAfterTerminalOf: single ? watched?.[0] : undefined,
      onClose: (closed) => streams.delete(closed),
    });
    streams.add(stream);
    stream.attach(subscription);
    let upTo = startId;
    if (replay !== undefined && lastEventId !== undefined) {
      stream.position = lastEventId;
      for (const event of replay) stream.push(event);
      upTo = Math.max(lastEventId, replay.at(-1)?.id ?? lastEventId);
    } else {
      stream.snapshot(snapshot ?? [], startId);
      if (finished) stream.end();
    }
    const waiting = held;
    held = undefined;
    for (const event of waiting) if (event.id > upTo) stream.push(event);
    if (overflow) stream.end();
  } catch (error) {
    subscription.close();
    throw error;
  }
}

/** GET /api/events */
export function allEventsHandler(context: EventRouteContext): RequestHandler {
  return route(async (req, res) => {
    const principal = await principalOf(context.hub, req);
    const listed = queryList(req.query.upload);
    for (const id of listed) if (!UPLOAD_ID_PATTERN.test(id)) throw new UploadHubError('ERR_NOT_FOUND', `No upload ${id}`);
    await openStream(context, req, res, principal, listed.length === 0 ? undefined : [...new Set(listed)], false);
  });
}

/** GET /api/uploads/:id/events */
export function uploadEventsHandler(context: EventRouteContext): RequestHandler {
  return route(async (req, res) => {
    const principal = await principalOf(context.hub, req);
    await openStream(context, req, res, principal, [uploadIdParam(req)], true);
  });
}
