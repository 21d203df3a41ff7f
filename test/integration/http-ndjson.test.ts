import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startClient, startHub } from '../helpers.js';
import { gateStage, readNdjson } from './http-helpers.js';

const NDJSON = { accept: 'application/x-ndjson' };

describe('NDJSON watchers', () => {
  it('streams one upload as one JSON object per line and ends after its terminal event', async () => {
    const gate = gateStage('index');
    const hub = await startHub({ pipeline: [gate.stage] });
    const client = startClient({ url: hub.url });
    const sent = client.upload(randomBytes(200_000), { name: 'lines.bin' });
    const { id } = await gate.started;

    const response = await fetch(`${hub.url}/api/uploads/${id}/events`, { headers: NDJSON });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    const log = readNdjson(response);
    const snapshot = await log.next(() => true);
    expect(snapshot).toMatchObject({ type: 'snapshot', id: expect.any(Number), uploads: [expect.objectContaining({ id, state: 'processing' })] });

    hub.hub.log(id, 'warn', 'almost', 'index');
    gate.release();
    await log.whenEnded();
    await sent.done;
    const types = log.frames.map((line) => line.type);
    expect(types[0]).toBe('snapshot');
    expect(types).toContain('log');
    expect(types.at(-1)).toBe('completed');
    for (const line of log.frames.slice(1)) expect(line).toMatchObject({ uploadId: id, id: expect.any(Number), at: expect.any(Number) });
    const ids = log.frames.map((line) => line.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
  });

  it('resumes the all-uploads stream from ?lastEventId= without a snapshot or a repeat', async () => {
    const hub = await startHub({ options: { progressIntervalMs: 0, progressMinStepPercent: 0 } });
    const first = readNdjson(await fetch(`${hub.url}/api/events`, { headers: NDJSON }));
    await first.next((line) => line.type === 'snapshot');
    const client = startClient({ url: hub.url });
    const one = await client.upload(randomBytes(1000), { name: 'one' }).done;
    await first.next((line) => line.type === 'completed' && line.uploadId === one.id);
    const lastSeen = first.frames.at(-1)?.id as number;

    const two = await client.upload(randomBytes(1000), { name: 'two' }).done;
    const resumed = readNdjson(await fetch(`${hub.url}/api/events?lastEventId=${lastSeen}`, { headers: NDJSON }));
    await resumed.next((line) => line.type === 'completed' && line.uploadId === two.id);
    expect(resumed.frames.some((line) => line.type === 'snapshot')).toBe(false);
    expect(resumed.frames[0]).toMatchObject({ type: 'created', id: lastSeen + 1, uploadId: two.id });
    const ids = resumed.frames.map((line) => line.id);
    expect(ids.every((id) => id > lastSeen)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('negotiates on Accept: NDJSON only when preferred, SSE otherwise', async () => {
    const hub = await startHub();
    const typeFor = async (accept: string | undefined): Promise<string | null> => {
      const response = await fetch(`${hub.url}/api/events`, { headers: accept === undefined ? {} : { accept } });
      await response.body?.cancel();
      return response.headers.get('content-type');
    };
    expect(await typeFor('application/x-ndjson')).toMatch(/^application\/x-ndjson/);
    expect(await typeFor('application/x-ndjson, text/event-stream;q=0.5')).toMatch(/^application\/x-ndjson/);
    expect(await typeFor('text/event-stream')).toMatch(/^text\/event-stream/);
    expect(await typeFor('*/*')).toMatch(/^text\/event-stream/);
    expect(await typeFor(undefined)).toMatch(/^text\/event-stream/);
  });

  it('sends heartbeat lines that are JSON too', async () => {
    const hub = await startHub({ options: { heartbeatMs: 30 } });
    const log = readNdjson(await fetch(`${hub.url}/api/events`, { headers: NDJSON }));
    const beat = await log.next((line) => line.type === 'heartbeat');
    expect(beat).toMatchObject({ type: 'heartbeat', at: expect.any(Number) });
  });
});
