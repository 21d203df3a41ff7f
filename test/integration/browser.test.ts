/**
 * The pages in real Chromium: the upload page's bars through both phases, cancel from the
 * page, and the dashboard following another client's uploads live (and cancelling one).
 *
 * Stages and store writes here wait on gates the test opens, so every intermediate state the
 * test looks at is held until it has been seen: nothing waits on time.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Stage } from '../../server/processing/Stage.js';
import { DiskStore } from '../../server/store/DiskStore.js';
import type { ByteWriter } from '../../server/store/UploadStore.js';
import type { JsonValue } from '../../shared/messages.js';
import { BROWSER_SKIP_REASON, BROWSER_TESTS_ENABLED, launchChromium, type ChromiumSession } from '../browserHelpers.js';
import { onCleanup, sha256File, sha256Of, startClient, startHub, tempDir, storedPath } from '../helpers.js';

const MiB = 1024 * 1024;

if (!BROWSER_TESTS_ENABLED) console.warn(`browser tests skipped: ${BROWSER_SKIP_REASON}`);

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A real stage (it hashes the stored file) that first reports half of its progress and a log
 * line, then holds until the test opens `release`, or until its signal fires.
 */
function heldStage(name: string) {
  const entered = new Map<string, Deferred>();
  const enteredFor = (uploadName: string) => {
    let gate = entered.get(uploadName);
    if (!gate) entered.set(uploadName, (gate = deferred()));
    return gate;
  };
  const release = deferred();
  const aborted = deferred<string>();
  const stage: Stage = {
    name,
    async run(ctx) {
      ctx.progress(1, 2);
      ctx.log('info', `${name} is halfway`);
      enteredFor(ctx.upload.name).resolve();
      const abort = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      await Promise.race([release.promise, abort]);
      if (ctx.signal.aborted) {
        aborted.resolve(ctx.upload.id);
        throw new Error('aborted');
      }
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const piece of ctx.createReadStream()) {
        hash.update(piece as Buffer);
        bytes += (piece as Buffer).byteLength;
      }
      ctx.progress(2, 2);
      return { bytes, sha256: hash.digest('hex') } satisfies JsonValue;
    },
  };
  return { stage, entered: (uploadName: string) => enteredFor(uploadName).promise, release: () => release.resolve(), aborted: aborted.promise };
}

/** A disk store whose writes from byte `holdAt` on wait until the test opens the gate. */
class GatedStore extends DiskStore {
  readonly holding = deferred();
  private readonly gate = deferred();

  constructor(dataDir: string, private readonly holdAt: number) {
    super(dataDir);
  }

  open(): void {
    this.gate.resolve();
  }

  override async openWriter(id: string, offset: number): Promise<ByteWriter> {
    const writer = await super.openWriter(id, offset);
    return {
      write: async (chunks, position) => {
        if (position >= this.holdAt) {
          this.holding.resolve();
          await this.gate.promise;
        }
        return writer.write(chunks, position);
      },
      close: () => writer.close(),
    };
  }
}

type BarLog = Record<string, number[]>;

/**
 * Installed before the page's scripts: records every value each upload's <progress> takes
 * (progress.value reflects to the `value` attribute), keyed by the element's upload item.
 */
function recordBars(): void {
  const log: Record<string, number[]> = {};
  (window as unknown as { __bars: Record<string, number[]> }).__bars = log;
  new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      const bar = mutation.target;
      if (!(bar instanceof HTMLProgressElement)) continue;
      // Rows and items carry their upload's id from its first event on.
      const key = bar.closest('li, tr')?.getAttribute('data-upload-id') ?? '?';
      (log[key] ??= []).push(bar.value);
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['value'] });
}

async function barValue(page: Page, selector: string): Promise<number> {
  return Number(await page.locator(`${selector} progress`).getAttribute('value'));
}

/** Where screenshots go: BROWSER_SCREENSHOT_DIR to keep them, else a temp dir. */
async function screenshotDir(): Promise<string> {
  return process.env.BROWSER_SCREENSHOT_DIR ?? (await tempDir('upload-hub-shots-'));
}

describe.runIf(BROWSER_TESTS_ENABLED)('pages in Chromium', () => {
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
    await page.addInitScript(recordBars);
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    await page.locator('body[data-ready="true"]').waitFor();
    return page;
  }

  it('upload page: two files, bars through upload, queue and processing to 100, stored bytes intact', async () => {
    const held = heldStage('verify');
    // One upload processed at a time, so the second one shows its queue position.
    const hub = await startHub({ pipeline: [held.stage], options: { processingConcurrency: 1 } });
    const page = await openPage(`${hub.url}/`);
    await page.locator('#connection[data-connection="live"]').waitFor();

    const big = randomBytes(8 * MiB);
    const small = randomBytes(300 * 1024 + 7);
    await page.setInputFiles('#files', [
      { name: 'big.bin', mimeType: 'application/octet-stream', buffer: big },
      { name: 'small.bin', mimeType: 'application/octet-stream', buffer: small },
    ]);
    await page.locator('li.upload').nth(1).waitFor();

    // One upload is held in its stage at half, the other waits in the queue behind it.
    await Promise.race([held.entered('big.bin'), held.entered('small.bin')]);
    const processing = page.locator('li.upload[data-state="processing"]');
    await processing.locator('.facts .stage', { hasText: 'verify 50%' }).waitFor();
    await processing.locator('.log', { hasText: '[verify] verify is halfway' }).waitFor();
    await page.locator('li.upload[data-state="queued"] .badge', { hasText: 'queued #1' }).waitFor();
    const held50 = await barValue(page, 'li.upload[data-state="processing"]');
    expect(held50).toBeGreaterThanOrEqual(75);
    expect(held50).toBeLessThan(100);
    const queued = await barValue(page, 'li.upload[data-state="queued"]');
    expect(queued).toBe(50);

    held.release();
    await page.locator('li.upload[data-state="completed"]').nth(1).waitFor();
    const shots = await screenshotDir();
    const shot = join(shots, 'upload-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(10_000);

    for (const [name, bytes] of [['big.bin', big], ['small.bin', small]] as const) {
      const item = page.locator('li.upload', { has: page.locator('h3.name', { hasText: name }) });
      expect(await item.getAttribute('data-state')).toBe('completed');
      expect(await item.locator('progress').getAttribute('value')).toBe('100');
      expect(await item.locator('.percent').textContent()).toBe('100%');
      const id = await item.getAttribute('data-upload-id');
      expect(id).toBeTruthy();
      const sha256 = sha256Of(bytes);
      expect(await sha256File(storedPath(hub, id as string))).toBe(sha256);
      expect(await item.locator('code.sha256').textContent()).toBe(sha256);
      // The stage's result reached the page as the final result.
      const result = JSON.parse((await item.locator('pre.result-json').textContent()) ?? 'null') as { verify: { bytes: number; sha256: string } };
      expect(result.verify).toEqual({ bytes: bytes.byteLength, sha256 });
      expect((await hub.hub.status(ANONYMOUS, id as string)).state).toBe('completed');
    }

    // Every bar moved forward only, through the upload half and the processing half, to 100.
    const bars = await page.evaluate(() => (window as unknown as { __bars: BarLog }).__bars);
    const bigId = await page.locator('li.upload', { has: page.locator('h3.name', { hasText: 'big.bin' }) }).getAttribute('data-upload-id');
    const bigBar = bars[bigId as string] ?? [];
    expect(bigBar.length).toBeGreaterThan(3);
    for (let i = 1; i < bigBar.length; i++) expect(bigBar[i]).toBeGreaterThanOrEqual(bigBar[i - 1] as number);
    expect(bigBar.some((v) => v > 0 && v < 50)).toBe(true);
    expect(bigBar.some((v) => v > 50 && v < 100)).toBe(true);
    expect(bigBar.at(-1)).toBe(100);
  });

  it('upload page: Cancel mid-upload stops it on the hub and removes its bytes', async () => {
    const dataDir = await tempDir();
    // Writes past 2 MiB wait; the 1 MiB window keeps the client from getting far ahead, so
    // the 4 MiB file cannot finish before the hub reads the cancel (sent before any later chunk).
    const store = new GatedStore(dataDir, 2 * MiB);
    const hub = await startHub({ store, options: { dataDir, uploadWindow: MiB, minWindow: 256 * 1024 } });
    // Cleanups run last-registered first: open the gate before the hub closes (it waits for writes).
    onCleanup(() => store.open());
    const page = await openPage(`${hub.url}/`);
    await page.setInputFiles('#files', { name: 'doomed.bin', mimeType: 'application/octet-stream', buffer: randomBytes(4 * MiB) });
    await store.holding.promise;
    const item = page.locator('li.upload');
    await page.locator('li.upload[data-state="uploading"]').waitFor();
    await page.locator('li.upload progress:not([value="0"])').waitFor();
    const id = (await item.getAttribute('data-upload-id')) as string;

    await item.getByRole('button', { name: 'Cancel upload of doomed.bin' }).click();
    await page.locator('li.upload[data-state="cancelling"]').waitFor();
    store.open();
    await page.locator('li.upload[data-state="cancelled"]').waitFor();

    expect((await hub.hub.status(ANONYMOUS, id)).state).toBe('cancelled');
    expect(existsSync(storedPath(hub, id))).toBe(false);
    expect(await barValue(page, 'li.upload')).toBeLessThan(100);
    expect(await item.locator('button.cancel').isDisabled()).toBe(true);
    expect(await item.locator('button.cancel').isVisible()).toBe(false);
    await item.locator('.log', { hasText: 'Cancelled' }).waitFor();
  });

  it('upload page over Socket.IO (?transport=socket.io): the same page, the same result', async () => {
    const hub = await startHub();
    const page = await openPage(`${hub.url}/?transport=socket.io`);
    await page.locator('#connection[data-connection="live"]').waitFor();
    const bytes = randomBytes(3 * MiB + 11);
    await page.setInputFiles('#files', { name: 'over-socketio.bin', mimeType: 'application/octet-stream', buffer: bytes });
    await page.locator('li.upload[data-state="completed"]').waitFor();
    const id = (await page.locator('li.upload').getAttribute('data-upload-id')) as string;
    expect(await barValue(page, 'li.upload')).toBe(100);
    expect(await sha256File(storedPath(hub, id))).toBe(sha256Of(bytes));
    expect(hub.transports.find((transport) => transport.name === 'socket.io')).toBeDefined();
  });

  it('dashboard: follows another client\'s upload live from its first event to completed', async () => {
    const held = heldStage('verify');
    const hub = await startHub({ pipeline: [held.stage] });
    const page = await openPage(`${hub.url}/dashboard`);
    // Live: the watch is subscribed before the upload exists, so its row comes from events.
    await page.locator('#connection[data-connection="live"]').waitFor();
    expect(await page.locator('tr.upload-row').count()).toBe(0);

    const client = startClient({ url: hub.url });
    const bytes = randomBytes(8 * MiB);
    const upload = client.upload(bytes, { name: 'from-node.bin' });
    await held.entered('from-node.bin');
    const row = page.locator('tr.upload-row');
    await page.locator('tr.upload-row[data-state="processing"] .badge', { hasText: 'processing · verify 50%' }).waitFor();
    expect(await row.locator('.name').textContent()).toBe('from-node.bin');
    expect(await row.locator('.owner').textContent()).toBe('anonymous');
    await row.locator('.last-log', { hasText: 'verify is halfway' }).waitFor();
    const midway = await barValue(page, 'tr.upload-row');
    expect(midway).toBeGreaterThanOrEqual(75);
    expect(midway).toBeLessThan(100);
    expect(await page.locator('#summary').textContent()).toBe('1 active');
    const shot = join(await screenshotDir(), 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(10_000);

    held.release();
    const result = await upload.done;
    await page.locator('tr.upload-row[data-state="completed"]').waitFor();
    expect(await row.getAttribute('data-upload-id')).toBe(result.id);
    expect(await barValue(page, 'tr.upload-row')).toBe(100);
    expect(await sha256File(storedPath(hub, result.id))).toBe(sha256Of(bytes));
    expect(await page.locator('#summary').textContent()).toBe('0 active, 1 finished');

    // The row's bar only moved forward.
    const bars = await page.evaluate(() => (window as unknown as { __bars: BarLog }).__bars);
    const values = bars[result.id] ?? [];
    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1] as number);
    expect(values.at(-1)).toBe(100);
  });

  it('dashboard: Cancel on a row stops another client\'s upload mid-processing', async () => {
    const held = heldStage('verify');
    const hub = await startHub({ pipeline: [held.stage] });
    const page = await openPage(`${hub.url}/dashboard`);
    await page.locator('#connection[data-connection="live"]').waitFor();

    const client = startClient({ url: hub.url });
    const upload = client.upload(randomBytes(2 * MiB), { name: 'stop-me.bin' });
    const rejected = upload.done.then(() => undefined, (error: unknown) => error);
    await held.entered('stop-me.bin');
    await page.locator('tr.upload-row[data-state="processing"]').waitFor();

    await page.getByRole('button', { name: 'Cancel upload of stop-me.bin' }).click();
    await page.locator('tr.upload-row[data-state="cancelled"]').waitFor();
    // The hub waits for the stage to settle before it says `cancelled`: its signal fired first.
    const id = await held.aborted;
    expect(await rejected).toMatchObject({ code: 'ERR_CANCELLED', stage: 'verify' });
    expect(await page.locator('tr.upload-row').getAttribute('data-upload-id')).toBe(id);
    expect((await hub.hub.status(ANONYMOUS, id)).state).toBe('cancelled');
    expect(existsSync(storedPath(hub, id))).toBe(false);
    expect(await page.locator('tr.upload-row button.cancel').isDisabled()).toBe(true);
  });
});
