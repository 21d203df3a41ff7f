/**
 * `GET /api/uploads?order=desc`: newest first, paged with the same cursors as the default
 * oldest-first order (what the dashboard lists with).
 */
import { describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { UploadListPage } from '../../server/transports/http/rest.js';
import { startHub } from '../helpers.js';

type Answer = { status: number; body: UploadListPage & { error?: { code: string; message: string } } };

async function getPage(url: string, query: string): Promise<Answer> {
  const response = await fetch(`${url}/api/uploads${query}`);
  return { status: response.status, body: (await response.json()) as Answer['body'] };
}

async function allPages(url: string, query: string, limit: number): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | null = null;
  do {
    const page = await getPage(url, `?limit=${limit}${query}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
    expect(page.status).toBe(200);
    pages.push(page.body.uploads.map((upload) => upload.id));
    cursor = page.body.nextCursor;
    expect(pages.length, 'cursors must end').toBeLessThanOrEqual(10);
  } while (cursor !== null);
  return pages;
}

describe('GET /api/uploads order', () => {
  it('order=desc lists newest first and pages through every upload once, the state filter included', async () => {
    const hub = await startHub();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await hub.hub.create(ANONYMOUS, { name: `f${i}.bin`, size: 10 })).id);
    await hub.hub.cancel(ANONYMOUS, ids[2] as string);
    await hub.hub.cancel(ANONYMOUS, ids[5] as string);

    const oldestFirst = (await allPages(hub.url, '', 1000)).flat();
    // Uploads created in the same millisecond are ordered by id: the order is the list's, not ours.
    expect(new Set(oldestFirst)).toEqual(new Set(ids));
    const newestFirst = await allPages(hub.url, '&order=desc', 3);
    expect(newestFirst.map((page) => page.length)).toEqual([3, 3, 1]);
    expect(newestFirst.flat()).toEqual([...oldestFirst].reverse());
    expect((await allPages(hub.url, '&order=asc', 3)).flat()).toEqual(oldestFirst);

    const cancelled = (await allPages(hub.url, '&order=desc&state=cancelled', 1)).flat();
    expect(cancelled).toEqual(oldestFirst.filter((id) => id === ids[2] || id === ids[5]).reverse());
  });

  it('refuses an order it does not know, naming it', async () => {
    const hub = await startHub();
    const page = await getPage(hub.url, '?order=sideways');
    expect(page.status).toBe(400);
    expect(page.body.error).toMatchObject({ code: 'ERR_BAD_MESSAGE', message: expect.stringContaining('order') });
  });
});
