/**
 * The upload page in real Chromium: files dropped on the drop zone, each bar and the bar for all
 * files to 100%; pause and resume; a reload mid-upload continued from the hub's offset when the
 * same file is picked again; cancel mid-upload and mid-processing; retry after a failure.
 *
 * Store writes and stages wait on gates the test opens, and the store records every write, so
 * each state looked at is held until it has been seen and "where did it continue" is read off
 * the store's writes and the page's own log: nothing waits on time.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Stage } from '../../server/processing/Stage.js';
import { DiskStore } from '../../server/store/DiskStore.js';
import type { ByteWriter } from '../../server/store/UploadStore.js';
import { BROWSER_SKIP_REASON, BROWSER_TESTS_ENABLED, launchChromium, startPageProxy, type ChromiumSession } from '../browserHelpers.js';
import { onCleanup, sha256File, sha256Of, startHub, tempDir, storedPath } from '../helpers.js';
import { gateStage } from './http-helpers.js';

const MiB = 1024 * 1024;
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

if (!BROWSER_TESTS_ENABLED) console.warn(`browser tests skipped: ${BROWSER_SKIP_REASON}`);

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

interface Write {
  id: string;
  position: number;
  end: number;
}

/**
 * A disk store that records every write and holds those from byte `holdAt` on until the test
 * opens the gate.
 */
class GatedStore extends DiskStore {
  readonly writes: Write[] = [];
  private readonly reached = gate();
  private readonly gate = gate();
  readonly holding = this.reached.promise;

  constructor(dataDir: string, private readonly holdAt: number) {
    super(dataDir);
  }

  open(): void {
    this.gate.open();
  }

  /** The end of the last byte written (or held at the gate) of upload `id`. */
  endOf(id: string): number {
    return Math.max(0, ...this.writes.filter((write) => write.id === id).map((write) => write.end));
  }

  override async openWriter(id: string, offset: number): Promise<ByteWriter> {
    const writer = await super.openWriter(id, offset);
    return {
      write: async (chunks, position) => {
        if (position >= this.holdAt) {
          this.reached.open();
          await this.gate.promise;
        }
        const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
        this.writes.push({ id, position, end: position + length });
        return writer.write(chunks, position);
      },
      close: () => writer.close(),
    };
  }
}

/** Writes of upload `id` cover [0, size) back to back: nothing lost, nothing written twice. */
function expectContiguous(writes: Write[], id: string, size: number): void {
  let next = 0;
  for (const write of writes.filter((candidate) => candidate.id === id)) {
    expect(write.position).toBe(next);
    next = write.end;
  }
  expect(next).toBe(size);
}

/** A file of random bytes in a temp dir, so its last-modified time (part of its fingerprint) stays put. */
async function fileOnDisk(name: string, size: number): Promise<{ path: string; sha256: string; size: number }> {
  const bytes = randomBytes(size);
  const path = join(await tempDir('upload-hub-page-files-'), name);
  await writeFile(path, bytes);
  return { path, sha256: sha256Of(bytes), size };
}

type Series = Record<string, number[]>;

/** Installed before the page's scripts: every value each <progress> takes, by item (or `total`). */
function recordBars(): void {
  const log: Record<string, number[]> = {};
  (window as unknown as { __bars: Record<string, number[]> }).__bars = log;
  new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      const bar = mutation.target;
      if (!(bar instanceof HTMLProgressElement)) continue;
      const key = bar.id === 'total-bar' ? 'total' : (bar.closest('li')?.querySelector('h3.name')?.textContent ?? '?');
      (log[key] ??= []).push(bar.value);
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['value'] });
}

function expectForwardOnly(values: number[] | undefined): void {
  expect(values?.length ?? 0).toBeGreaterThan(1);
  for (let i = 1; i < (values?.length ?? 0); i++) expect(values?.[i]).toBeGreaterThanOrEqual(values?.[i - 1] as number);
}

function item(page: Page, name: string) {
  return page.locator('li.upload', { has: page.locator('h3.name', { hasText: name }) });
}

/** The committed offset the page last said sending went on from ("… (byte N) …" in its log). */
async function sendingFrom(upload: ReturnType<typeof item>): Promise<number> {
  const lines = await upload.locator('ol.log li', { hasText: 'Sending from' }).allTextContents();
  const match = /\(byte (\d+)\)/.exec(lines.at(-1) ?? '');
  if (!match) throw new Error(`no "Sending from" line in the log of the item: ${lines.join(' | ')}`);
  return Number(match[1]);
}

describe.runIf(BROWSER_TESTS_ENABLED)('the upload page (Chromium)', () => {
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

  it('three files dropped on the drop zone: each bar and the bar for all files reach 100% with completed', async () => {
    const held = gateStage('hold');
    // One upload processed at a time: the other two wait in the queue, in order.
    const hub = await startHub({ pipeline: [held.stage], options: { processingConcurrency: 1 } });
    onCleanup(() => held.release());
    const page = await openPage(`${hub.url}/`);
    await page.locator('#connection[data-connection="live"]').waitFor();
    expect(await page.locator('#total').isVisible()).toBe(false);

    // The files are made in the page and dropped as a real DataTransfer; the page hashes them too.
    const files = [['one.bin', 3 * MiB + 17], ['two.bin', 1 * MiB], ['three.bin', 300 * 1024 + 5]] as const;
    const hashes = await page.evaluate(async (specs) => {
      const made = specs.map(([name, size]) => {
        const bytes = new Uint8Array(size);
        for (let at = 0; at < size; at += 65_536) crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65_536)));
        return new File([bytes], name, { type: 'application/octet-stream' });
      });
      const digests: Record<string, string> = {};
      for (const file of made) {
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
        digests[file.name] = Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
      }
      const transfer = new DataTransfer();
      for (const file of made) transfer.items.add(file);
      const zone = document.getElementById('drop') as HTMLElement;
      zone.dispatchEvent(new DragEvent('dragenter', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      return digests;
    }, files);
    await page.locator('li.upload').nth(2).waitFor();
    const total = page.locator('#total');
    expect(await total.locator('#total-bytes').textContent()).toMatch(/ of 4\.3 MiB$/);

    // One is held in its stage, the other two queue behind it: the bar for all files says so.
    await held.started;
    await page.locator('li.upload[data-state="processing"]').waitFor();
    await page.locator('li.upload[data-state="queued"] .facts .queue', { hasText: '#2' }).waitFor();
    await page.locator('li.upload[data-state="queued"] .facts .queue', { hasText: '#1' }).waitFor();
    await total.locator('#total-summary', { hasText: '1 processing, 2 queued' }).waitFor();
    expect(await total.locator('#total-bytes').textContent()).toBe('4.3 MiB of 4.3 MiB');
    expect(Number(await total.locator('progress').getAttribute('value'))).toBeGreaterThanOrEqual(50);
    expect(Number(await total.locator('progress').getAttribute('value'))).toBeLessThan(100);
    // A queued file has no ETA, so neither has the whole.
    expect(await total.locator('#total-eta').textContent()).toBe('—');
    await mkdir(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'upload-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await stat(shot)).size).toBeGreaterThan(10_000);

    held.release();
    await page.locator('#total[data-state="completed"]').waitFor();
    expect(await page.locator('li.upload[data-state="completed"]').count()).toBe(3);
    expect(await total.locator('progress').getAttribute('value')).toBe('100');
    expect(await total.locator('#total-percent').textContent()).toBe('100%');
    expect(await total.locator('#total-summary').textContent()).toBe('3 completed');
    expect(await total.locator('#total-eta').textContent()).toBe('—');
    expect(await total.locator('#total-rate').textContent()).toBe('—');
    await page.locator('#announcer', { hasText: 'All files done: 3 completed' }).waitFor({ state: 'attached' });

    for (const [name, size] of files) {
      const done = item(page, name);
      expect(await done.getAttribute('data-state')).toBe('completed');
      expect(await done.locator('progress').getAttribute('value')).toBe('100');
      expect(await done.locator('.percent').textContent()).toBe('100%');
      expect(await done.locator('.facts .sent').textContent()).toMatch(/^(.+) of \1$/);
      const id = (await done.getAttribute('data-upload-id')) as string;
      expect(await sha256File(storedPath(hub, id))).toBe(hashes[name]);
      expect(await hub.hub.status(ANONYMOUS, id)).toMatchObject({ state: 'completed', size, sha256: hashes[name] });
      expect(await done.locator('code.sha256').textContent()).toBe(hashes[name]);
      // The result in a line, its JSON behind a disclosure that starts closed.
      expect(await done.locator('.result-summary li').first().textContent()).toBe('hold: released yes');
      expect(await done.locator('details.result-details').getAttribute('open')).toBeNull();
      expect(JSON.parse((await done.locator('details pre.result-json').textContent()) ?? 'null')).toEqual({ hold: { released: 'yes' } });
      expect(await done.getByRole('button', { name: `Retry upload of ${name}` }).isVisible()).toBe(false);
    }

    // Every bar, and the bar for all files, only moved forward.
    const bars = await page.evaluate(() => (window as unknown as { __bars: Series }).__bars);
    for (const [name] of files) {
      expectForwardOnly(bars[name]);
      expect(bars[name]?.at(-1)).toBe(100);
    }
    expectForwardOnly(bars.total);
    expect(bars.total?.some((value) => value > 0 && value < 100)).toBe(true);
    expect(bars.total?.at(-1)).toBe(100);
  });

  it('pause and resume mid-upload, from the keyboard: the hub keeps what it has, the file arrives byte-identical', async () => {
    const dataDir = await tempDir();
    const store = new GatedStore(dataDir, 2 * MiB);
    const hub = await startHub({ store, options: { dataDir, uploadWindow: MiB, minWindow: 256 * 1024 } });
    onCleanup(() => store.open());
    const file = await fileOnDisk('pausable.bin', 12 * MiB + 3);
    const page = await openPage(`${hub.url}/`);
    await page.locator('#connection[data-connection="live"]').waitFor();

    // The drop zone is a button: Enter opens the file picker. (The picker is intercepted from
    // the listener on, which takes a round trip: focusing is one.)
    const chooser = page.waitForEvent('filechooser');
    await page.locator('#drop').focus();
    await page.keyboard.press('Enter');
    await (await chooser).setFiles(file.path);
    await store.holding;
    const upload = item(page, 'pausable.bin');
    await page.locator('li.upload[data-state="uploading"] progress:not([value="0"])').waitFor();
    const id = (await upload.getAttribute('data-upload-id')) as string;

    await upload.getByRole('button', { name: 'Pause upload of pausable.bin' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('li.upload[data-state="paused"]').waitFor();
    expect(await upload.locator('.badge').textContent()).toBe('paused');
    expect(await upload.locator('.facts .rate').textContent()).toBe('—');
    expect(await upload.locator('.facts .eta').textContent()).toBe('—');
    // The keyboard stays on the item: Resume took the Pause button's place.
    const resume = upload.getByRole('button', { name: 'Resume upload of pausable.bin' });
    expect(await resume.evaluate((button) => button === document.activeElement)).toBe(true);
    expect(await upload.getByRole('button', { name: 'Pause upload of pausable.bin' }).isVisible()).toBe(false);

    // The chunks in flight land and are answered: the client says the pause took effect. Nothing
    // more was sent, and the hub keeps the upload with what it has.
    await upload.locator('.log', { hasText: 'Pausing: the chunks in flight finish first' }).waitFor();
    store.open();
    await upload.locator('.log', { hasText: 'Paused: nothing in flight' }).waitFor();
    const committed = (await hub.hub.status(ANONYMOUS, id)).bytes;
    expect(committed).toBeGreaterThanOrEqual(2 * MiB);
    // At most the window (1 MiB) past the gate, and a chunk's rounding.
    expect(committed).toBeLessThanOrEqual(2 * MiB + 2 * MiB);
    expect(store.endOf(id)).toBe(committed);
    expect(await upload.getAttribute('data-state')).toBe('paused');
    expect((await hub.hub.status(ANONYMOUS, id)).state).toBe('uploading');
    const mark = store.writes.length;

    await page.keyboard.press('Enter');
    await page.locator('li.upload[data-state="completed"]').waitFor();
    // It went on from the hub's committed offset, and every byte was written once, in order.
    expect(await sendingFrom(upload)).toBe(committed);
    expect(store.writes[mark]?.position).toBe(committed);
    expectContiguous(store.writes, id, file.size);
    expect(await sha256File(storedPath(hub, id))).toBe(file.sha256);
    expect(await upload.getAttribute('data-upload-id')).toBe(id);
    await upload.locator('.log', { hasText: 'Resumed' }).waitFor();
  });

  it('reload mid-upload: the unfinished uploads are listed; one is discarded, the other continues from the hub\'s offset when picked again', async () => {
    const dataDir = await tempDir();
    const holdAt = 3 * MiB;
    const store = new GatedStore(dataDir, holdAt);
    const hub = await startHub({ store, options: { dataDir, uploadWindow: MiB, minWindow: 256 * 1024 } });
    onCleanup(() => store.open());
    const proxy = await startPageProxy(hub.port);
    onCleanup(() => proxy.close());
    const kept = await fileOnDisk('kept.bin', 8 * MiB + 5);
    const dropped = await fileOnDisk('dropped.bin', 6 * MiB);
    const page = await openPage(`${proxy.url}/`);
    // Leaving a page with uploads running asks first; this reload means it.
    page.on('dialog', (dialog) => void dialog.accept());
    await page.locator('#connection[data-connection="live"]').waitFor();
    await page.setInputFiles('#files', [kept.path, dropped.path]);
    await store.holding;
    await page.locator('li.upload[data-state="uploading"]').nth(1).waitFor();
    const keptId = (await item(page, 'kept.bin').getAttribute('data-upload-id')) as string;
    const droppedId = (await item(page, 'dropped.bin').getAttribute('data-upload-id')) as string;

    await page.reload();
    await page.locator('body[data-ready="true"]').waitFor();
    // What reached the hub before the reload is written; a resume waits for it.
    store.open();
    expect(await page.locator('li.upload').count()).toBe(0);

    // Both are listed as unfinished, with what the hub has of them.
    const list = page.locator('#unfinished');
    const keptRow = list.locator(`li.unfinished-item[data-upload-id="${keptId}"]`);
    const droppedRow = list.locator(`li.unfinished-item[data-upload-id="${droppedId}"]`);
    await keptRow.waitFor();
    await droppedRow.waitFor();
    await keptRow.locator('.where', { hasText: ' on the hub ' }).waitFor();
    expect(await list.locator('.hint').textContent()).toContain('Pick the file again');

    await droppedRow.getByRole('button', { name: 'Discard unfinished upload of dropped.bin' }).click();
    await droppedRow.waitFor({ state: 'detached' });
    expect((await hub.hub.status(ANONYMOUS, droppedId)).state).toBe('cancelled');
    const remembered = await page.evaluate(() => Object.keys(localStorage).map((key) => localStorage.getItem(key) ?? ''));
    expect(remembered.some((value) => value.includes(droppedId))).toBe(false);
    expect(remembered.some((value) => value.includes(keptId))).toBe(true);

    // The same file picked again continues the same upload: only the rest is sent.
    proxy.resetCount();
    await page.setInputFiles('#files', kept.path);
    const upload = item(page, 'kept.bin');
    await page.locator('li.upload[data-state="completed"]').waitFor();
    expect(await upload.getAttribute('data-upload-id')).toBe(keptId);
    await upload.locator('.log', { hasText: `Continuing upload ${keptId}` }).waitFor();
    await keptRow.waitFor({ state: 'detached' });
    expect(await list.isVisible()).toBe(false);
    // It went on from the hub's committed offset: past the gate, and a write started exactly there.
    const offset = await sendingFrom(upload);
    expect(offset).toBeGreaterThanOrEqual(holdAt);
    expect(offset).toBeLessThan(kept.size);
    expect(store.writes.some((write) => write.id === keptId && write.position === offset)).toBe(true);
    expectContiguous(store.writes, keptId, kept.size);
    expect(await sha256File(storedPath(hub, keptId))).toBe(kept.sha256);
    expect(proxy.bytesToHub).toBeLessThan(kept.size);
    // The rest of the file and a little protocol: nothing below the offset went again.
    expect(proxy.bytesToHub).toBeLessThan(kept.size - offset + 256 * 1024);
    // Completed, it is forgotten: a later visit lists nothing.
    await page.reload();
    await page.locator('body[data-unfinished="listed"]').waitFor();
    expect(await list.isVisible()).toBe(false);
  });

  it('cancel mid-upload: the hub stops it and removes its bytes; Retry is offered', async () => {
    const dataDir = await tempDir();
    const store = new GatedStore(dataDir, 2 * MiB);
    const hub = await startHub({ store, options: { dataDir, uploadWindow: MiB, minWindow: 256 * 1024 } });
    onCleanup(() => store.open());
    const page = await openPage(`${hub.url}/`);
    await page.setInputFiles('#files', { name: 'doomed.bin', mimeType: 'application/octet-stream', buffer: randomBytes(6 * MiB) });
    await store.holding;
    const upload = item(page, 'doomed.bin');
    await page.locator('li.upload[data-state="uploading"] progress:not([value="0"])').waitFor();
    const id = (await upload.getAttribute('data-upload-id')) as string;

    await upload.getByRole('button', { name: 'Cancel upload of doomed.bin' }).click();
    await page.locator('li.upload[data-state="cancelling"]').waitFor();
    store.open();
    await page.locator('li.upload[data-state="cancelled"]').waitFor();
    expect((await hub.hub.status(ANONYMOUS, id)).state).toBe('cancelled');
    expect(existsSync(storedPath(hub, id))).toBe(false);
    expect(Number(await upload.locator('progress').getAttribute('value'))).toBeLessThan(50);
    expect(await upload.locator('button.cancel').isDisabled()).toBe(true);
    expect(await upload.getByRole('button', { name: 'Retry upload of doomed.bin' }).isVisible()).toBe(true);
    await upload.locator('.alerts', { hasText: 'Cancelled' }).waitFor();
    // A cancelled file is out of the bar for all files.
    expect(await page.locator('#total-summary').textContent()).toBe('1 cancelled');
  });

  it('cancel mid-processing: the stage is stopped and the upload ends cancelled in that stage', async () => {
    const held = gateStage('hold');
    const hub = await startHub({ pipeline: [held.stage] });
    onCleanup(() => held.release());
    const page = await openPage(`${hub.url}/`);
    await page.setInputFiles('#files', { name: 'stop-in-stage.bin', mimeType: 'application/octet-stream', buffer: randomBytes(MiB) });
    const started = await held.started;
    const upload = item(page, 'stop-in-stage.bin');
    await page.locator('li.upload[data-state="processing"]').waitFor();
    expect(await upload.getAttribute('data-upload-id')).toBe(started.id);
    // Processing does not pause.
    expect(await upload.getByRole('button', { name: 'Pause upload of stop-in-stage.bin' }).isVisible()).toBe(false);

    await upload.getByRole('button', { name: 'Cancel upload of stop-in-stage.bin' }).click();
    await page.locator('li.upload[data-state="cancelled"]').waitFor();
    expect(await hub.hub.status(ANONYMOUS, started.id)).toMatchObject({ state: 'cancelled', stage: 'hold' });
    expect(existsSync(storedPath(hub, started.id))).toBe(false);
    expect(await upload.locator('.facts .stage').textContent()).toBe('hold');
    await upload.locator('.alerts', { hasText: 'Cancelled during stage hold' }).waitFor();
    expect(Number(await upload.locator('progress').getAttribute('value'))).toBeGreaterThanOrEqual(50);
    expect(Number(await upload.locator('progress').getAttribute('value'))).toBeLessThan(100);
  });

  it('retry after a failure: the same item starts over as a new upload and completes; warnings and errors stay in sight, the full log on demand', async () => {
    let attempts = 0;
    const flaky: Stage = {
      name: 'flaky',
      async run(ctx) {
        attempts += 1;
        for (let i = 0; i < 6; i++) ctx.log('info', `flaky step ${i}`);
        ctx.log('warn', `flaky attempt ${attempts}`);
        if (attempts === 1) throw new Error('failing on purpose');
        const hash = createHash('sha256');
        for await (const piece of ctx.createReadStream()) hash.update(piece as Buffer);
        return { attempts, sha256: hash.digest('hex') };
      },
    };
    const hub = await startHub({ pipeline: [flaky] });
    const page = await openPage(`${hub.url}/`);
    const bytes = randomBytes(2 * MiB + 9);
    await page.setInputFiles('#files', { name: 'flaky.bin', mimeType: 'application/octet-stream', buffer: bytes });
    const upload = item(page, 'flaky.bin');
    await page.locator('li.upload[data-state="failed"]').waitFor();
    const firstId = (await upload.getAttribute('data-upload-id')) as string;
    expect((await hub.hub.status(ANONYMOUS, firstId)).state).toBe('failed');
    await upload.locator('.result .error code', { hasText: 'ERR_STAGE_FAILED' }).waitFor();
    // The warning and the error are pinned above the log, however many lines follow.
    await upload.locator('.alerts li.level-warn', { hasText: 'flaky attempt 1' }).waitFor();
    await upload.locator('.alerts li.level-error', { hasText: 'ERR_STAGE_FAILED' }).waitFor();
    expect(await page.locator('#total-summary').textContent()).toBe('1 failed');

    // The log box shows its tail; the whole log is one button away.
    const toggle = upload.locator('button.log-toggle');
    expect(await toggle.textContent()).toMatch(/^Full log \(\d+ lines\)$/);
    expect(await toggle.getAttribute('aria-expanded')).toBe('false');
    const compact = await upload.locator('ol.log').evaluate((list) => list.clientHeight);
    await toggle.focus();
    await page.keyboard.press('Enter');
    expect(await toggle.getAttribute('aria-expanded')).toBe('true');
    expect(await upload.locator('ol.log').evaluate((list) => list.clientHeight)).toBeGreaterThan(compact);

    await upload.getByRole('button', { name: 'Retry upload of flaky.bin' }).click();
    await page.locator('li.upload[data-state="completed"]').waitFor();
    expect(await page.locator('li.upload').count()).toBe(1);
    const secondId = (await upload.getAttribute('data-upload-id')) as string;
    expect(secondId).not.toBe(firstId);
    expect(attempts).toBe(2);
    expect(await sha256File(storedPath(hub, secondId))).toBe(sha256Of(bytes));
    expect(await upload.locator('.result-summary li').textContent()).toBe(`flaky: attempts 2, sha256 ${sha256Of(bytes).slice(0, 12)}…`);
    expect(await upload.locator('.alerts li.level-error').count()).toBe(0);
    await upload.locator('.alerts li.level-warn', { hasText: 'flaky attempt 2' }).waitFor();
    await upload.locator('.log', { hasText: 'Retrying as a new upload' }).waitFor();
    expect(await upload.getByRole('button', { name: 'Retry upload of flaky.bin' }).isVisible()).toBe(false);
    expect(await page.locator('#total-summary').textContent()).toBe('1 completed');
  });
});
