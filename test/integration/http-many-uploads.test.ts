/**
 * A principal who sees 10,000 uploads: `/api/events` (SSE and NDJSON) delivers the whole
 * snapshot in pieces and stays open, and `GET /api/uploads` pages through them with `limit` and
 * `cursor`, building only the statuses of the page it answers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHubServer, type HubServer } from '../../server/app.js';
import { activeStatus, recordStatus } from '../../server/core/ActiveUpload.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import { LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, type UploadListPage } from '../../server/transports/http/rest.js';
import type { UploadStatus } from '../../shared/messages.js';
import { onCleanup, silentLogger } from '../helpers.js';
import { FrameLog, parseData, readNdjson, readSse, type FrameData, type SseFrame } from './http-helpers.js';

// The hub builds every status with these two (an upload it works on, one from its record): counted.
vi.mock('../../server/core/ActiveUpload.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../server/core/ActiveUpload.js')>();
  return { ...actual, activeStatus: vi.fn(actual.activeStatus), recordStatus: vi.fn(actual.recordStatus) };
});

const UPLOADS = 10_000;
/** Small enough that today's one-write snapshot (about 5 MB here) passes it at once. */
const WATCHER_MAX_BUFFERED_BYTES = 1024 * 1024;

let hub: HubServer;
let dataDir: string;
/** Every upload, in the list's order: createdAt, then id. */
let expected: string[];

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'upload-hub-many-'));
  hub = await createHubServer({
    logger: silentLogger,
    // 10,000 unfinished uploads of one principal: past the default abuse limits.
    options: { port: 0, host: '127.0.0.1', dataDir, watcherMaxBufferedBytes: WATCHER_MAX_BUFFERED_BYTES, maxOpenUploadsPerPrincipal: 0, createsPerMinutePerPrincipal: 0 },
  });
  const created: UploadStatus[] = [];
  for (let i = 0; i < UPLOADS; i += 100) {
    created.push(...(await Promise.all(Array.from({ length: 100 }, (_, j) =>
      hub.hub.create(ANONYMOUS, { name: `upload-${i + j}.bin`, size: 1000, metadata: { batch: String(i), note: 'n'.repeat(200) } })))));
  }
  expected = created.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)).map((upload) => upload.id);
}, 120_000);

afterAll(async () => {
  await hub.close();
  await rm(dataDir, { recursive: true, force: true });
});

function sseStream(url: string): Promise<FrameLog<SseFrame>> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => resolve(readSse(res)));
    req.on('error', reject);
    onCleanup(() => {
      req.destroy();
    });
    req.end();
  });
}

async function getPage(query: string): Promise<{ status: number; body: UploadListPage & { error?: { code: string; message: string } } }> {
  const response = await fetch(`${hub.url}/api/uploads${query}`);
  return { status: response.status, body: (await response.json()) as UploadListPage & { error?: { code: string; message: string } } };
}

describe('a principal who sees 10,000 uploads', () => {
  it('gets the whole snapshot on SSE and NDJSON, and the streams stay open for what follows', async () => {
    const sse = await sseStream(`${hub.url}/api/events`);
    const ndjson = readNdjson(await fetch(`${hub.url}/api/events`, { headers: { accept: 'application/x-ndjson' } }));

    const sseSnapshot = parseData(await sse.next((frame) => frame.event === 'snapshot'));
    const ndjsonSnapshot = await ndjson.next((line) => line.type === 'snapshot');
    for (const snapshot of [sseSnapshot, ndjsonSnapshot]) {
      const uploads = (snapshot as FrameData & { uploads: UploadStatus[] }).uploads;
      expect(uploads).toHaveLength(UPLOADS);
      expect(uploads.map((upload) => upload.id)).toEqual(expected);
    }

    // Still open: an upload created now reaches both.
    const later = await hub.hub.create(ANONYMOUS, { name: 'later.bin', size: 5 });
    onCleanup(() => hub.hub.cancel(ANONYMOUS, later.id).then(() => undefined));
    await sse.next((frame) => frame.event === 'created' && parseData(frame).uploadId === later.id);
    await ndjson.next((line) => line.type === 'created' && line.uploadId === later.id);
    expect(sse.ended).toBe(false);
    expect(ndjson.ended).toBe(false);
  });

  it(`pages GET /api/uploads: ${LIST_DEFAULT_LIMIT} by default, cursors through all of them in order`, async () => {
    const first = await getPage('');
    expect(first.status).toBe(200);
    expect(first.body.uploads.map((upload) => upload.id)).toEqual(expected.slice(0, LIST_DEFAULT_LIMIT));
    expect(typeof first.body.nextCursor).toBe('string');

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await getPage(`?state=created&limit=${LIST_MAX_LIMIT}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
      expect(page.status).toBe(200);
      expect(page.body.uploads.length).toBeLessThanOrEqual(LIST_MAX_LIMIT);
      seen.push(...page.body.uploads.map((upload) => upload.id));
      cursor = page.body.nextCursor;
      pages++;
      expect(pages, 'cursors must end').toBeLessThanOrEqual(UPLOADS / LIST_MAX_LIMIT);
    } while (cursor !== null);
    expect(seen).toEqual(expected);
    expect(pages).toBe(UPLOADS / LIST_MAX_LIMIT);

    // A page request builds its page's statuses, not all 10,000.
    vi.mocked(activeStatus).mockClear();
    vi.mocked(recordStatus).mockClear();
    const small = await getPage(`?limit=10&cursor=${encodeURIComponent(first.body.nextCursor as string)}`);
    expect(small.body.uploads.map((upload) => upload.id)).toEqual(expected.slice(LIST_DEFAULT_LIMIT, LIST_DEFAULT_LIMIT + 10));
    const built = vi.mocked(activeStatus).mock.calls.length + vi.mocked(recordStatus).mock.calls.length;
    expect(built).toBeGreaterThan(0);
    expect(built).toBeLessThanOrEqual(11);
  });

  it('refuses a limit out of range and a cursor it did not make, naming them', async () => {
    for (const limit of ['0', String(LIST_MAX_LIMIT + 1), 'ten', '2.5']) {
      const page = await getPage(`?limit=${limit}`);
      expect(page.status, limit).toBe(400);
      expect(page.body.error, limit).toMatchObject({ code: 'ERR_BAD_MESSAGE', message: expect.stringContaining('limit') });
    }
    const forged = await getPage('?cursor=not-a-cursor');
    expect(forged.status).toBe(400);
    expect(forged.body.error).toMatchObject({ code: 'ERR_BAD_MESSAGE', message: expect.stringContaining('cursor') });
  });
});
