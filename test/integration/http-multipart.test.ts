import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { Authenticate } from '../../server/core/auth.js';
import type { HubEvent } from '../../shared/messages.js';
import type { MultipartResponse } from '../../server/transports/http/multipart.js';
import { randomFile, sha256File, sha256Of, startHub, tempDir, waitFor, storedPath } from '../helpers.js';
import { gateStage, readNdjson } from './http-helpers.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

async function dataFiles(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, 'uploads'))).filter((name) => name.endsWith('.data'));
}

async function curlForm(url: string, parts: string[], extra: string[] = []): Promise<{ status: number; body: MultipartResponse }> {
  const args = ['-s', '-S', '-o', '-', '-w', '\n%{http_code}', ...extra];
  for (const part of parts) args.push('-F', part);
  args.push(url);
  const { stdout } = await run('curl', args, { maxBuffer: 16 * MiB });
  const newline = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(newline + 1)), body: JSON.parse(stdout.slice(0, newline)) as MultipartResponse };
}

describe('multipart upload route', () => {
  it('stores two curl -F files and refuses the one over maxFileSize with 413, leaving nothing of it on disk', async () => {
    const hub = await startHub({ options: { maxFileSize: 4 * MiB } });
    const dir = await tempDir();
    const small = await randomFile(3 * MiB + 7, dir);
    const big = join(dir, 'big.bin');
    await writeFile(big, randomBytes(6 * MiB));
    const { status, body } = await curlForm(`${hub.url}/api/uploads/multipart`, ['project=apollo', `first=@${small.path}`, `second=@${big}`]);

    expect(status).toBe(413);
    expect(body.error).toMatchObject({ code: 'ERR_FILE_TOO_LARGE' });
    expect(body.uploads).toHaveLength(2);
    const [stored, refused] = body.uploads;
    expect(stored).toMatchObject({ field: 'first', name: `random-${small.size}.bin`, state: 'completed', size: small.size, bytes: small.size, sha256: small.sha256 });
    expect(stored?.error).toBeUndefined();
    expect(refused).toMatchObject({ field: 'second', name: 'big.bin', state: 'failed', error: { code: 'ERR_FILE_TOO_LARGE' } });
    expect(await sha256File(storedPath(hub, stored?.id as string))).toBe(small.sha256);
    expect((await hub.hub.status({ id: 'anonymous' }, stored?.id as string)).metadata).toEqual({ project: 'apollo' });

    // Nothing of the refused file: no bytes, no outputs; only its failed record remains for status queries.
    if (refused?.id !== undefined) {
      expect(existsSync(storedPath(hub, refused.id))).toBe(false);
      expect(await hub.hub.status({ id: 'anonymous' }, refused.id)).toMatchObject({ state: 'failed', error: { code: 'ERR_FILE_TOO_LARGE' } });
    }
    expect(await dataFiles(hub.dataDir)).toEqual([`${stored?.id}.data`]);
  });

  it('accepts a file of exactly maxFileSize', async () => {
    const hub = await startHub({ options: { maxFileSize: 1 * MiB } });
    const file = await randomFile(1 * MiB);
    const { status, body } = await curlForm(`${hub.url}/api/uploads/multipart`, [`f=@${file.path}`]);
    expect(status).toBe(200);
    expect(body.uploads[0]).toMatchObject({ state: 'completed', size: MiB, sha256: file.sha256 });
  });

  it('takes fetch FormData: fields before a file become its metadata, size and sha256 fields describe the next file', async () => {
    const hub = await startHub();
    const one = randomBytes(2 * MiB + 3);
    const two = Buffer.from('id,name\n1,ada\n');
    const form = new FormData();
    form.append('owner', 'ada');
    form.append('size', String(one.byteLength));
    form.append('sha256', sha256Of(one));
    form.append('one', new Blob([one], { type: 'application/x-thing' }), 'one.bin');
    form.append('batch', '7');
    form.append('two', new Blob([two], { type: 'text/csv' }), 'two.csv');
    const response = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', body: form });
    expect(response.status).toBe(200);
    const body = (await response.json()) as MultipartResponse;
    expect(body.error).toBeUndefined();
    expect(body.uploads).toEqual([
      expect.objectContaining({ field: 'one', name: 'one.bin', state: 'completed', size: one.byteLength, bytes: one.byteLength, sha256: sha256Of(one) }),
      expect.objectContaining({ field: 'two', name: 'two.csv', state: 'completed', size: two.byteLength, sha256: sha256Of(two) }),
    ]);
    const [first, second] = await Promise.all(body.uploads.map((upload) => hub.hub.status({ id: 'anonymous' }, upload.id as string)));
    expect(first).toMatchObject({ mimeType: 'application/x-thing', metadata: { owner: 'ada' } });
    expect(second).toMatchObject({ mimeType: 'text/csv', metadata: { owner: 'ada', batch: '7' } });
    expect(await readFile(storedPath(hub, second?.id as string))).toEqual(two);
  });

  it('fails a part whose declared sha256 does not match with 422 and removes it', async () => {
    const hub = await startHub();
    const form = new FormData();
    form.append('sha256', 'f'.repeat(64));
    form.append('file', new Blob([randomBytes(1000)]), 'x.bin');
    const response = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', body: form });
    expect(response.status).toBe(422);
    const body = (await response.json()) as MultipartResponse;
    expect(body.uploads[0]).toMatchObject({ state: 'failed', error: { code: 'ERR_CHECKSUM_MISMATCH' } });
    expect(await dataFiles(hub.dataDir)).toEqual([]);
  });

  it('publishes progress to watchers while the body arrives, with the total bounded by Content-Length', async () => {
    const hub = await startHub({ options: { progressIntervalMs: 0, progressMinStepPercent: 0 } });
    const watcher = readNdjson(await fetch(`${hub.url}/api/events`, { headers: { accept: 'application/x-ndjson' } }));
    await watcher.next((line) => line.type === 'snapshot');
    const file = await randomFile(24 * MiB);
    const { status, body } = await curlForm(`${hub.url}/api/uploads/multipart`, [`data=@${file.path}`]);
    expect(status).toBe(200);
    const id = body.uploads[0]?.id as string;
    await watcher.next((line) => line.type === 'completed' && line.uploadId === id);
    const progress = watcher.frames.filter((line) => line.type === 'progress' && line.uploadId === id) as unknown as Array<Extract<HubEvent, { type: 'progress' }>>;
    const partial = progress.filter((event) => event.bytes > 0 && event.bytes < file.size);
    expect(partial.length).toBeGreaterThan(0);
    for (const event of partial) {
      expect(event.total).toBeGreaterThanOrEqual(file.size);
      expect(event.total).toBeLessThan(file.size + 4096);
    }
    expect(progress.at(-1)).toMatchObject({ bytes: file.size, total: file.size, percent: 100 });
  });

  it('fails the upload of an aborted request and removes its partial data', async () => {
    const hub = await startHub();
    const failed = waitFor<HubEvent>((listener) => hub.hub.events.tap(listener), (event) => event.type === 'failed');
    const uploading = waitFor<HubEvent>((listener) => hub.hub.events.tap(listener), (event) => event.type === 'progress' && event.bytes > 0);
    const boundary = 'abortboundary1234';
    const req = request(`${hub.url}/api/uploads/multipart`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(64 * MiB) },
    });
    req.on('error', () => undefined);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="cut.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    req.write(randomBytes(2 * MiB));
    const progressed = await uploading;
    expect(existsSync(storedPath(hub, progressed.uploadId))).toBe(true);
    req.destroy();
    const event = await failed;
    expect(event).toMatchObject({ uploadId: progressed.uploadId, error: { code: 'ERR_UPLOAD_ABORTED' } });
    expect((await hub.hub.status({ id: 'anonymous' }, progressed.uploadId)).state).toBe('failed');
    expect(existsSync(storedPath(hub, progressed.uploadId))).toBe(false);
  });

  it('fails a request that stops sending with 408 ERR_IDLE_TIMEOUT after idleTimeoutMs', async () => {
    const hub = await startHub({ options: { idleTimeoutMs: 300 } });
    const boundary = 'idleboundary';
    const answer = new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
      const req = request(`${hub.url}/api/uploads/multipart`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(8 * MiB) },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (text: string) => (body += text));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', reject);
      req.write(`--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="slow.bin"\r\n\r\n`);
      req.write(randomBytes(256 * 1024));
      // ...and nothing more: the request stays open, silent.
    });
    const { status, body } = await answer;
    expect(status).toBe(408);
    const parsed = JSON.parse(body) as MultipartResponse;
    expect(parsed.error).toMatchObject({ code: 'ERR_IDLE_TIMEOUT' });
    const id = parsed.uploads[0]?.id as string;
    expect(await hub.hub.status({ id: 'anonymous' }, id)).toMatchObject({ state: 'failed', error: { code: 'ERR_IDLE_TIMEOUT' } });
    expect(existsSync(storedPath(hub, id))).toBe(false);
  });

  it('answers a malformed form with 400 ERR_BAD_MESSAGE', async () => {
    const hub = await startHub();
    const boundary = 'brokenboundary';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n`),
      randomBytes(100_000),
      Buffer.from(`\r\n--${boundary}\r\nthis is not a header\r\n\r\nxyz\r\n--${boundary}--\r\n`),
    ]);
    const response = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
  });

  it('refuses too many files and too many fields with 413 and their codes', async () => {
    const hub = await startHub({ options: { multipartMaxFiles: 1, multipartMaxFields: 2, multipartMaxFieldSize: 16 } });
    const text = join(await tempDir(), 'f.txt');
    await writeFile(text, 'some text\n');
    const files = await curlForm(`${hub.url}/api/uploads/multipart`, [`a=@${text};filename=a.txt`, `b=@${text};filename=b.txt`]);
    expect(files.status).toBe(413);
    expect(files.body.error).toMatchObject({ code: 'ERR_TOO_MANY_FILES' });
    expect(files.body.uploads).toHaveLength(1);
    expect(files.body.uploads[0]).toMatchObject({ field: 'a', state: 'completed' });

    const fields = await curlForm(`${hub.url}/api/uploads/multipart`, ['x=1', 'y=2', 'z=3', `f=@${text}`]);
    expect(fields.status).toBe(413);
    expect(fields.body.error).toMatchObject({ code: 'ERR_TOO_MANY_FIELDS' });
    expect(fields.body.uploads).toEqual([expect.objectContaining({ field: 'f', state: 'failed', error: expect.objectContaining({ code: 'ERR_TOO_MANY_FIELDS' }) })]);
    expect(fields.body.uploads[0]?.id).toBeUndefined();

    const long = await curlForm(`${hub.url}/api/uploads/multipart`, ['note=this value is longer than sixteen bytes', `f=@${text}`]);
    expect(long.status).toBe(413);
    expect(long.body.error).toMatchObject({ code: 'ERR_TOO_MANY_FIELDS' });
  });

  it('runs the processing pipeline after a multipart upload; ?wait=completed answers with the final state', async () => {
    const gate = gateStage('checks');
    const hub = await startHub({ pipeline: [gate.stage] });
    const form = new FormData();
    form.append('file', new Blob([randomBytes(5000)]), 'p.bin');
    const answer = fetch(`${hub.url}/api/uploads/multipart?wait=completed`, { method: 'POST', body: form });
    const started = await gate.started;
    expect((await hub.hub.status({ id: 'anonymous' }, started.id)).state).toBe('processing');
    gate.release('ok');
    const response = await answer;
    expect(response.status).toBe(200);
    const body = (await response.json()) as MultipartResponse;
    expect(body.uploads).toEqual([expect.objectContaining({ id: started.id, state: 'completed' })]);
    expect((await hub.hub.status({ id: 'anonymous' }, started.id)).result).toEqual({ checks: { released: 'ok' } });

    // Without ?wait the answer comes once the bytes are stored, before processing ends.
    const gate2 = gateStage('later');
    const hub2 = await startHub({ pipeline: [gate2.stage] });
    const form2 = new FormData();
    form2.append('file', new Blob([randomBytes(10)]), 'q.bin');
    const early = await fetch(`${hub2.url}/api/uploads/multipart`, { method: 'POST', body: form2 });
    const earlyBody = (await early.json()) as MultipartResponse;
    expect(early.status).toBe(200);
    expect(['uploaded', 'queued', 'processing']).toContain(earlyBody.uploads[0]?.state);
    gate2.release();
  });

  it('refuses an unauthenticated request with 401, a non-multipart body and an empty form with 400', async () => {
    const authenticate: Authenticate = (token) => (token === 'ok' ? { id: 'u' } : null);
    const hub = await startHub({ authenticate });
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('x')]), 'x.txt');
    const refused = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', body: form });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: { code: 'ERR_UNAUTHORIZED' } });
    const ok = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', body: form, headers: { authorization: 'Bearer ok' } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as MultipartResponse).uploads[0]).toMatchObject({ state: 'completed' });

    const json = await fetch(`${hub.url}/api/uploads/multipart?token=ok`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ error: { code: 'ERR_BAD_MESSAGE' } });
    const empty = new FormData();
    empty.append('only', 'a field');
    const none = await fetch(`${hub.url}/api/uploads/multipart?token=ok`, { method: 'POST', body: empty });
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ uploads: [], error: { code: 'ERR_BAD_MESSAGE' } });
  });
});
