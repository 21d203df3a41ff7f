/**
 * The dashboard in real Chromium: uploads that ended before it was opened (paged, newest
 * first), the live throughput chart, the tiles, filters, sorting from the keyboard, the detail
 * view (steps with durations, log, result) and cancel — refused (403) as well as done.
 *
 * Uploads move when the test lets them (a stream released step by step, a stage held on a
 * gate), so every state looked at is held until it has been seen.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANONYMOUS, type Principal } from '../../server/core/auth.js';
import type { Stage } from '../../server/processing/Stage.js';
import { BROWSER_SKIP_REASON, BROWSER_TESTS_ENABLED, launchChromium, startPageProxy, type ChromiumSession } from '../browserHelpers.js';
import { onCleanup, startClient, startHub, tempDir } from '../helpers.js';

const MiB = 1024 * 1024;
/** Screenshots worth keeping: test-artifacts/ at the repository's root (git-ignored). */
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

if (!BROWSER_TESTS_ENABLED) console.warn(`browser tests skipped: ${BROWSER_SKIP_REASON}`);

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A stream over `bytes` that yields `step` bytes each time the test calls `next()`. */
function steppedStream(bytes: Buffer, step: number): { stream: Readable; next(): void } {
  const gates: Array<ReturnType<typeof gate>> = [];
  const gateAt = (index: number) => (gates[index] ??= gate());
  let released = 0;
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let index = 0, at = 0; at < bytes.byteLength; index++, at += step) {
      await gateAt(index).promise;
      for (let piece = at; piece < Math.min(at + step, bytes.byteLength); piece += 256 * 1024) yield bytes.subarray(piece, Math.min(piece + 256 * 1024, at + step, bytes.byteLength));
    }
  }
  return { stream: Readable.from(pieces(), { objectMode: false }), next: () => gateAt(released++).open() };
}

/** A stage that logs, then holds until `release` (or its signal), then returns `{ held: true }`. */
function heldStage(name: string) {
  const entered = gate();
  const release = gate();
  const aborted = gate();
  const stage: Stage = {
    name,
    async run(ctx) {
      ctx.progress(1, 2);
      ctx.log('info', `${name} is halfway`);
      entered.open();
      await Promise.race([release.promise, new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))]);
      if (ctx.signal.aborted) {
        aborted.open();
        throw new Error('aborted');
      }
      ctx.progress(2, 2);
      return { held: true };
    },
  };
  return { stage, entered: entered.promise, release: release.open, aborted: aborted.promise };
}

/** The ids of the rows shown, top to bottom. */
function shownIds(page: Page): Promise<string[]> {
  return page.locator('tr.upload-row:not([hidden])').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-upload-id') ?? ''));
}

function chartNumber(page: Page, name: 'points' | 'totalBytes'): Promise<number> {
  return page.locator('#throughput').evaluate((figure, key) => Number((figure as HTMLElement).dataset[key]), name);
}

describe.runIf(BROWSER_TESTS_ENABLED)('dashboard (Chromium)', () => {
  let chromium: ChromiumSession;

  beforeAll(async () => {
    chromium = await launchChromium();
    await mkdir(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await chromium?.close();
  });

  async function openDashboard(url: string): Promise<Page> {
    const { page, errors } = await chromium.newPage();
    onCleanup(async () => {
      await page.close();
      expect(errors, 'uncaught errors in the page').toEqual([]);
    });
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    await page.locator('body[data-ready="true"]').waitFor();
    await page.locator('#connection[data-connection="live"]').waitFor();
    return page;
  }

  it('lists uploads that ended before it was opened, newest first, older ones on "Load older uploads", counted in the tiles', async () => {
    const hub = await startHub();
    // 52 older uploads, cancelled, then one a client completes: more than a page of 50.
    const older: string[] = [];
    for (let i = 0; i < 52; i++) {
      const upload = await hub.hub.create(ANONYMOUS, { name: `old-${String(i).padStart(2, '0')}.bin`, size: 10 });
      await hub.hub.cancel(ANONYMOUS, upload.id);
      older.push(upload.id);
    }
    const client = startClient({ url: hub.url });
    const done = await client.upload(randomBytes(300 * 1024), { name: 'done-before.bin' }).done;

    const page = await openDashboard(`${hub.url}/dashboard`);
    const row = page.locator(`tr.upload-row[data-upload-id="${done.id}"]`);
    await row.waitFor();
    expect(await row.getAttribute('data-state')).toBe('completed');
    expect(await row.locator('.name').textContent()).toBe('done-before.bin');
    expect(await row.locator('.size').textContent()).toBe('300 KiB');
    expect(await row.locator('.bytes').textContent()).toBe('300 KiB');
    expect(await row.locator('.percent').textContent()).toBe('100%');
    expect(await row.locator('.rate').textContent()).toBe('—');
    expect(await row.locator('.duration').textContent()).not.toBe('—');
    // Newest first, one page of 50.
    await page.locator('#more:not([hidden])').waitFor();
    const firstPage = await shownIds(page);
    expect(firstPage).toHaveLength(50);
    expect(firstPage[0]).toBe(done.id);
    expect(await page.locator('th[data-column="created"]').getAttribute('aria-sort')).toBe('descending');
    await page.locator('#tile-completed dd[data-value="1"]').waitFor();
    await page.locator('#tile-cancelled dd[data-value="52"]').waitFor();
    expect(await page.locator('#tile-failed dd').getAttribute('data-value')).toBe('0');
    expect(await page.locator('#tile-active dd').getAttribute('data-value')).toBe('0');

    await page.getByRole('button', { name: 'Load older uploads' }).click();
    await page.locator('#more[hidden]').waitFor({ state: 'attached' });
    await page.waitForFunction(() => document.querySelectorAll('tr.upload-row').length === 53);
    const all = await shownIds(page);
    expect(new Set(all)).toEqual(new Set([done.id, ...older]));
    expect(await page.locator('#summary').textContent()).toBe('0 active, 53 finished');

    // Its detail: only the status is known (it ended before the page opened), the result included.
    await row.locator('button.name').click();
    const detail = page.locator('#detail');
    await detail.waitFor();
    expect(await page.locator('#detail-title').textContent()).toBe('done-before.bin');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('detail-title');
    expect(await detail.locator('#detail-note').textContent()).toContain('ended before this page opened');
    expect(await detail.locator('#detail-facts').textContent()).toContain(done.id);
  });

  it('draws aggregate throughput live while an upload runs, one point a second, and the tiles follow', async () => {
    const hub = await startHub({ options: { uploadWindow: MiB, minWindow: 256 * 1024 } });
    const page = await openDashboard(`${hub.url}/dashboard`);
    expect(await chartNumber(page, 'totalBytes')).toBe(0);

    const bytes = randomBytes(4 * MiB);
    const { stream, next } = steppedStream(bytes, MiB);
    const client = startClient({ url: hub.url });
    const upload = client.upload(stream, { name: 'steady.bin', size: bytes.byteLength });
    const id = await new Promise<string>((resolve) => upload.on('created', resolve));
    const row = page.locator(`tr.upload-row[data-upload-id="${id}"]`);
    await row.waitFor();
    await page.locator('#tile-active dd[data-value="1"]').waitFor();

    // Each MiB the hub commits shows in the chart's data as it arrives (the client may hold back
    // a partial chunk until the next step); the series grows a point a second.
    let points = await chartNumber(page, 'points');
    let total = 0;
    for (let step = 1; step <= 3; step++) {
      next();
      await page.waitForFunction((least) => Number(document.querySelector<HTMLElement>('#throughput')?.dataset.totalBytes) >= least, total + MiB / 2, { timeout: 30_000 });
      await page.waitForFunction((before) => Number(document.querySelector<HTMLElement>('#throughput')?.dataset.points) > before, points, { timeout: 30_000 });
      points = await chartNumber(page, 'points');
      total = await chartNumber(page, 'totalBytes');
    }
    // What was drawn: a line that leaves the baseline.
    const path = (await page.locator('#throughput path.chart-line').getAttribute('d')) ?? '';
    const heights = [...path.matchAll(/L[\d.]+,([\d.]+)/g)].map((match) => Number(match[1]));
    expect(Math.min(...heights)).toBeLessThan(150);
    expect(Number(await page.locator('#throughput').getAttribute('data-peak'))).toBeGreaterThan(0);
    expect(await page.locator('#chart-caption').textContent()).toMatch(/^Now .*, peak .* over the last 5 min$/);
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
    expect((await stat(`${ARTIFACTS}dashboard.png`)).size).toBeGreaterThan(10_000);

    next();
    await upload.done;
    await row.and(page.locator('[data-state="completed"]')).waitFor();
    // Every byte counted, each once.
    await page.waitForFunction((all) => Number(document.querySelector<HTMLElement>('#throughput')?.dataset.totalBytes) === all, 4 * MiB, { timeout: 30_000 });
    await page.locator('#tile-completed dd[data-value="1"]').waitFor();
    await page.locator('#tile-active dd[data-value="0"]').waitFor();
  });

  it('filters by state and owner, and sorts by a column from the keyboard', async () => {
    const principals: Record<string, Principal> = { alice: { id: 'alice' }, bob: { id: 'bob' }, boss: { id: 'boss', admin: true } };
    const hub = await startHub({ authenticate: (token) => (token === undefined ? null : principals[token] ?? null) });
    const alice = startClient({ url: hub.url, token: 'alice' });
    const bob = startClient({ url: hub.url, token: 'bob' });
    const small = await alice.upload(randomBytes(10 * 1024), { name: 'a-small.bin' }).done;
    const large = await bob.upload(randomBytes(300 * 1024), { name: 'b-large.bin' }).done;
    const medium = await hub.hub.create(principals.alice as Principal, { name: 'c-medium.bin', size: 100 * 1024 });
    await hub.hub.cancel(principals.alice as Principal, medium.id);

    const page = await openDashboard(`${hub.url}/dashboard?token=boss`);
    await page.waitForFunction(() => document.querySelectorAll('tr.upload-row').length === 3);
    expect(await shownIds(page)).toEqual([medium.id, large.id, small.id]);

    await page.getByLabel('State').selectOption('cancelled');
    await page.waitForFunction(() => document.querySelectorAll('tr.upload-row:not([hidden])').length === 1);
    expect(await shownIds(page)).toEqual([medium.id]);
    expect(await page.locator('#summary').textContent()).toBe('0 active, 3 finished · 1 shown');
    await page.getByLabel('State').selectOption('completed');
    await page.waitForFunction(() => document.querySelectorAll('tr.upload-row:not([hidden])').length === 2);
    expect(await shownIds(page)).toEqual([large.id, small.id]);
    await page.getByLabel('Owner').selectOption('alice');
    await page.waitForFunction(() => document.querySelectorAll('tr.upload-row:not([hidden])').length === 1);
    expect(await shownIds(page)).toEqual([small.id]);
    await page.getByLabel('State').selectOption('all');
    await page.waitForFunction(() => document.querySelectorAll('tr.upload-row:not([hidden])').length === 2);
    expect(await shownIds(page)).toEqual([medium.id, small.id]);
    await page.getByLabel('Owner').selectOption('');
    await page.waitForFunction(() => document.querySelectorAll('tr.upload-row:not([hidden])').length === 3);

    // Sorting: the header's button, reached and pressed from the keyboard.
    const sizeHeader = page.locator('th[data-column="size"]');
    await sizeHeader.locator('button').focus();
    await page.keyboard.press('Enter');
    await page.locator('th[data-column="size"][aria-sort="ascending"]').waitFor();
    expect(await page.locator('th[data-column="created"]').getAttribute('aria-sort')).toBeNull();
    expect(await shownIds(page)).toEqual([small.id, medium.id, large.id]);
    await page.keyboard.press('Space');
    await page.locator('th[data-column="size"][aria-sort="descending"]').waitFor();
    expect(await shownIds(page)).toEqual([large.id, medium.id, small.id]);
    // By owner, then newest first among one owner's.
    await page.locator('th[data-column="owner"] button').click();
    await page.locator('th[data-column="owner"][aria-sort="ascending"]').waitFor();
    expect(await shownIds(page)).toEqual([medium.id, small.id, large.id]);
  });

  it('the detail view shows each step with its duration, the log and the result', async () => {
    const held = heldStage('verify');
    const summarize: Stage = {
      name: 'summarize',
      run(ctx) {
        ctx.log('warn', 'summarize found nothing odd');
        return { lines: 3 };
      },
    };
    const hub = await startHub({ pipeline: [held.stage, summarize] });
    const page = await openDashboard(`${hub.url}/dashboard`);
    const client = startClient({ url: hub.url });
    const upload = client.upload(randomBytes(MiB), { name: 'detailed.bin' });
    await held.entered;
    const row = page.locator('tr.upload-row[data-state="processing"]');
    await row.waitFor();

    // Opened mid-processing: the running stage counts up.
    await row.locator('button.name').press('Enter');
    const detail = page.locator('#detail');
    await detail.waitFor();
    expect(await row.locator('button.name').getAttribute('aria-expanded')).toBe('true');
    await detail.locator('tr.step-row[data-step="verify"][data-running="true"]').waitFor();
    await detail.locator('#detail-log li', { hasText: '[verify] verify is halfway' }).waitFor();
    expect(await detail.locator('tr.step-row[data-step="upload"] .step-duration').textContent()).not.toBe('—');

    held.release();
    const result = await upload.done;
    await detail.and(page.locator('[data-state="completed"]')).waitFor();
    expect(await detail.locator('tr.step-row').evaluateAll((steps) => steps.map((step) => step.getAttribute('data-step')))).toEqual(['upload', 'verify', 'summarize']);
    for (const name of ['upload', 'verify', 'summarize']) {
      const step = detail.locator(`tr.step-row[data-step="${name}"]`);
      expect(await step.getAttribute('data-running')).toBe('false');
      expect(await step.locator('.step-duration').textContent(), name).toMatch(/^\d+(\.\d)? (ms|s)$/);
    }
    await detail.locator('#detail-log li.level-warn', { hasText: '[summarize] summarize found nothing odd' }).waitFor();
    expect(await detail.locator('#detail-note').isHidden()).toBe(true);
    expect(JSON.parse((await detail.locator('#detail-result').textContent()) ?? 'null')).toEqual(result.result);
    expect(result.result).toEqual({ verify: { held: true }, summarize: { lines: 3 } });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-detail.png`, fullPage: true });

    // Escape closes it and gives the focus back to the row.
    await page.locator('#detail-title').press('Escape');
    await detail.waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => document.activeElement?.closest('tr')?.getAttribute('data-upload-id'))).toBe(result.id);
  });

  it('recovers by itself after the hub restarts: one event stream again, and the list fetched again shows what happened meanwhile', async () => {
    const dataDir = await tempDir();
    const first = await startHub({ options: { dataDir } });
    const proxy = await startPageProxy(first.port);
    onCleanup(() => proxy.close());
    const page = await openDashboard(`${proxy.url}/dashboard`);
    const before = await startClient({ url: first.url }).upload(randomBytes(64 * 1024), { name: 'before.bin' }).done;
    await page.locator(`tr.upload-row[data-upload-id="${before.id}"][data-state="completed"]`).waitFor();

    // The hub goes away and comes back on the same data; an upload starts and ends meanwhile,
    // so neither a snapshot (it is not active) nor a replay (other process) can tell of it.
    proxy.cut();
    await page.locator('#connection[data-connection="reconnecting"]').waitFor();
    await first.close();
    const second = await startHub({ options: { dataDir } });
    const during = await startClient({ url: second.url }).upload(randomBytes(64 * 1024), { name: 'during.bin' }).done;
    proxy.retarget(second.port);
    proxy.restore();

    await page.locator('#connection[data-connection="live"]').waitFor();
    const row = page.locator(`tr.upload-row[data-upload-id="${during.id}"]`);
    await row.waitFor();
    expect(await row.getAttribute('data-state')).toBe('completed');
    expect(await shownIds(page)).toEqual([during.id, before.id]);
    await page.locator('#tile-completed dd[data-value="2"]').waitFor();
    // One event stream, on the hub it now talks to (the browser's own reconnect, not one beside it).
    const watchers = async () => Number(/^upload_hub_http_watchers (\d+)$/m.exec(await (await fetch(`${second.url}/metrics`)).text())?.[1]);
    expect(await watchers()).toBe(1);

    // And it goes on live.
    const after = await startClient({ url: second.url }).upload(randomBytes(64 * 1024), { name: 'after.bin' }).done;
    await page.locator(`tr.upload-row[data-upload-id="${after.id}"][data-state="completed"]`).waitFor();
  });

  it('cancel: a refused cancel (403) shows the hub\'s error and changes nothing; an allowed one cancels on the hub', async () => {
    const held = heldStage('verify');
    const viewer: Principal = { id: 'viewer', role: 'admin' };
    let refused = 0;
    const hub = await startHub({
      pipeline: [held.stage],
      authenticate: (token) => (token === 'viewer' ? viewer : token === 'alice' ? { id: 'alice' } : null),
    });
    onCleanup(() => held.release());
    const page = await openDashboard(`${hub.url}/dashboard?token=viewer`);
    const client = startClient({ url: hub.url, token: 'alice' });
    const upload = client.upload(randomBytes(MiB), { name: 'contested.bin' });
    const rejected = upload.done.then(() => undefined, (error: unknown) => error);
    await held.entered;
    const row = page.locator('tr.upload-row');
    await page.locator('tr.upload-row[data-state="processing"]').waitFor();
    const id = (await row.getAttribute('data-upload-id')) as string;
    const cancel = page.getByRole('button', { name: 'Cancel upload of contested.bin' });

    // The viewer becomes a watcher: it still sees alice's uploads but may not cancel them (403).
    viewer.role = 'watcher';
    page.on('response', (response) => {
      if (response.request().method() === 'DELETE' && response.status() === 403) refused++;
    });
    await cancel.click();
    await row.locator('.last-log', { hasText: 'Cancel failed: ERR_FORBIDDEN' }).waitFor();
    expect(refused).toBe(1);
    expect(await row.getAttribute('data-state')).toBe('processing');
    expect(await cancel.isEnabled()).toBe(true);
    expect(await page.locator('#announcer').textContent()).toContain('ERR_FORBIDDEN');
    expect((await hub.hub.status({ id: 'alice' }, id)).state).toBe('processing');

    viewer.role = 'admin';
    await cancel.click();
    await page.locator('tr.upload-row[data-state="cancelled"]').waitFor();
    await held.aborted;
    expect(await rejected).toMatchObject({ code: 'ERR_CANCELLED', stage: 'verify' });
    expect((await hub.hub.status({ id: 'alice' }, id)).state).toBe('cancelled');
    expect(await row.locator('button.cancel').isDisabled()).toBe(true);
    await page.locator('#tile-cancelled dd[data-value="1"]').waitFor();
    expect(await page.locator('#announcer').textContent()).toBe('contested.bin: cancelled');
  });
});
