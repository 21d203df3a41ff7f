/**
 * `GET /metrics` (Prometheus text format, prom-client) and `GET /healthz`.
 *
 * Hub figures are read at scrape time (uploads by state, bytes in flight, subscribers) or
 * counted from the hub's event stream (events by type, bytes committed). Process metrics
 * (CPU, memory, event loop lag, GC) come from prom-client's defaults, collected once per
 * process however many hubs it runs.
 *
 * Neither route asks for a token: they reveal counts, never ids or names. Expose them on an
 * internal network only if even counts are sensitive.
 */
import type { Express } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { isTerminalState, UPLOAD_STATES } from '../shared/messages.js';
import type { UploadHub } from './core/UploadHub.js';

export const METRICS_PATH = '/metrics';
export const HEALTH_PATH = '/healthz';

let processRegistry: Registry | undefined;

/** prom-client's default metrics install process-wide observers: once per process. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export interface MetricsSources {
  /** Open HTTP watcher streams (SSE and NDJSON). */
  watcherStreams: () => number;
  /** False once the hub is shutting down: /healthz answers 503. */
  healthy: () => boolean;
}

export interface MountedMetrics {
  registry: Registry;
  /** Stops counting hub events. */
  close(): void;
}

/**
 * Adds GET /metrics and GET /healthz to `app`.
 *
 * @example
 * const metrics = mountMetrics(app, hub, { watcherStreams: () => streams.size, healthy: () => !closing });
 */
export function mountMetrics(app: Express, hub: UploadHub, sources: MetricsSources): MountedMetrics {
  const registry = new Registry();
  const registers = [registry];

  new Gauge({
    name: 'upload_hub_uploads',
    help: 'Uploads the hub knows, by state',
    labelNames: ['state'],
    registers,
    async collect() {
      const counts = await hub.counts();
      for (const state of UPLOAD_STATES) this.set({ state }, counts[state]);
    },
  });
  new Gauge({
    name: 'upload_hub_buffered_bytes',
    help: 'Bytes accepted but not yet written, across all uploads (bounded by maxBufferedBytes)',
    registers,
    collect() {
      this.set(hub.bufferedBytes);
    },
  });
  new Gauge({
    name: 'upload_hub_event_subscribers',
    help: 'Subscriptions to the hub event stream (socket sessions, SSE and NDJSON watchers)',
    registers,
    collect() {
      this.set(hub.events.subscriberCount);
    },
  });
  new Gauge({
    name: 'upload_hub_http_watchers',
    help: 'Open SSE and NDJSON watcher streams',
    registers,
    collect() {
      this.set(sources.watcherStreams());
    },
  });
  new Gauge({
    name: 'upload_hub_storage_degraded',
    help: '1 while some upload record could not be saved and is being retried, else 0',
    registers,
    collect() {
      this.set(hub.storageHealth.status === 'degraded' ? 1 : 0);
    },
  });
  let countedSaveFailures = 0;
  new Counter({
    name: 'upload_hub_record_save_failures_total',
    help: 'Failed attempts to save an upload record (each is retried until it lands)',
    registers,
    collect() {
      const failed = hub.storageHealth.failedSaves;
      if (failed > countedSaveFailures) this.inc(failed - countedSaveFailures);
      countedSaveFailures = failed;
    },
  });
  const events = new Counter({ name: 'upload_hub_events_total', help: 'Events published by the hub, by type', labelNames: ['type'], registers });
  const bytes = new Counter({ name: 'upload_hub_received_bytes_total', help: 'Upload bytes committed to storage', registers });

  // Committed bytes from progress events: the growth since the last one of each upload.
  const lastBytes = new Map<string, number>();
  const untap = hub.events.tap((event) => {
    events.inc({ type: event.type });
    if (event.type === 'progress' && event.phase === 'upload') {
      const before = lastBytes.get(event.uploadId) ?? 0;
      if (event.bytes > before) bytes.inc(event.bytes - before);
      lastBytes.set(event.uploadId, event.bytes);
    } else if (event.type === 'uploaded' || isTerminalState(event.type)) {
      lastBytes.delete(event.uploadId);
    }
  });

  const scraped = Registry.merge([processMetrics(), registry]);
  app.get(METRICS_PATH, (_req, res, next) => {
    scraped.metrics().then((text) => {
      res.setHeader('Content-Type', scraped.contentType);
      res.send(text);
    }, next);
  });
  app.get(HEALTH_PATH, (_req, res) => {
    const storage = hub.storageHealth;
    // Degraded storage answers 503 too: a load balancer should send new uploads elsewhere
    // while this hub cannot save what it is told.
    // Draining (SIGTERM): not ready, so the balancer sends new connections to the other nodes.
    const status = hub.isDraining ? 'draining' : !sources.healthy() ? 'shutting-down' : storage.status === 'degraded' ? 'degraded' : 'ok';
    res.status(status === 'ok' ? 200 : 503).json({ status, node: hub.nodeId, storage, uptimeSeconds: Math.round(process.uptime()) });
  });

  return { registry, close: untap };
}
