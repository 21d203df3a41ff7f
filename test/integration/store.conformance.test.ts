/**
 * The contract every UploadStore keeps, run against each store. A new store (Redis state with
 * shared-directory bytes, say) joins the `stores` table and must pass unchanged.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiskStore } from '../../server/store/DiskStore.js';
import type { UploadRecord, UploadStore } from '../../server/store/UploadStore.js';
import { tempDir } from '../helpers.js';

const UNSAFE_IDS = ['../../etc/passwd', 'a/b', '', 'x'.repeat(65)];

const stores: Array<[string, () => Promise<UploadStore>]> = [['DiskStore', async () => new DiskStore(await tempDir())]];

function record(id: string, overrides: Partial<UploadRecord> = {}): UploadRecord {
  return { id, name: 'a.bin', size: 10, mimeType: 'application/octet-stream', metadata: {}, owner: 'me', state: 'created', createdAt: 1, updatedAt: 1, ...overrides };
}

async function readAll(store: UploadStore, id: string, range?: { start?: number; end?: number }): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of store.createReadStream(id, range)) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

describe.each(stores)('%s', (_name, makeStore) => {
  it('returns saved records from init, the last save winning', async () => {
    const store = await makeStore();
    expect(await store.init()).toEqual([]);
    void store.save(record('upload-0001', { state: 'created' }));
    void store.save(record('upload-0001', { state: 'uploading' }));
    await store.save(record('upload-0002'));
    await store.flush();
    const again = await store.init();
    expect(again.map((r) => [r.id, r.state]).sort()).toEqual([['upload-0001', 'uploading'], ['upload-0002', 'created']]);
  });

  it('writes at positions, truncates past the offset on reopen, and reads ranges', async () => {
    const store = await makeStore();
    await store.init();
    const writer = await store.openWriter('upload-0003', 0);
    expect(await writer.write([Buffer.from('hello '), Buffer.from('world')], 0)).toBe(11);
    await writer.close();
    expect((await store.stat('upload-0003')).bytes).toBe(11);
    const resumed = await store.openWriter('upload-0003', 5);
    await resumed.write([Buffer.from('!')], 5);
    await resumed.close();
    expect((await readAll(store, 'upload-0003')).toString()).toBe('hello!');
    expect((await readAll(store, 'upload-0003', { start: 1, end: 3 })).toString()).toBe('el');
  });

  it('removes data and outputs but keeps the record with removeData; everything with remove', async () => {
    const store = await makeStore();
    await store.init();
    await store.save(record('upload-0004'));
    await (await store.openWriter('upload-0004', 0)).close();
    const outputs = await store.outputDir('upload-0004');
    expect(existsSync(outputs)).toBe(true);
    await store.removeData('upload-0004');
    expect(existsSync(outputs)).toBe(false);
    expect((await store.stat('upload-0004')).bytes).toBe(0);
    expect((await store.init()).map((r) => r.id)).toEqual(['upload-0004']);
    await store.remove('upload-0004');
    expect(await store.init()).toEqual([]);
    await store.flush();
  });

  it('refuses ids that could escape its directory', async () => {
    const store = await makeStore();
    await store.init();
    for (const id of UNSAFE_IDS) {
      await expect(store.save(record(id))).rejects.toThrow();
      // Every way to the bytes refuses it too (the core reaches bytes only through these).
      await expect(store.openWriter(id, 0)).rejects.toThrow();
      await expect(store.stat(id)).rejects.toThrow();
      await expect(readAll(store, id)).rejects.toThrow();
      await expect(store.outputDir(id)).rejects.toThrow();
    }
  });
});

describe('DiskStore specifics', () => {
  it('keeps the bytes in dataPath(id), gone after removeData, and builds no path from an unsafe id', async () => {
    const store = new DiskStore(await tempDir());
    await store.init();
    await store.save(record('upload-0006'));
    await (await store.openWriter('upload-0006', 0)).close();
    expect(existsSync(store.dataPath('upload-0006'))).toBe(true);
    await store.removeData('upload-0006');
    expect(existsSync(store.dataPath('upload-0006'))).toBe(false);
    await store.flush();
    for (const id of UNSAFE_IDS) expect(() => store.dataPath(id)).toThrow();
  });

  it('leaves no temp record files and empties its trash on start', async () => {
    const dir = await tempDir();
    const store = new DiskStore(dir);
    await store.init();
    await store.save(record('upload-0005'));
    await (await store.openWriter('upload-0005', 0)).close();
    await store.removeData('upload-0005');
    await store.flush();
    // The data directory's lock passes to the next store only once this one is closed.
    await store.close();
    await new DiskStore(dir).init();
    expect(await readdir(join(dir, 'trash'))).toEqual([]);
    expect((await readdir(join(dir, 'uploads'))).filter((name) => name.includes('.tmp-'))).toEqual([]);
  });
});
