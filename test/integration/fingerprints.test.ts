/**
 * The Node fingerprint store (a JSON file) driving resumes: a client killed part way leaves its
 * upload remembered, and the same file sent again by a new client with the same store file
 * continues that upload from the hub's offset; entries go once their upload has ended; a stale
 * entry leads to a new upload; a corrupt or missing store file is tolerated.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileFingerprints, fingerprintOf } from '../../client/node.js';
import { randomFile, sha256File, startClient, startHub, tempDir, waitFor, storedPath } from '../helpers.js';
import { TRANSPORT_NAMES } from '../protocolHelpers.js';
import { startThrottledProxy } from '../proxy.js';

const MiB = 1024 * 1024;
const ANONYMOUS = { id: 'anonymous' };

describe.each(TRANSPORT_NAMES)('fingerprint file store over %s', (transport) => {
  it('a client closed part way leaves the upload remembered; the same file sent again resumes it from the hub offset', async () => {
    const hub = await startHub();
    // A slow link, so the first client is still sending when it is closed.
    const link = await startThrottledProxy(hub.url, 4 * MiB);
    const dir = await tempDir();
    const storePath = join(dir, 'state', 'fingerprints.json');
    const file = await randomFile(6 * MiB, dir);

    const first = startClient({ url: link.url, transport, fingerprints: fileFingerprints(storePath) });
    const handle = first.upload(file.path, { chunkSize: 128 * 1024 });
    const id = await waitFor<string>((fn) => handle.on('created', fn));
    await expect.poll(async () => (await hub.hub.status(ANONYMOUS, id)).bytes, { timeout: 20_000 }).toBeGreaterThanOrEqual(1 * MiB);
    first.close();
    await expect(handle.done).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    // Closed here, not ended on the hub: the entry stays.
    expect(await fileFingerprints(storePath).list()).toMatchObject([{ uploadId: id, name: 'random-6291456.bin', size: file.size, url: `${link.url}/` }]);
    await expect.poll(async () => (await hub.hub.status(ANONYMOUS, id)).attached, { timeout: 10_000 }).toBe(false);
    const offset = (await hub.hub.status(ANONYMOUS, id)).bytes;
    expect(offset).toBeLessThan(file.size);

    const second = startClient({ url: link.url, transport, fingerprints: fileFingerprints(storePath) });
    const again = second.upload(file.path);
    const attachedAt = waitFor<number>((fn) => again.on('attached', fn));
    const result = await again.done;
    expect(result.id).toBe(id);
    expect(await attachedAt).toBe(offset);
    expect(await hub.hub.list(ANONYMOUS)).toHaveLength(1);
    expect(await sha256File(storedPath(hub, id))).toBe(file.sha256);
    // Completed: forgotten (done settles after the store has written it).
    expect(await fileFingerprints(storePath).list()).toEqual([]);
  });
});

describe('fingerprint file store', () => {
  it('a stale entry (unknown to the hub, or of an ended upload) is removed and a new upload created', async () => {
    const hub = await startHub();
    const dir = await tempDir();
    const storePath = join(dir, 'fingerprints.json');
    const file = await randomFile(300 * 1024, dir);
    const fingerprint = await fingerprintOf(file.path);
    const store = fileFingerprints(storePath);
    const client = startClient({ url: hub.url, fingerprints: store });

    await store.set({ fingerprint, uploadId: 'NoSuchUpload123', name: 'x', size: file.size, url: new URL(hub.url).href, createdAt: Date.now() });
    const fresh = await client.upload(file.path).done;
    expect(fresh.id).not.toBe('NoSuchUpload123');
    expect(await store.list()).toEqual([]);

    // An entry naming an upload that completed (a client that died before forgetting it).
    await store.set({ fingerprint, uploadId: fresh.id, name: 'x', size: file.size, url: new URL(hub.url).href, createdAt: Date.now() });
    const third = client.upload(file.path);
    const seen = waitFor<number>((fn) => third.on('attached', fn));
    const result = await third.done;
    expect(result.id).not.toBe(fresh.id);
    expect(await seen).toBe(0);
    expect(await hub.hub.status(ANONYMOUS, result.id)).toMatchObject({ state: 'completed', bytes: file.size });
    expect(await sha256File(storedPath(hub, result.id))).toBe(file.sha256);
    expect(await store.list()).toEqual([]);

    // An upload the hub could resume: resume: false does not look it up, the default does.
    const waiting = await hub.hub.create(ANONYMOUS, { name: 'waiting.bin', size: file.size });
    const entry = { fingerprint, uploadId: waiting.id, name: 'waiting.bin', size: file.size, url: new URL(hub.url).href, createdAt: Date.now() };
    await store.set(entry);
    const anew = await client.upload(file.path, { resume: false }).done;
    expect(anew.id).not.toBe(waiting.id);
    await store.set(entry);
    const continued = await client.upload(file.path).done;
    expect(continued.id).toBe(waiting.id);
    expect(continued.name).toBe('waiting.bin');
    expect(await store.list()).toEqual([]);
  });

  it('tolerates a corrupt store file, an entry that is not one, and a missing one', async () => {
    const hub = await startHub();
    const dir = await tempDir();
    const file = await randomFile(200 * 1024, dir);
    const corruptPath = join(dir, 'corrupt.json');
    await writeFile(corruptPath, '{"version":1,"entries":[{"fingerprint":');
    const client = startClient({ url: hub.url, fingerprints: fileFingerprints(corruptPath) });
    const first = await client.upload(file.path).done;
    expect(await sha256File(storedPath(hub, first.id))).toBe(file.sha256);
    // Rewritten whole by the store: valid JSON again, and empty since the upload completed.
    expect(JSON.parse(await readFile(corruptPath, 'utf8'))).toEqual({ version: 1, entries: [] });

    const oddPath = join(dir, 'odd.json');
    await writeFile(oddPath, JSON.stringify({ version: 1, entries: [42, { fingerprint: 'f' }, null] }));
    expect(await fileFingerprints(oddPath).list()).toEqual([]);
    await writeFile(oddPath, JSON.stringify(['not', 'a', 'store']));
    expect(await fileFingerprints(oddPath).get('anything')).toBeUndefined();

    const missing = fileFingerprints(join(dir, 'no', 'such', 'dir', 'fingerprints.json'));
    expect(await missing.list()).toEqual([]);
    await missing.remove('nothing');
    const other = startClient({ url: hub.url, fingerprints: missing });
    const second = await other.upload(file.path, { name: 'again.bin' }).done;
    expect(second.name).toBe('again.bin');
  });
});
