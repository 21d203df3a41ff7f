/**
 * The pages tell the truth, in real Chromium: an upload that ended while the page was away
 * shows how it really ended; finished items show no live speed or ETA; an upload whose client
 * went away waits for it; the ETA counts down between events; the log box follows its tail.
 *
 * Stages and store writes wait on gates the test opens, so every state looked at is held until
 * it has been seen.
 */
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Stage } from '../../server/processing/Stage.js';
import { DiskStore } from '../../server/store/DiskStore.js';
import type { ByteWriter } from '../../server/store/UploadStore.js';
import { gatedStream, openConnection } from '../protocolHelpers.js';
import { BROWSER_SKIP_REASON, BROWSER_TESTS_ENABLED, launchChromium, startPageProxy, type ChromiumSession } from '../browserHelpers.js';
import { onCleanup, startClient, startHub, tempDir } from '../helpers.js';

const MiB = 1024 * 1024;

if (!BROWSER_TESTS_ENABLED) console.warn(`browser tests skipped: ${BROWSER_SKIP_REASON}`);

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * A stage that reports `before` of its steps and logs `lines` lines, then holds until the test
 * opens `release` (or its signal fires), then logs `linesAfter` more and finishes.
 */
function heldStage(name: string, { lines = 1, linesAfter = 0, steps = 2, before = 1 } = {}) {
  const entered = gate();
  const release = gate();
  const stage: Stage = {
    name,
    async run(ctx) {
      ctx.progress(before, steps);
      for (let i = 0; i < lines; i++) ctx.log('info', `${name} line ${i}`);
      entered.open();
      const abort = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      await Promise.race([release.promise, abort]);
      if (ctx.signal.aborted) throw new Error('aborted');
      for (let i = 0; i < linesAfter; i++) ctx.log('info', `${name} after ${i}`);
      ctx.progress(steps, steps);
      return { done: true };
    },
  };
  return { stage, entered: entered.promise, release: release.open };
}

/** A disk store whose writes from byte `holdAt` on wait until the test opens the gate. */
class GatedStore extends DiskStore {
  private readonly reached = gate();
  private readonly gate = gate();
  readonly holding = this.reached.promise;

  constructor(dataDir: string, private readonly holdAt: number) {
    super(dataDir);
  }

  open(): void {
    this.gate.open();
  }

  override async openWriter(id: string, offset: number): Promise<ByteWriter> {
    const writer = await super.openWriter(id, offset);
    return {
      write: async (chunks, position) => {
        if (position >= this.holdAt) {
          this.reached.open();
          await this.gate.promise;
        }
        return writer.write(chunks, position);
      },
      close: () => writer.close(),
    };
  }
}

/** The seconds an ETA text says ("18 s", "1 min 5 s"); NaN for "—". */
function etaSeconds(text: string | null): number {
  const match = /^(?:(\d+) min )?(\d+) s$/.exec(text ?? '');
  return match ? Number(match[1] ?? 0) * 60 + Number(match[2]) : Number.NaN;
}

describe.runIf(BROWSER_TESTS_ENABLED)('the pages tell the truth (Chromium)', () => {
  let chromium: ChromiumSession;

  beforeAll(async () => {
    chromium = await launchChromium();
  });
  afterAll(async () => {
    await chromium?.close();
  });

  async function openPage(url: string): Promise<Page> {
    const { page, errors } = await chromium.newPage();
    onCleanup(async () => {
      await page.close();
      expect(errors, 'uncaught errors in the page').toEqual([]);
    });
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    await page.locator('body[data-ready="true"]').waitFor();
    return page;
  }

  it('dashboard: an upload that completed while the page was disconnected (and the hub restarted) shows completed, not expired', async () => {
    const dataDir = await tempDir();
    const held = heldStage('verify');
    const first = await startHub({ pipeline: [held.stage], options: { dataDir } });
    const proxy = await startPageProxy(first.port);
    onCleanup(() => proxy.close());
    const page = await openPage(`${proxy.url}/dashboard`);
    await page.locator('#connection[data-connection="live"]').waitFor();

    const client = startClient({ url: first.url });
    const upload = client.upload(randomBytes(MiB), { name: 'ends-unseen.bin' });
    await held.entered;
    const row = page.locator('tr.upload-row');
    await page.locator('tr.upload-row[data-state="processing"]').waitFor();

    // The page loses its connection; meanwhile the upload completes and its hub restarts, so
    // no event of it is left to replay: only its status can tell.
    proxy.cut();
    await page.locator('#connection[data-connection="reconnecting"]').waitFor();
    held.release();
    const result = await upload.done;
    client.close();
    await first.close();
    const second = await startHub({ options: { dataDir } });
    expect((await second.hub.status(ANONYMOUS, result.id)).state).toBe('completed');
    proxy.retarget(second.port);
    proxy.restore();

    await page.locator('#connection[data-connection="live"]').waitFor();
    await page.locator('tr.upload-row:not([data-state="processing"])').waitFor();
    expect(await row.getAttribute('data-state')).toBe('completed');
    expect(await row.locator('.badge').textContent()).toBe('completed');
    expect(await row.locator('progress').getAttribute('value')).toBe('100');
    expect(await row.locator('.rate').textContent()).toBe('—');
    expect(await row.locator('.eta').textContent()).toBe('—');
    expect(await page.locator('#summary').textContent()).toBe('0 active, 1 finished');
  });

  it('a completed upload says it is done, with no speed or ETA, on the upload page and the dashboard', async () => {
    const hub = await startHub();
    const dashboard = await openPage(`${hub.url}/dashboard`);
    await dashboard.locator('#connection[data-connection="live"]').waitFor();
    const page = await openPage(`${hub.url}/`);
    await page.setInputFiles('#files', { name: 'quick.bin', mimeType: 'application/octet-stream', buffer: randomBytes(6 * MiB) });
    const item = page.locator('li.upload[data-state="completed"]');
    await item.waitFor();
    expect(await item.locator('.facts .phase').textContent()).toBe('done');
    expect(await item.locator('.facts .rate').textContent()).toBe('—');
    expect(await item.locator('.facts .eta').textContent()).toBe('—');
    expect(await item.locator('.percent').textContent()).toBe('100%');

    const row = dashboard.locator('tr.upload-row[data-state="completed"]');
    await row.waitFor();
    expect(await row.locator('.rate').textContent()).toBe('—');
    expect(await row.locator('.eta').textContent()).toBe('—');
  });

  it('dashboard: an upload whose client went away waits for its client, and moves again when it is back', async () => {
    const hub = await startHub();
    const page = await openPage(`${hub.url}/dashboard`);
    await page.locator('#connection[data-connection="live"]').waitFor();

    // A real client sends the first MiB of 4, then its stream stalls and the client goes away.
    const bytes = randomBytes(4 * MiB);
    const { stream } = gatedStream(bytes, MiB);
    const client = startClient({ url: hub.url });
    const upload = client.upload(stream, { name: 'abandoned.bin', size: bytes.byteLength });
    const id = await new Promise<string>((resolve) => upload.on('created', resolve));
    const row = page.locator('tr.upload-row');
    await page.locator('tr.upload-row[data-state="uploading"] progress:not([value="0"])').waitFor();
    expect((await hub.hub.status(ANONYMOUS, id)).attached).toBe(true);
    expect(await row.getAttribute('data-waiting')).not.toBe('true');
    client.close();

    await page.locator('tr.upload-row[data-waiting="true"]').waitFor();
    expect((await hub.hub.status(ANONYMOUS, id)).attached).toBe(false);
    expect(await row.getAttribute('data-state')).toBe('uploading');
    expect(await row.locator('.badge').textContent()).toBe('waiting for client');
    expect(await row.locator('.rate').textContent()).toBe('—');
    expect(await row.locator('.eta').textContent()).toBe('—');

    // Its client comes back and resumes: the row is uploading again.
    const raw = await openConnection('ws', hub.url);
    const attached = await raw.connection.request({ type: 'resume', uploadId: id });
    // Within the window the hub granted (it starts small on a resume).
    const reply = await raw.connection.sendChunk(id, attached.offset, bytes.subarray(attached.offset, attached.offset + Math.min(attached.window, 64 * 1024)));
    expect(reply).toMatchObject({ type: 'ack', status: 'accepted' });
    await page.locator('tr.upload-row[data-waiting="false"][data-state="uploading"]').waitFor();
    expect(await row.locator('.badge').textContent()).toBe('uploading');
  });

  it('upload page: an upload whose connection dropped waits for it, at no speed, then completes', async () => {
    const dataDir = await tempDir();
    const store = new GatedStore(dataDir, 2 * MiB);
    const hub = await startHub({ store, options: { dataDir, uploadWindow: MiB, minWindow: 256 * 1024 } });
    // Cleanups run last-registered first: the gate opens before the hub closes (it waits for writes).
    onCleanup(() => store.open());
    const proxy = await startPageProxy(hub.port);
    onCleanup(() => proxy.close());
    const page = await openPage(`${proxy.url}/`);
    await page.setInputFiles('#files', { name: 'interrupted.bin', mimeType: 'application/octet-stream', buffer: randomBytes(4 * MiB) });
    await store.holding;
    const item = page.locator('li.upload');
    await page.locator('li.upload[data-state="uploading"] progress:not([value="0"])').waitFor();

    proxy.cut();
    await page.locator('li.upload[data-waiting="true"]').waitFor();
    expect(await item.locator('.badge').textContent()).toBe('waiting for connection');
    expect(await item.locator('.facts .rate').textContent()).toBe('—');
    expect(await item.locator('.facts .eta').textContent()).toBe('—');

    store.open();
    proxy.restore();
    await page.locator('li.upload[data-state="completed"]').waitFor();
    expect(await item.getAttribute('data-waiting')).toBe('false');
    expect(await item.locator('.facts .phase').textContent()).toBe('done');
  });

  it('dashboard: the ETA covers the rest of the bar and counts down between events', async () => {
    const entered = gate();
    const release = gate();
    const stage: Stage = {
      name: 'slow',
      async run(ctx) {
        ctx.progress(1, 20);
        // A stage that takes its time, so the hub measures a rate for it (and an ETA to 100%).
        await new Promise((resolve) => setTimeout(resolve, 1000));
        ctx.progress(2, 20);
        entered.open();
        await Promise.race([release.promise, new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))]);
        ctx.progress(20, 20);
        return null;
      },
    };
    const hub = await startHub({ pipeline: [stage] });
    onCleanup(() => release.open());
    const page = await openPage(`${hub.url}/dashboard`);
    await page.locator('#connection[data-connection="live"]').waitFor();
    const client = startClient({ url: hub.url });
    const upload = client.upload(randomBytes(MiB), { name: 'slow.bin' });
    await entered.promise;
    const row = page.locator('tr.upload-row');
    await page.locator('tr.upload-row .badge', { hasText: 'slow 10%' }).waitFor();
    // No more events come while the stage holds; the ETA still moves.
    const first = etaSeconds(await row.locator('.eta').textContent());
    expect(first).toBeGreaterThanOrEqual(2);
    await page.waitForFunction(
      ({ before }) => {
        const match = /^(?:(\d+) min )?(\d+) s$/.exec(document.querySelector('tr.upload-row .eta')?.textContent ?? '');
        return match !== null && Number(match[1] ?? 0) * 60 + Number(match[2]) < before;
      },
      { before: first },
      { timeout: 10_000 },
    );
    release.open();
    await upload.done;
    await page.locator('tr.upload-row[data-state="completed"]').waitFor();
    expect(await row.locator('.eta').textContent()).toBe('—');
  });

  it('upload page: the log box follows its tail, unless the reader scrolled up', async () => {
    const held = heldStage('chatty', { lines: 40, linesAfter: 40 });
    const hub = await startHub({ pipeline: [held.stage], options: { logLinesPerSecond: 1000 } });
    const page = await openPage(`${hub.url}/`);
    await page.setInputFiles('#files', { name: 'chatty.bin', mimeType: 'application/octet-stream', buffer: randomBytes(256 * 1024) });
    await held.entered;
    const log = page.locator('li.upload ol.log');
    await log.locator('li', { hasText: 'chatty line 39' }).waitFor();
    const following = () => log.evaluate((list) => ({ overflows: list.scrollHeight > list.clientHeight + 20, atBottom: list.scrollHeight - list.scrollTop - list.clientHeight <= 4 }));
    expect(await following()).toEqual({ overflows: true, atBottom: true });

    // The reader scrolls up to read an early line: new lines must not pull the box away from it.
    await log.evaluate((list) => (list.scrollTop = 0));
    held.release();
    await page.locator('li.upload[data-state="completed"]').waitFor();
    await log.locator('li', { hasText: 'chatty after 39' }).waitFor();
    expect(await log.evaluate((list) => list.scrollTop)).toBe(0);
  });
});
