import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Authenticate } from '../../server/core/auth.js';
import type { HubEvent } from '../../shared/messages.js';
import { startClient, startHub } from '../helpers.js';
import { curlSse, gateStage, openEventSource, parseData, type FrameData } from './http-helpers.js';

const MiB = 1024 * 1024;
const principals: Record<string, { id: string; admin?: boolean }> = { alice: { id: 'alice' }, bob: { id: 'bob' } };
const authenticate: Authenticate = (token) => (token ? principals[token] ?? null : null);
/** Every progress event passes: the stream's events are then exactly the hub's. */
const UNTHROTTLED = { progressIntervalMs: 0, progressMinStepPercent: 0 };

/** Hub events of one upload as published, to compare a stream against. */
function recordEvents(hub: { hub: { events: { tap(listener: (event: HubEvent) => void): () => void } } }): HubEvent[] {
  const events: HubEvent[] = [];
  hub.hub.events.tap((event) => events.push(event));
  return events;
}

describe('SSE watchers', () => {
  it('sends a snapshot, then named events with increasing ids (EventSource)', async () => {
    const hub = await startHub();
    const { log } = openEventSource(`${hub.url}/api/events`);
    const snapshot = await log.next((frame) => frame.event === 'snapshot');
    expect(snapshot.data).toMatchObject({ type: 'snapshot', uploads: [] });
    expect(log.frames[0]).toBe(snapshot);

    const client = startClient({ url: hub.url });
    const sent = client.upload(randomBytes(3 * MiB + 5), { name: 'named.bin' });
    const id = await new Promise<string>((resolve) => sent.on('created', resolve));
    const completed = await log.next((frame) => frame.event === 'completed' && frame.data.uploadId === id);
    await sent.done;

    const mine = log.frames.filter((frame) => frame.data.uploadId === id);
    const types = mine.map((frame) => frame.event);
    expect(types[0]).toBe('created');
    expect(types).toEqual(expect.arrayContaining(['created', 'uploading', 'progress', 'uploaded', 'completed']));
    expect(types.indexOf('uploaded')).toBeLessThan(types.indexOf('completed'));
    for (const frame of mine) {
      expect(frame.data.type).toBe(frame.event);
      expect(frame.lastEventId).toBe(String(frame.data.id));
    }
    const ids = log.frames.map((frame) => Number(frame.lastEventId));
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
    expect(completed.data).toMatchObject({ type: 'completed', uploadId: id });
    const progress = mine.filter((frame) => frame.event === 'progress').map((frame) => frame.data);
    expect(progress.at(-1)).toMatchObject({ percent: 100, bytes: 3 * MiB + 5, total: 3 * MiB + 5 });
  });

  it('streams one upload through curl -N, with headers, retry and stage/log events, and ends after its terminal event', async () => {
    const gate = gateStage('scan');
    const hub = await startHub({ pipeline: [gate.stage], options: { sseRetryMs: 1234 } });
    const client = startClient({ url: hub.url });
    const sent = client.upload(randomBytes(100_000), { name: 'one.bin' });
    const { id } = await gate.started;

    const head = await fetch(`${hub.url}/api/uploads/${id}/events`, { headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip, br' } });
    expect(head.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(head.headers.get('cache-control')).toBe('no-cache');
    expect(head.headers.get('x-accel-buffering')).toBe('no');
    expect(head.headers.get('content-encoding')).toBeNull();
    await head.body?.cancel();

    const { log, exit } = curlSse(`${hub.url}/api/uploads/${id}/events`);
    const retry = await log.next((frame) => frame.event.startsWith('retry:'));
    expect(retry.event).toBe('retry:1234');
    const snapshot = parseData(await log.next((frame) => frame.event === 'snapshot'));
    expect(snapshot.uploads).toEqual([expect.objectContaining({ id, state: 'processing', stage: 'scan' })]);

    hub.hub.log(id, 'info', 'halfway there', 'scan');
    await log.next((frame) => frame.event === 'log');
    gate.release('clean');
    expect(await exit).toBe(0);
    await sent.done;

    const events = log.frames.filter((frame) => frame.id !== undefined && frame.event !== 'snapshot');
    expect(events.map((frame) => frame.event)).toContain('log');
    const last = events.at(-1);
    expect(last?.event).toBe('completed');
    expect(parseData(last as NonNullable<typeof last>)).toMatchObject({ uploadId: id, result: { scan: { released: 'clean' } } });
    const logFrame = parseData(events.find((frame) => frame.event === 'log') as NonNullable<typeof last>);
    expect(logFrame).toMatchObject({ level: 'info', text: 'halfway there', stage: 'scan' });
  });

  it('tells an EventSource on a finished upload to stop with 204 instead of reconnecting forever', async () => {
    const gate = gateStage();
    const hub = await startHub({ pipeline: [gate.stage], options: { sseRetryMs: 10 } });
    const client = startClient({ url: hub.url });
    const sent = client.upload(randomBytes(1000));
    const { id } = await gate.started;
    const requests: Array<string | undefined> = [];
    hub.server.prependListener('request', (req: IncomingMessage) => {
      if (req.url?.startsWith(`/api/uploads/${id}/events`)) requests.push(req.headers['last-event-id'] as string | undefined);
    });
    const { source, log, errors } = openEventSource(`${hub.url}/api/uploads/${id}/events`);
    await log.next((frame) => frame.event === 'snapshot');
    gate.release();
    const completed = await log.next((frame) => frame.event === 'completed');
    const stopped = await errors.next((error) => error.code === 204);
    expect(stopped.code).toBe(204);
    expect(source.readyState).toBe(source.CLOSED);
    expect(requests).toEqual([undefined, completed.lastEventId]);
    await sent.done;
  });

  it('replays what a dropped EventSource missed from Last-Event-ID: nothing lost, nothing twice', async () => {
    const gate = gateStage();
    const hub = await startHub({ pipeline: [gate.stage], options: { ...UNTHROTTLED, sseRetryMs: 10 } });
    const published = recordEvents(hub);
    const sockets: Socket[] = [];
    const lastEventIds: Array<string | undefined> = [];
    hub.server.prependListener('request', (req: IncomingMessage) => {
      if (!req.url?.startsWith('/api/events')) return;
      sockets.push(req.socket);
      lastEventIds.push(req.headers['last-event-id'] as string | undefined);
    });
    const { log, errors } = openEventSource(`${hub.url}/api/events`);
    const snapshot = await log.next((frame) => frame.event === 'snapshot');

    const client = startClient({ url: hub.url });
    const sent = client.upload(randomBytes(2 * MiB), { name: 'replay.bin', chunkSize: 256 * 1024 });
    const { id } = await gate.started;
    await log.next((frame) => frame.event === 'processing' && frame.data.uploadId === id);
    const seenBeforeDrop = log.frames.at(-1)?.lastEventId;

    // Drop the connection from the server side; while the client is away, publish more.
    const dropped = errors.next(() => true);
    sockets[0]?.destroy();
    await dropped;
    for (let line = 0; line < 5; line++) hub.hub.log(id, 'info', `missed line ${line}`);
    gate.release();
    await log.next((frame) => frame.event === 'completed' && frame.data.uploadId === id);
    await sent.done;

    expect(lastEventIds).toEqual([undefined, seenBeforeDrop]);
    const received = log.frames.filter((frame) => frame.event !== 'snapshot').map((frame) => frame.data.id);
    expect(new Set(received).size).toBe(received.length);
    const expected = published.filter((event) => event.id > Number(snapshot.lastEventId)).map((event) => event.id);
    expect(received).toEqual(expected);
    expect(log.frames.filter((frame) => frame.event === 'log').map((frame) => frame.data.text)).toEqual([0, 1, 2, 3, 4].map((line) => `missed line ${line}`));
  });

  it('replays from a recent Last-Event-ID, and sends a fresh snapshot when the id is older than the history (curl)', async () => {
    const hub = await startHub({ options: { ...UNTHROTTLED, eventHistorySize: 8 } });
    const client = startClient({ url: hub.url });
    await client.upload(randomBytes(10), { name: 'first.bin' }).done;
    const mark = hub.hub.events.lastId;
    // A few events after the mark, still within the history.
    const created = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'later', size: 3 }) });
    const later = (await created.json()) as { id: string };
    const recent = curlSse(`${hub.url}/api/events`, { 'Last-Event-ID': String(mark) });
    const replayed = await recent.log.next((frame) => frame.event === 'created');
    expect(recent.log.frames.some((frame) => frame.event === 'snapshot')).toBe(false);
    expect(parseData(replayed)).toMatchObject({ uploadId: later.id });
    expect(Number(replayed.id)).toBe(mark + 1);

    // Push the mark out of the 8-event history.
    for (let i = 0; i < 3; i++) await client.upload(randomBytes(10), { name: `filler-${i}` }).done;
    expect(await hub.hub.events.since(mark)).toBeUndefined();
    const stale = curlSse(`${hub.url}/api/events`, { 'Last-Event-ID': String(mark) });
    const fresh = await stale.log.next((frame) => frame.id !== undefined);
    expect(fresh.event).toBe('snapshot');
    const data = parseData(fresh);
    expect(fresh.id).toBe(String(hub.hub.events.lastId));
    // Active uploads only: the created-but-unsent one, not the finished ones.
    expect((data.uploads as Array<{ id: string }>).map((upload) => upload.id)).toEqual([later.id]);
  });

  it('sends a heartbeat comment every heartbeatMs', async () => {
    const hub = await startHub({ options: { heartbeatMs: 40 } });
    const { log } = curlSse(`${hub.url}/api/events`);
    await log.next((frame) => frame.event === 'snapshot');
    const beats = await log.next((frame) => frame.comment === 'heartbeat');
    expect(beats.id).toBeUndefined();
    const index = log.frames.indexOf(beats);
    await log.next((frame) => frame.comment === 'heartbeat', index + 1);
  });

  it('accepts the token as ?token= for EventSource, shows only what the principal may see, and refuses a bad token with 401', async () => {
    const hub = await startHub({ authenticate });
    const alice = openEventSource(`${hub.url}/api/events?token=alice`);
    await alice.log.next((frame) => frame.event === 'snapshot');
    const bob = startClient({ url: hub.url, token: 'bob' });
    const aliceClient = startClient({ url: hub.url, token: 'alice' });
    const bobsUpload = await bob.upload(randomBytes(100), { name: 'bobs.bin' }).done;
    const alicesUpload = await aliceClient.upload(randomBytes(100), { name: 'alices.bin' }).done;
    await alice.log.next((frame) => frame.event === 'completed' && frame.data.uploadId === alicesUpload.id);
    const seen = new Set(alice.log.frames.map((frame) => frame.data.uploadId).filter(Boolean));
    expect(seen).toEqual(new Set([alicesUpload.id]));
    expect(seen.has(bobsUpload.id)).toBe(false);

    // A per-upload stream of someone else's upload is missing, not forbidden: ids are not to be probed.
    const probe = await fetch(`${hub.url}/api/uploads/${bobsUpload.id}/events?token=alice`);
    expect(probe.status).toBe(404);

    const refused = openEventSource(`${hub.url}/api/events?token=mallory`);
    const error = await refused.errors.next(() => true);
    expect(error.code).toBe(401);
    expect(refused.source.readyState).toBe(refused.source.CLOSED);
    const body = await fetch(`${hub.url}/api/events?token=mallory`);
    expect(body.status).toBe(401);
    expect(await body.json()).toMatchObject({ error: { code: 'ERR_UNAUTHORIZED' } });
  });

  it('filters /api/events by ?upload=ID', async () => {
    const hub = await startHub();
    const make = async (name: string): Promise<string> => {
      const response = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, size: 4 }) });
      return ((await response.json()) as { id: string }).id;
    };
    const [a, b, c] = [await make('a'), await make('b'), await make('c')];
    const { log } = openEventSource(`${hub.url}/api/events?upload=${a}&upload=${c}`);
    const snapshot = await log.next((frame) => frame.event === 'snapshot');
    expect((snapshot.data.uploads as Array<{ id: string }>).map((upload) => upload.id)).toEqual([a, c]);
    for (const id of [b, a, c]) await fetch(`${hub.url}/api/uploads/${id}`, { method: 'DELETE' });
    await log.next((frame) => frame.event === 'cancelled' && frame.data.uploadId === c);
    const cancelled = log.frames.filter((frame) => frame.event === 'cancelled').map((frame) => (frame.data as FrameData).uploadId);
    expect(cancelled).toEqual([a, c]);
    const unknown = await fetch(`${hub.url}/api/events?upload=AAAAAAAAAAAAAAAA`);
    expect(unknown.status).toBe(404);
  });
});
