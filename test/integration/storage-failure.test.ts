/**
 * Storage failures fail one upload, never the hub: a real full disk (a small tmpfs as the data
 * directory), an injected EIO, and record saves that fail for a while. Terminal states are
 * published only once their record is on disk.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EventEmitter, once } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { HubEvent, UploadStatus } from '../../shared/messages.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import { DiskStore } from '../../server/store/DiskStore.js';
import type { ByteWriter, UploadRecord } from '../../server/store/UploadStore.js';
import { mountTmpfs, sha256Of, startClient, startHub, tempDir } from '../helpers.js';
import { gatedStream } from '../protocolHelpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** Every event of the hub, in order, from now on. */
function record(hub: { events: { subscribe: (s: { deliver: (e: HubEvent) => void }) => { setAll(all: boolean): void; close(): void } } }): HubEvent[] {
  const seen: HubEvent[] = [];
  const subscription = hub.events.subscribe({ deliver: (event) => seen.push(event) });
  subscription.setAll(true);
  return seen;
}

async function dataFiles(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, 'uploads'))).filter((name) => name.endsWith('.data'));
}

/** A disk store whose writers fail with `code` once `failAfter` bytes of an upload are written. */
class FaultyWriteStore extends DiskStore {
  failAfter: number | undefined;
  constructor(dataDir: string, private readonly code: string) {
    super(dataDir);
  }

  override async openWriter(id: string, offset: number): Promise<ByteWriter> {
    const writer = await super.openWriter(id, offset);
    return {
      write: async (chunks, position) => {
        if (this.failAfter !== undefined && position >= this.failAfter) throw errno(this.code);
        return writer.write(chunks, position);
      },
      close: () => writer.close(),
    };
  }
}

/** A disk store whose record saves fail with ENOSPC while `failing`; tells each failure. */
class FlakySaveStore extends DiskStore {
  failing = false;
  readonly failures = new EventEmitter();
  override save(record: UploadRecord): Promise<void> {
    if (this.failing) {
      this.failures.emit('failed', record.state);
      return Promise.reject(errno('ENOSPC'));
    }
    return super.save(record);
  }
}

describe('storage errors fail one upload, never the hub', () => {
  it('a full disk (real tmpfs) fails the upload with ERR_STORAGE_FULL, removes its bytes, saves and publishes it; new uploads work again', async () => {
    const dataDir = await mountTmpfs(8 * MiB);
    if (dataDir === undefined) return;
    const hub = await startHub({ options: { dataDir, minFreeDiskBytes: 0 } });
    const events = record(hub.hub);
    const client = startClient({ url: hub.url, transport: 'ws' });

    // A file that cannot fit is refused at create (minFreeDiskBytes); this one fits when it is
    // created, and then something else fills the disk before its bytes arrive.
    const filler = join(dataDir, 'filler');
    const untap = hub.hub.events.tap((event) => {
      if (event.type !== 'created') return;
      untap();
      writeFileSync(filler, Buffer.alloc(6 * MiB));
    });
    const tooBig = randomBytes(4 * MiB);
    const error = await client.upload(tooBig, { name: 'too-big.bin' }).done.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_STORAGE_FULL' });
    const [failed] = await hub.hub.list(ANONYMOUS);
    expect(failed).toMatchObject({ state: 'failed', error: { code: 'ERR_STORAGE_FULL' } });
    expect(events.filter((event) => event.type === 'failed')).toMatchObject([{ uploadId: failed?.id, error: { code: 'ERR_STORAGE_FULL' } }]);
    expect(await dataFiles(dataDir)).toEqual([]);

    // The space is back: the next uploads complete, byte for byte.
    await rm(filler);
    await hub.hub.store.flush();
    for (const size of [3 * MiB, 3 * MiB]) {
      const bytes = randomBytes(size);
      const result = await client.upload(bytes, { name: 'fits.bin' }).done;
      expect(result.sha256).toBe(sha256Of(bytes));
      await hub.hub.cancel(ANONYMOUS, result.id).catch(() => undefined);
      await hub.hub.store.remove(result.id);
    }

    // The failure was saved: a restarted hub still reports it.
    const failedId = failed?.id as string;
    await hub.close();
    const again = await startHub({ options: { dataDir } });
    expect(await again.hub.status(ANONYMOUS, failedId)).toMatchObject({ state: 'failed', error: { code: 'ERR_STORAGE_FULL' } });
  });

  it('an I/O error (EIO) fails that upload with ERR_STORAGE and removes its bytes; the hub serves the next one', async () => {
    const dataDir = await tempDir();
    const store = new FaultyWriteStore(dataDir, 'EIO');
    store.failAfter = 1 * MiB;
    const hub = await startHub({ options: { dataDir }, store });
    const events = record(hub.hub);
    const client = startClient({ url: hub.url, transport: 'ws' });

    const error = await client.upload(randomBytes(4 * MiB), { name: 'eio.bin' }).done.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_STORAGE' });
    expect(events.filter((event) => event.type === 'failed')).toMatchObject([{ error: { code: 'ERR_STORAGE' } }]);
    expect(await dataFiles(dataDir)).toEqual([]);

    store.failAfter = undefined;
    const bytes = randomBytes(2 * MiB);
    expect((await client.upload(bytes, { name: 'ok.bin' }).done).sha256).toBe(sha256Of(bytes));
  });

  it('a record save that fails leaves no temp file behind (real full tmpfs)', async () => {
    const dataDir = await mountTmpfs(1 * MiB);
    if (dataDir === undefined) return;
    const store = new DiskStore(dataDir);
    await store.init();
    // Fill the disk to the last block.
    await writeFile(join(dataDir, 'filler'), Buffer.alloc(1 * MiB)).catch(() => undefined);
    const now = Date.now();
    const big: UploadRecord = {
      id: 'upload-full-0001', name: 'x', size: 1, mimeType: 'application/octet-stream', metadata: { pad: 'x'.repeat(64 * KiB) },
      owner: 'anonymous', state: 'created', createdAt: now, updatedAt: now,
    };
    await expect(store.save(big)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(await readdir(join(dataDir, 'uploads'))).toEqual([]);
  });
});

describe('terminal states are durable before they are announced', () => {
  it('a cancel while record saves fail is retried, reported (/healthz, /metrics) and published only once saved; a restart keeps it cancelled', async () => {
    const dataDir = await tempDir();
    const store = new FlakySaveStore(dataDir);
    const hub = await startHub({ options: { dataDir }, store });
    const events = record(hub.hub);
    /** What the record on disk said when `cancelled` was published. */
    let storedWhenPublished: string | undefined;
    const subscription = hub.hub.events.subscribe({
      deliver: (event) => {
        if (event.type !== 'cancelled') return;
        storedWhenPublished = (JSON.parse(readFileSync(join(dataDir, 'uploads', `${event.uploadId}.json`), 'utf8')) as UploadRecord).state;
      },
    });
    subscription.setAll(true);

    const client = startClient({ url: hub.url, transport: 'ws' });
    const bytes = randomBytes(4 * MiB);
    const gated = gatedStream(bytes, 1 * MiB);
    const upload = client.upload(gated.stream, { size: bytes.byteLength, name: 'held.bin' });
    const done = upload.done.catch((e: unknown) => e);
    const id = await new Promise<string>((resolve) => upload.on('progress', () => upload.id && resolve(upload.id)));

    store.failing = true;
    const firstFailure = once(store.failures, 'failed');
    const cancelled = fetch(`${hub.url}/api/uploads/${id}`, { method: 'DELETE' });
    await firstFailure;

    const health = await fetch(`${hub.url}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'degraded', storage: { status: 'degraded', failingRecords: 1, lastError: { code: 'ERR_STORAGE_FULL' } } });
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    expect(metrics).toMatch(/^upload_hub_storage_degraded 1$/m);
    expect(Number(/^upload_hub_record_save_failures_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    // Not announced while it is not on disk.
    expect(events.some((event) => event.type === 'cancelled')).toBe(false);

    store.failing = false;
    const answer = await cancelled;
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as UploadStatus).state).toBe('cancelled');
    expect(storedWhenPublished).toBe('cancelled');
    expect(await done).toMatchObject({ code: 'ERR_CANCELLED' });
    const healed = await fetch(`${hub.url}/healthz`);
    expect(healed.status).toBe(200);
    expect(await healed.json()).toMatchObject({ status: 'ok' });
    subscription.close();

    await hub.close();
    const again = await startHub({ options: { dataDir } });
    expect((await again.hub.status(ANONYMOUS, id)).state).toBe('cancelled');
  });
});
