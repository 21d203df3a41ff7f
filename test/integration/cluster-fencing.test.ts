/**
 * Two nodes racing for one upload (real Redis, one shared data directory, two hub nodes in this
 * process): exactly one gets the lease, the upload's bytes end byte-identical, and once the
 * other node holds it, every write of the former holder — a record save, an offset commit, a
 * byte write through its already-open file — carries a stale fencing token and is refused with
 * ERR_LEASE_LOST.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { UploadHubError } from '../../shared/errors.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Lease } from '../../server/core/Registry.js';
import { redisUrl, requireRedis, testPrefix, TEST_LEASE_TTL_MS } from '../cluster.js';
import { recordingWriter, sha256Of, startHub, storedPath, tempDir } from '../helpers.js';

const KiB = 1024;

async function twoNodes(): Promise<[Awaited<ReturnType<typeof startHub>>, Awaited<ReturnType<typeof startHub>>]> {
  const dataDir = await tempDir();
  const prefix = testPrefix();
  const options = { redisUrl: redisUrl(), redisPrefix: prefix, dataDir, leaseTtlMs: TEST_LEASE_TTL_MS };
  return Promise.all([startHub({ options: { ...options, nodeId: 'node-a' } }), startHub({ options: { ...options, nodeId: 'node-b' } })]);
}

async function refusedCode(work: Promise<unknown>): Promise<string | undefined> {
  try {
    await work;
    return undefined;
  } catch (error) {
    return (error as UploadHubError).code;
  }
}

describe('cluster: two nodes racing for one upload', () => {
  it('exactly one node gets the lease; the loser, once it is taken over, cannot save, commit or write with its stale token', async (ctx) => {
    await requireRedis(ctx);
    const [a, b] = await twoNodes();
    const bytes = randomBytes(256 * KiB);
    const created = await a.hub.create(ANONYMOUS, { name: 'race.bin', size: bytes.byteLength });
    // The creating node holds the upload; it lets go once its writer leaves.
    const first = recordingWriter();
    await a.hub.attach(ANONYMOUS, created.id, first);
    const firstHalf = await a.hub.receive(first, ANONYMOUS, created.id, 0, bytes.subarray(0, 64 * KiB));
    expect(firstHalf).toMatchObject({ ok: true, committed: 64 * KiB });
    await a.hub.detach(created.id, first);

    // The race: both nodes ask for the lease at once; exactly one gets it.
    const [onA, onB] = await Promise.all([a.hub.registry.acquire(created.id), b.hub.registry.acquire(created.id)]);
    const winners = [onA, onB].filter((acquired) => acquired !== undefined && 'lease' in acquired);
    expect(winners).toHaveLength(1);
    const loserHeld = [onA, onB].find((acquired) => acquired !== undefined && 'heldBy' in acquired);
    expect(loserHeld).toEqual({ heldBy: onA && 'lease' in onA ? 'node-a' : 'node-b' });
    const [winnerHub, loserHub] = onA && 'lease' in onA ? [a, b] : [b, a];
    const stale = (winners[0] as { lease: Lease }).lease;

    // The winner opens the bytes under its token, then is paused past its lease (here: its
    // lease is simply not renewed, as for a node frozen by GC or a partition)...
    const staleFile = await winnerHub.hub.store.openWriter(created.id, 64 * KiB, stale.fence);
    await winnerHub.hub.registry.release(stale);
    // ...and the other node takes the upload over with a newer token.
    const taken = await loserHub.hub.registry.acquire(created.id);
    expect(taken && 'lease' in taken).toBe(true);
    const fresh = (taken as { lease: Lease }).lease;
    expect(fresh.fence).toBeGreaterThan(stale.fence);
    const freshFile = await loserHub.hub.store.openWriter(created.id, 64 * KiB, fresh.fence);

    // Every write with the stale token is refused: the record, the offset, the bytes.
    const record = (await winnerHub.hub.registry.load(created.id))?.record;
    expect(record).toBeDefined();
    expect(await refusedCode(winnerHub.hub.registry.save({ ...record!, state: 'failed' }, stale))).toBe('ERR_LEASE_LOST');
    expect(await refusedCode(winnerHub.hub.registry.commit(stale, 128 * KiB, 50, Date.now()))).toBe('ERR_LEASE_LOST');
    expect(await refusedCode(staleFile.write([Buffer.alloc(16 * KiB, 0xee)], 64 * KiB))).toBe('ERR_LEASE_LOST');
    expect(await refusedCode(winnerHub.hub.store.openWriter(created.id, 64 * KiB, stale.fence))).toBe('ERR_LEASE_LOST');
    await staleFile.close();
    // The record is as it was: the refused save changed nothing.
    expect((await loserHub.hub.registry.load(created.id))?.record.state).not.toBe('failed');

    // The current holder's writes land.
    expect(await freshFile.write([bytes.subarray(64 * KiB, 128 * KiB)], 64 * KiB)).toBe(64 * KiB);
    await loserHub.hub.registry.commit(fresh, 128 * KiB, 25, Date.now());
    await freshFile.close();
    expect((await a.hub.registry.load(created.id))?.committed).toBe(128 * KiB);
    await loserHub.hub.registry.release(fresh);
  });

  it('two clients resuming one upload on two nodes at once: one writes at a time, and the file is byte-identical', async (ctx) => {
    await requireRedis(ctx);
    const [a, b] = await twoNodes();
    const bytes = randomBytes(512 * KiB);
    const created = await a.hub.create(ANONYMOUS, { name: 'race.bin', size: bytes.byteLength });
    const onA = recordingWriter();
    const onB = recordingWriter();
    // Both resume at once: the later one takes the upload from the earlier one (on a node of
    // its own, by asking the holder to release it), as a second resume does on one node.
    const [attachedA, attachedB] = await Promise.allSettled([a.hub.attach(ANONYMOUS, created.id, onA), b.hub.attach(ANONYMOUS, created.id, onB)]);
    const results = [attachedA, attachedB];
    expect(results.some((result) => result.status === 'fulfilled')).toBe(true);
    // Whichever lost was told so (detached) or refused: never two writers at once.
    const writers = [
      { hub: a, writer: onA, result: attachedA },
      { hub: b, writer: onB, result: attachedB },
    ];
    const holding = writers.filter((entry) => entry.result.status === 'fulfilled' && entry.writer.reasons.length === 0);
    expect(holding).toHaveLength(1);
    const { hub, writer: holder } = holding[0]!;
    const loser = writers.find((entry) => entry !== holding[0])!;
    // The loser's chunks are refused; the holder's land.
    const refused = await loser.hub.hub.receive(loser.writer, ANONYMOUS, created.id, 0, bytes.subarray(0, 64 * KiB));
    expect(refused.ok).toBe(false);
    let offset = (await hub.hub.status(ANONYMOUS, created.id)).bytes;
    while (offset < bytes.byteLength) {
      const end = Math.min(bytes.byteLength, offset + 64 * KiB);
      const result = await hub.hub.receive(holder, ANONYMOUS, created.id, offset, bytes.subarray(offset, end));
      expect(result.ok).toBe(true);
      offset = end;
    }
    const done = await hub.hub.settledStatus(ANONYMOUS, created.id);
    expect(done).toMatchObject({ state: 'completed', sha256: sha256Of(bytes) });
    expect(Buffer.compare(await readFile(storedPath(a, created.id)), bytes)).toBe(0);
    // Both nodes report the same end.
    expect((await loser.hub.hub.status(ANONYMOUS, created.id)).state).toBe('completed');
  });
});
