import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { UploadStatus } from '../../shared/messages.js';
import type { Authenticate } from '../../server/core/auth.js';
import { startClient, startHub } from '../helpers.js';
import { gateStage } from './http-helpers.js';

const principals: Record<string, { id: string; admin?: boolean }> = { alice: { id: 'alice' }, bob: { id: 'bob' }, ops: { id: 'ops', admin: true } };
const authenticate: Authenticate = (token) => (token ? principals[token] ?? null : null);

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

describe('REST routes', () => {
  it('creates with 201 and a Location, and the status is valid before any byte', async () => {
    const hub = await startHub();
    const created = await post(`${hub.url}/api/uploads`, { name: 'report.csv', size: 1234, mimeType: 'text/csv', metadata: { team: 'x' } });
    expect(created.status).toBe(201);
    const upload = await json<UploadStatus>(created);
    expect(created.headers.get('location')).toBe(`/api/uploads/${upload.id}`);
    expect(upload).toMatchObject({ name: 'report.csv', size: 1234, mimeType: 'text/csv', metadata: { team: 'x' }, state: 'created', bytes: 0, percent: 0 });

    // Polling right after create: no race with the first byte.
    const polled = await fetch(new URL(created.headers.get('location') as string, hub.url));
    expect(polled.status).toBe(200);
    expect(await json<UploadStatus>(polled)).toMatchObject({ id: upload.id, state: 'created', bytes: 0, size: 1234, percent: 0, phase: 'upload' });
  });

  it('refuses a body that fails the create schema or is not JSON, with the shared codes', async () => {
    const hub = await startHub({ options: { maxFileSize: 1000 } });
    const cases: Array<[unknown, number, string]> = [
      [{ size: 3 }, 400, 'ERR_BAD_MESSAGE'],
      [{ name: 'a', size: -1 }, 400, 'ERR_BAD_MESSAGE'],
      [{ name: 'a', size: 3, sha256: 'nothex' }, 400, 'ERR_BAD_MESSAGE'],
      [{ name: 'a', size: 1001 }, 413, 'ERR_FILE_TOO_LARGE'],
    ];
    for (const [body, status, code] of cases) {
      const response = await post(`${hub.url}/api/uploads`, body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect((await json<{ error: { code: string } }>(response)).error.code).toBe(code);
    }
    const broken = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":' });
    expect(broken.status).toBe(400);
    expect((await json<{ error: { code: string } }>(broken)).error.code).toBe('ERR_BAD_MESSAGE');
    const huge = await post(`${hub.url}/api/uploads`, { name: 'a', size: 1, metadata: { pad: 'x'.repeat(4000) }, extra: 'y'.repeat(70_000) });
    expect(huge.status).toBe(413);
    expect((await json<{ error: { code: string } }>(huge)).error.code).toBe('ERR_MESSAGE_TOO_LARGE');
    expect(await hub.hub.list({ id: 'anonymous' })).toHaveLength(0);
  });

  it('refuses a create body without a JSON Content-Type with 415 ERR_UNSUPPORTED_MEDIA_TYPE naming what was sent', async () => {
    const hub = await startHub();
    const body = JSON.stringify({ name: 'a.bin', size: 3 });
    const cases: Array<[Record<string, string>, string]> = [
      [{ 'content-type': 'text/plain' }, 'text/plain'],
      [{ 'content-type': 'application/x-www-form-urlencoded' }, 'application/x-www-form-urlencoded'],
      [{ 'content-type': 'application/merge-patch+json' }, 'application/merge-patch+json'],
      [{}, 'without Content-Type'],
    ];
    for (const [headers, named] of cases) {
      // A Blob without a type makes fetch send no Content-Type at all.
      const response = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers, body: new Blob([body]) });
      expect(response.status, named).toBe(415);
      const { error } = await json<{ error: { code: string; message: string } }>(response);
      expect(error.code, named).toBe('ERR_UNSUPPORTED_MEDIA_TYPE');
      expect(error.message, named).toContain('application/json');
      expect(error.message, named).toContain(named);
    }
    expect(await hub.hub.list({ id: 'anonymous' })).toHaveLength(0);
    // With its parameters, JSON is still JSON.
    const ok = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body });
    expect(ok.status).toBe(201);
  });

  it('lists what the caller may see, filtered by state', async () => {
    const gate = gateStage();
    const hub = await startHub({ authenticate, pipeline: [gate.stage] });
    const alice = { authorization: 'Bearer alice' };
    const a1 = await json<UploadStatus>(await post(`${hub.url}/api/uploads`, { name: 'a1', size: 10 }, alice));
    await post(`${hub.url}/api/uploads`, { name: 'b1', size: 10 }, { authorization: 'Bearer bob' });
    const client = startClient({ url: hub.url, token: 'alice' });
    const sent = client.upload(randomBytes(10), { name: 'a2' });
    await gate.started;

    const all = await json<{ uploads: UploadStatus[] }>(await fetch(`${hub.url}/api/uploads`, { headers: alice }));
    expect(all.uploads.map((upload) => upload.name).sort()).toEqual(['a1', 'a2']);
    const created = await json<{ uploads: UploadStatus[] }>(await fetch(`${hub.url}/api/uploads?state=created`, { headers: alice }));
    expect(created.uploads.map((upload) => upload.id)).toEqual([a1.id]);
    const either = await json<{ uploads: UploadStatus[] }>(await fetch(`${hub.url}/api/uploads?state=processing&state=created`, { headers: alice }));
    expect(either.uploads.map((upload) => upload.name).sort()).toEqual(['a1', 'a2']);
    const ops = await json<{ uploads: UploadStatus[] }>(await fetch(`${hub.url}/api/uploads?state=created,processing`, { headers: { authorization: 'Bearer ops' } }));
    expect(ops.uploads.map((upload) => upload.name).sort()).toEqual(['a1', 'a2', 'b1']);

    const bad = await fetch(`${hub.url}/api/uploads?state=sleeping`, { headers: alice });
    expect(bad.status).toBe(400);
    expect((await json<{ error: { code: string } }>(bad)).error.code).toBe('ERR_BAD_MESSAGE');

    gate.release();
    await sent.done;
    const done = await json<{ uploads: UploadStatus[] }>(await fetch(`${hub.url}/api/uploads?state=completed`, { headers: alice }));
    expect(done.uploads.map((upload) => upload.name)).toEqual(['a2']);
  });

  it('takes the token from the header, the cookie or ?token=, and refuses others with 401', async () => {
    const hub = await startHub({ authenticate });
    const created = await json<UploadStatus>(await post(`${hub.url}/api/uploads`, { name: 'mine', size: 1 }, { authorization: 'Bearer alice' }));
    expect(created.owner).toBe('alice');
    const byCookie = await fetch(`${hub.url}/api/uploads/${created.id}`, { headers: { cookie: 'theme=dark; upload_hub_token=alice' } });
    expect(byCookie.status).toBe(200);
    const byQuery = await fetch(`${hub.url}/api/uploads/${created.id}?token=alice`);
    expect(byQuery.status).toBe(200);

    for (const headers of [{}, { authorization: 'Bearer mallory' }, { cookie: 'upload_hub_token=mallory' }] as Array<Record<string, string>>) {
      const refused = await fetch(`${hub.url}/api/uploads`, { headers });
      expect(refused.status).toBe(401);
      expect((await json<{ error: { code: string } }>(refused)).error.code).toBe('ERR_UNAUTHORIZED');
    }
    // Another uploader's upload is reported missing, to status and to cancel alike: its id is not confirmed.
    const hidden = await fetch(`${hub.url}/api/uploads/${created.id}`, { headers: { authorization: 'Bearer bob' } });
    expect(hidden.status).toBe(404);
    expect((await json<{ error: { code: string } }>(hidden)).error.code).toBe('ERR_NOT_FOUND');
    const forbidden = await fetch(`${hub.url}/api/uploads/${created.id}`, { method: 'DELETE', headers: { authorization: 'Bearer bob' } });
    expect(forbidden.status).toBe(404);
    expect((await json<{ error: { code: string } }>(forbidden)).error.code).toBe('ERR_NOT_FOUND');
    expect((await hub.hub.status(principals.alice as { id: string }, created.id)).state).toBe('created');
  });

  it('answers 404 ERR_NOT_FOUND for unknown and malformed ids', async () => {
    const hub = await startHub();
    for (const id of ['AAAAAAAAAAAAAAAAAAAAAA', 'x', '..%2F..%2Fetc']) {
      const response = await fetch(`${hub.url}/api/uploads/${id}`);
      expect(response.status, id).toBe(404);
      expect((await json<{ error: { code: string } }>(response)).error.code).toBe('ERR_NOT_FOUND');
    }
  });

  it('cancels with DELETE, idempotently, stopping processing', async () => {
    const gate = gateStage();
    const hub = await startHub({ pipeline: [gate.stage] });
    const client = startClient({ url: hub.url });
    const sent = client.upload(randomBytes(4096), { name: 'c.bin' });
    const { id } = await gate.started;
    const first = await fetch(`${hub.url}/api/uploads/${id}`, { method: 'DELETE' });
    expect(first.status).toBe(200);
    expect(await json<UploadStatus>(first)).toMatchObject({ id, state: 'cancelled' });
    await expect(sent.done).rejects.toMatchObject({ code: 'ERR_CANCELLED' });
    const again = await fetch(`${hub.url}/api/uploads/${id}`, { method: 'DELETE' });
    expect(again.status).toBe(200);
    expect(await json<UploadStatus>(again)).toMatchObject({ id, state: 'cancelled' });
    // A created, never-sent upload cancels too.
    const created = await json<UploadStatus>(await post(`${hub.url}/api/uploads`, { name: 'n', size: 5 }));
    expect(await json<UploadStatus>(await fetch(`${hub.url}/api/uploads/${created.id}`, { method: 'DELETE' }))).toMatchObject({ state: 'cancelled' });
  });

  it('serves /healthz and Prometheus /metrics', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url });
    await client.upload(randomBytes(3000), { name: 'm.bin' }).done;
    const health = await fetch(`${hub.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await json<{ status: string }>(health)).toMatchObject({ status: 'ok' });
    const metrics = await fetch(`${hub.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const text = await metrics.text();
    expect(text).toMatch(/^upload_hub_uploads\{state="completed"\} 1$/m);
    expect(text).toMatch(/^upload_hub_events_total\{type="completed"\} 1$/m);
    expect(text).toMatch(/^upload_hub_received_bytes_total 3000$/m);
    expect(text).toMatch(/^upload_hub_http_watchers 0$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
  });
});
