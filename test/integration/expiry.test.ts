/**
 * The sweep: an incomplete upload nobody writes expires after uploadTtlMs (bytes removed,
 * `expired` published), a finished one is forgotten after finishedRetentionMs. One node sweeps
 * what it holds; in a cluster, an upload its node left behind (closed, or died) is expired by
 * whichever node runs the cluster's sweep.
 */
import { describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Writer } from '../../server/core/UploadHub.js';
import { redisUrl, requireRedis, testPrefix, TEST_LEASE_TTL_MS, within } from '../cluster.js';
import { hubEvent, startHub, tempDir } from '../helpers.js';

const WAIT_MS = 10_000;

const nobody: Writer = { detached: () => undefined };

describe('expiry and retention', () => {
  it('one node: an abandoned upload expires after uploadTtlMs, its bytes gone; a finished one is forgotten after finishedRetentionMs', async () => {
    const hub = await startHub({ options: { uploadTtlMs: 200, finishedRetentionMs: 200 } });
    const abandoned = await hub.hub.create(ANONYMOUS, { name: 'left.bin', size: 10 });
    await hub.hub.attach(ANONYMOUS, abandoned.id, nobody);
    expect(await hub.hub.receive(nobody, ANONYMOUS, abandoned.id, 0, Buffer.from('abcd'))).toMatchObject({ ok: true });
    const expired = hubEvent(hub.hub, abandoned.id, 'expired');
    // Attached uploads never expire: the writer leaves first.
    await hub.hub.detach(abandoned.id, nobody);
    await within(expired, WAIT_MS, 'expired');
    expect(await hub.hub.status(ANONYMOUS, abandoned.id)).toMatchObject({ state: 'expired', error: { code: 'ERR_EXPIRED' } });
    expect((await hub.hub.store.stat(abandoned.id)).bytes).toBe(0);

    const finished = await hub.hub.create(ANONYMOUS, { name: 'done.bin', size: 0 });
    const attached = await hub.hub.attach(ANONYMOUS, finished.id, nobody);
    expect(attached.window).toBe(0);
    await hub.hub.settledStatus(ANONYMOUS, finished.id);
    // Forgotten once past the retention: the record goes, the upload is unknown (no event
    // says so: the status is asked until it answers so, within the bound).
    const state = () => hub.hub.status(ANONYMOUS, finished.id).then((status) => status.state as string, (error: { code: string }) => error.code);
    await expect.poll(state, { timeout: WAIT_MS, interval: 100 }).toBe('ERR_NOT_FOUND');
  });

  it('cluster: an upload its node left behind is expired by the cluster sweep on another node', async (ctx) => {
    await requireRedis(ctx);
    const dataDir = await tempDir();
    const prefix = testPrefix();
    const options = { redisUrl: redisUrl(), redisPrefix: prefix, dataDir, leaseTtlMs: TEST_LEASE_TTL_MS, uploadTtlMs: 200 };
    const [a, b] = await Promise.all([startHub({ options: { ...options, nodeId: 'a' } }), startHub({ options: { ...options, nodeId: 'b' } })]);
    const created = await a.hub.create(ANONYMOUS, { name: 'orphan.bin', size: 10 });
    const expired = hubEvent(b.hub, created.id, 'expired');
    // Node a goes away with the upload unfinished: nobody holds it now.
    await a.close();
    await within(expired, WAIT_MS, 'expired by node b');
    expect(await b.hub.status(ANONYMOUS, created.id)).toMatchObject({ state: 'expired' });
  });
});
