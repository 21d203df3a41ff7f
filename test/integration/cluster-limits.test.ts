/**
 * maxOpenUploadsPerPrincipal holds across the cluster: a principal's unfinished uploads are
 * counted in Redis, so one that has its limit open on node a is refused on node b too, and may
 * create again anywhere once one of them ends.
 */
import { describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import { redisUrl, requireRedis, testPrefix, TEST_LEASE_TTL_MS } from '../cluster.js';
import { startHub, tempDir } from '../helpers.js';

describe('cluster: per-principal limits', () => {
  it('counts a principal\'s unfinished uploads on every node', async (ctx) => {
    await requireRedis(ctx);
    const options = { redisUrl: redisUrl(), redisPrefix: testPrefix(), dataDir: await tempDir(), leaseTtlMs: TEST_LEASE_TTL_MS, maxOpenUploadsPerPrincipal: 2 };
    const [a, b] = await Promise.all([startHub({ options: { ...options, nodeId: 'a' } }), startHub({ options: { ...options, nodeId: 'b' } })]);
    const first = await a.hub.create(ANONYMOUS, { name: 'one.bin', size: 10 });
    await a.hub.create(ANONYMOUS, { name: 'two.bin', size: 10 });
    await expect(b.hub.create(ANONYMOUS, { name: 'three.bin', size: 10 })).rejects.toMatchObject({ code: 'ERR_TOO_MANY_UPLOADS' });
    // Another principal is not held back by anonymous's uploads.
    await expect(b.hub.create({ id: 'alice' }, { name: 'alice.bin', size: 10 })).resolves.toMatchObject({ owner: 'alice' });
    // One ends (cancelled from node b): room again, on either node.
    await b.hub.cancel(ANONYMOUS, first.id);
    await expect(b.hub.create(ANONYMOUS, { name: 'three.bin', size: 10 })).resolves.toMatchObject({ state: 'created' });
    await expect(a.hub.create(ANONYMOUS, { name: 'four.bin', size: 10 })).rejects.toMatchObject({ code: 'ERR_TOO_MANY_UPLOADS' });
  });
});
