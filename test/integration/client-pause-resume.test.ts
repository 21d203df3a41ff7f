/**
 * pause() / resume() on a handle and client.resumeUpload(), over every socket transport, with
 * the hub's committed bytes as the proof: nothing is committed while paused (however long the
 * pause, past the hub's idle timeout too), resume continues from the committed offset, and a
 * second client continues another's upload sending only what the hub lacks.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ChunkSource } from '../../client/sources.js';
import type { UploadHandle } from '../../client/UploadClient.js';
import { sha256File, sha256Of, startClient, startHub, waitFor, storedPath } from '../helpers.js';
import { TRANSPORT_NAMES } from '../protocolHelpers.js';

const MiB = 1024 * 1024;
const ANONYMOUS = { id: 'anonymous' };

/**
 * A source whose reads at or past `gateAt` wait until released, so a test can stop an upload at
 * a known offset; every read is recorded.
 */
function gatedSource(bytes: Buffer, gateAt: number, name = 'gated.bin') {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reachedGate: () => void = () => {};
  const reached = new Promise<void>((resolve) => (reachedGate = resolve));
  const reads: Array<{ offset: number; length: number }> = [];
  const source: ChunkSource = {
    size: bytes.byteLength,
    name,
    async read(offset, length) {
      if (offset + length > gateAt) {
        reachedGate();
        await gate;
      }
      reads.push({ offset, length });
      return bytes.subarray(offset, offset + length);
    },
  };
  return { source, release, reached, reads, readBytes: () => reads.reduce((sum, read) => sum + read.length, 0) };
}

/** A few round trips through the hub: moments in which a sending client would have sent. */
async function roundTrips(client: { ping(): Promise<number> }, count = 5): Promise<void> {
  for (let i = 0; i < count; i++) await client.ping();
}

function paused(handle: UploadHandle): Promise<void> {
  return waitFor<void>((fn) => handle.on('paused', fn));
}

describe.each(TRANSPORT_NAMES)('pause and resume over %s', (transport) => {
  it('commits nothing while paused, past the idle timeout too, and resumes from the committed offset to a byte-identical file', async () => {
    const hub = await startHub({ options: { idleTimeoutMs: 300 } });
    const client = startClient({ url: hub.url, transport });
    const bytes = randomBytes(8 * MiB);
    const gated = gatedSource(bytes, 3 * MiB);
    const handle = client.upload(gated.source, { chunkSize: 256 * 1024 });
    const events: string[] = [];
    handle.on('paused', () => events.push('paused'));
    handle.on('resumed', () => events.push('resumed'));
    await gated.reached;
    const id = handle.id as string;

    handle.pause();
    expect(handle.paused).toBe(true);
    const whenPaused = paused(handle);
    // The read waiting at the gate completes, but what it read is not sent.
    gated.release();
    await whenPaused;
    const committed = (await hub.hub.status(ANONYMOUS, id)).bytes;
    expect(committed).toBe(3 * MiB);
    const readsAtPause = gated.reads.length;
    await roundTrips(client);
    expect((await hub.hub.status(ANONYMOUS, id)).bytes).toBe(committed);
    // The hub lets go of the idle upload (its idle timeout), which leaves it resumable, not failed.
    await expect.poll(async () => (await hub.hub.status(ANONYMOUS, id)).attached, { timeout: 10_000 }).toBe(false);
    await roundTrips(client);
    expect(await hub.hub.status(ANONYMOUS, id)).toMatchObject({ bytes: committed, state: 'uploading' });
    expect(handle.paused).toBe(true);

    const attachedAt = waitFor<number>((fn) => handle.on('attached', fn));
    handle.resume();
    handle.resume(); // idempotent
    expect(handle.paused).toBe(false);
    expect(await attachedAt).toBe(committed);
    const result = await handle.done;
    // Sending went on from the committed offset: the first read after the pause starts there.
    expect(gated.reads[readsAtPause]?.offset).toBe(committed);
    expect(result.sha256).toBe(sha256Of(bytes));
    expect(await sha256File(storedPath(hub, id))).toBe(sha256Of(bytes));
    expect(events).toEqual(['paused', 'resumed']);
    expect(handle.paused).toBe(false);
  });

  it('pause before the upload reaches the hub sends nothing until resume; cancel while paused cancels on the hub', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport });
    const bytes = randomBytes(2 * MiB);
    const first = client.upload(bytes, { name: 'later.bin' });
    first.pause();
    await paused(first);
    await roundTrips(client);
    expect(first.id).toBeUndefined();
    expect(await hub.hub.list(ANONYMOUS)).toHaveLength(0);
    first.resume();
    expect((await first.done).sha256).toBe(sha256Of(bytes));

    const gated = gatedSource(randomBytes(4 * MiB), 1 * MiB);
    const second = client.upload(gated.source, { chunkSize: 256 * 1024 });
    await gated.reached;
    second.pause();
    gated.release();
    await paused(second);
    await second.cancel();
    await expect(second.done).rejects.toMatchObject({ code: 'ERR_CANCELLED' });
    expect((await hub.hub.status(ANONYMOUS, second.id as string)).state).toBe('cancelled');
  });

  it('resumeUpload from a second client sends only what the hub lacks and stores a byte-identical file', async () => {
    const hub = await startHub();
    const bytes = randomBytes(6 * MiB);
    const first = startClient({ url: hub.url, transport });
    const gated = gatedSource(bytes, 2 * MiB + 128 * 1024);
    const handle = first.upload(gated.source, { chunkSize: 128 * 1024 });
    await gated.reached;
    const id = handle.id as string;
    // Wait until the hub has every byte below the gate, then kill the first client.
    await expect.poll(async () => (await hub.hub.status(ANONYMOUS, id)).bytes, { timeout: 10_000 }).toBe(2 * MiB + 128 * 1024);
    first.close();
    await expect(handle.done).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    const offsetBefore = (await hub.hub.status(ANONYMOUS, id)).bytes;

    const second = startClient({ url: hub.url, transport });
    const again = gatedSource(bytes, Number.POSITIVE_INFINITY);
    const resumed = second.resumeUpload(id, again.source);
    expect(resumed.id).toBe(id);
    const attachedAt = waitFor<number>((fn) => resumed.on('attached', fn));
    const result = await resumed.done;
    expect(await attachedAt).toBe(offsetBefore);
    expect(result).toMatchObject({ id, size: bytes.byteLength, name: 'gated.bin' });
    // The second client sent exactly what the hub lacked, which is less than the file.
    expect(again.readBytes()).toBe(bytes.byteLength - offsetBefore);
    expect(again.readBytes()).toBeLessThan(bytes.byteLength);
    expect(Math.min(...again.reads.map((read) => read.offset))).toBe(offsetBefore);
    expect(await hub.hub.status(ANONYMOUS, id)).toMatchObject({ state: 'completed', bytes: bytes.byteLength });
    expect(await sha256File(storedPath(hub, id))).toBe(sha256Of(bytes));
  });

  it('resumeUpload rejects with the code when it cannot: unknown id, finished upload, another size (before any byte)', async () => {
    const hub = await startHub();
    const client = startClient({ url: hub.url, transport });
    const unknown = gatedSource(randomBytes(1000), Number.POSITIVE_INFINITY);
    await expect(client.resumeUpload('NoSuchUpload123', unknown.source).done).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });

    const finished = await client.upload(randomBytes(1000), { name: 'done.bin' }).done;
    const again = gatedSource(randomBytes(1000), Number.POSITIVE_INFINITY);
    await expect(client.resumeUpload(finished.id, again.source).done).rejects.toMatchObject({ code: 'ERR_UPLOAD_STATE' });
    expect(again.reads).toHaveLength(0);

    const gated = gatedSource(randomBytes(2 * MiB), 1 * MiB);
    const partial = client.upload(gated.source, { chunkSize: 256 * 1024 });
    await gated.reached;
    partial.pause();
    gated.release();
    await paused(partial);
    const id = partial.id as string;
    const committed = (await hub.hub.status(ANONYMOUS, id)).bytes;
    const other = startClient({ url: hub.url, transport });
    const wrong = gatedSource(randomBytes(2 * MiB + 1), Number.POSITIVE_INFINITY);
    await expect(other.resumeUpload(id, wrong.source).done).rejects.toMatchObject({ code: 'ERR_SIZE_MISMATCH' });
    expect(wrong.reads).toHaveLength(0);
    expect(await hub.hub.status(ANONYMOUS, id)).toMatchObject({ bytes: committed, state: 'uploading' });
  });
});
