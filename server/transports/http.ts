/**
 * The HTTP surface under /api: REST (create, list, status, cancel), watchers over SSE and
 * NDJSON, and the busboy multipart upload; plus /healthz and /metrics. One handler per request
 * kind lives in ./http/; this file only mounts them.
 *
 *   POST   /api/uploads               create (201, Location)
 *   GET    /api/uploads               list (?state=)
 *   GET    /api/uploads/:id           status
 *   DELETE /api/uploads/:id           cancel (idempotent)
 *   POST   /api/uploads/multipart     multipart/form-data upload
 *   GET    /api/events                SSE / NDJSON, all visible uploads (?upload=ID...)
 *   GET    /api/uploads/:id/events    SSE / NDJSON, one upload, ends after its terminal event
 */
import express from 'express';
import { mountMetrics } from '../metrics.js';
import { requestDeadline } from './http/bodyTimeouts.js';
import { allEventsHandler, uploadEventsHandler } from './http/events.js';
import { StreamSet } from './http/EventStream.js';
import { multipartHandler } from './http/multipart.js';
import { jsonErrors, noRoute } from './http/respond.js';
import { restRoutes } from './http/rest.js';
import { originGuard } from './origin.js';
import type { Transport, TransportContext } from './Transport.js';

export const API_PATH = '/api';
const MULTIPART_PATH = '/uploads/multipart';

export interface HttpTransport extends Transport {
  /** The open SSE/NDJSON streams: count, shared timers, and `idle()` for leak checks. */
  readonly streams: StreamSet;
}

export function httpTransport({ hub, server, app }: TransportContext): HttpTransport {
  const streams = new StreamSet(hub.options.heartbeatMs);
  let closing = false;

  // A multipart body streams for as long as its file takes; Node's default requestTimeout
  // (5 min for the whole request) would cut large uploads off. Header timeouts still apply.
  server.requestTimeout = 0;
  // A client may send its whole request and then shut its side down (HTTP/1.0 style, `nc -N`,
  // scripts): by default Node then drops the request unanswered. Half-open, the answer (a
  // coded error for a malformed body, say) is still written before the socket ends.
  (server as typeof server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;

  const api = express.Router();
  // First: a request refused for its Origin is answered before its body is read.
  api.use(originGuard(hub.options));
  // Upload bodies are judged by their rate instead (multipart.ts), since a large file takes long.
  const deadline = requestDeadline(hub.options.requestTimeoutMs);
  api.use((req, res, next) => (req.path === MULTIPART_PATH ? next() : deadline(req, res, next)));
  const context = { hub, streams, maxBufferedBytes: hub.options.watcherMaxBufferedBytes };
  // Before the REST router so `multipart` and `events` are never read as an upload id.
  api.post(MULTIPART_PATH, multipartHandler(hub));
  api.get('/events', allEventsHandler(context));
  api.get('/uploads/:id/events', uploadEventsHandler(context));
  api.use(restRoutes(hub));
  // What no route took, and errors of the routes above that are not inside restRoutes' router
  // (a path parameter that does not decode on /uploads/:id/events), are JSON with a code too.
  api.use(noRoute);
  api.use(jsonErrors);
  app.use(API_PATH, api);

  const metrics = mountMetrics(app, hub, { watcherStreams: () => streams.size, healthy: () => !closing });

  return {
    name: 'http',
    streams,
    connections: () => streams.size,
    async close() {
      closing = true;
      metrics.close();
      streams.endAll();
    },
  };
}
