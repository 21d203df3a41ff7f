/**
 * Chunk errors reveal nothing of uploads the connection may not see, and /metrics stays true
 * (buffered bytes never negative) across cancels, failures and completions.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Authenticate } from '../../server/core/auth.js';
import type { UploadProgress } from '../../client/UploadClient.js';
import { startClient, startHub, waitFor } from '../helpers.js';
import { gatedStream, openConnection, TRANSPORT_NAMES } from '../protocolHelpers.js';

const MiB = 1024 * 1024;
const authenticate: Authenticate = (token) => (token === 'alice' || token === 'bob' ? { id: token } : null);

describe.each(TRANSPORT_NAMES)('chunk errors reveal nothing (%s)', (transport) => {
  it("a chunk for another principal's upload is answered ERR_NOT_FOUND exactly as for an unknown id", async () => {
    const hub = await startHub({ authenticate });
    const alice = await openConnection(transport, hub.url, 'alice');
    const attached = await alice.connection.request({ type: 'create', name: 'secret.bin', size: 4 * MiB });
    const id = attached.upload.id;
    await alice.connection.sendChunk(id, 0, randomBytes(64 * 1024));

    const bob = await openConnection(transport, hub.url, 'bob');
    const unknownId = 'AAAAAAAAAAAAAAAAAAAAAA';
    const [forOther, forUnknown] = await Promise.all([
      bob.connection.sendChunk(id, 64 * 1024, randomBytes(1024)),
      bob.connection.sendChunk(unknownId, 64 * 1024, randomBytes(1024)),
    ]);
    expect(forOther).toEqual({ type: 'error', code: 'ERR_NOT_FOUND', message: `No upload ${id}`, uploadId: id, chunkOffset: 64 * 1024 });
    expect(forUnknown).toEqual({ type: 'error', code: 'ERR_NOT_FOUND', message: `No upload ${unknownId}`, uploadId: unknownId, chunkOffset: 64 * 1024 });
    // Nothing was written on bob's behalf.
    expect((await hub.hub.status({ id: 'alice' }, id)).bytes).toBe(64 * 1024);
  });
});

function gauge(metrics: string, name: string): number {
  const match = new RegExp(`^${name} (-?[\\d.e+]+)$`, 'm').exec(metrics);
  if (!match) throw new Error(`${name} missing from /metrics`);
  return Number(match[1]);
}

describe('metrics stay true', () => {
  it('upload_hub_buffered_bytes is never negative and returns to 0 after cancels, failures and completions', async () => {
    const hub = await startHub({ options: { maxFileSize: 64 * MiB } });
    const client = startClient({ url: hub.url, transport: 'ws' });
    const readings: number[] = [];
    const read = async (): Promise<void> => {
      readings.push(gauge(await (await fetch(`${hub.url}/metrics`)).text(), 'upload_hub_buffered_bytes'));
    };

    // Cancels mid-upload, while writes are under way.
    for (let i = 0; i < 5; i++) {
      const upload = client.upload(randomBytes(32 * MiB), { name: `cancelled-${i}.bin` });
      const done = upload.done.catch((e: unknown) => e);
      await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 2 * MiB);
      await upload.cancel();
      expect(await done).toMatchObject({ code: 'ERR_CANCELLED' });
      await read();
    }
    // A failure: the declared sha256 does not match.
    const mismatch = await client.upload(randomBytes(4 * MiB), { name: 'bad.bin', sha256: '0'.repeat(64) }).done.catch((e: unknown) => e);
    expect(mismatch).toMatchObject({ code: 'ERR_CHECKSUM_MISMATCH' });
    await read();
    // An upload whose client goes away part way (it stays resumable), then completions.
    const bytes = randomBytes(4 * MiB);
    const gated = gatedStream(bytes, 1 * MiB);
    const abandoned = client.upload(gated.stream, { size: bytes.byteLength, name: 'abandoned.bin' });
    abandoned.done.catch(() => undefined);
    await waitFor<UploadProgress>((fn) => abandoned.on('progress', fn), (p) => p.bytes >= 1 * MiB);
    await read();
    for (let i = 0; i < 3; i++) await client.upload(randomBytes(8 * MiB), { name: `ok-${i}.bin` }).done;
    await read();

    expect(readings.every((value) => value >= 0)).toBe(true);
    expect(readings.at(-1)).toBe(0);
  });
});
