/**
 * A dead node's uploads are taken without waiting for their leases to expire: each node keeps a
 * liveness key in Redis fresh (every 500 ms, 2 s to live), and a lease whose holder's key is gone
 * is taken at once. With leases of 20 s, a client whose node was SIGKILLed resumes on another
 * node within a few seconds, from the committed offset, and completes byte-identical; an upload
 * being processed there is processed again by the survivor within seconds too.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256File, sha256Of, startClient } from '../helpers.js';
import { gatedStream } from '../protocolHelpers.js';
import { committedAtLeast, connectThrough, requireRedis, startCluster, within } from '../cluster.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 4 * MiB;
const CHUNK = 256 * KiB;
const GATE = 2 * MiB;
/** Far longer than the resume may take: only the liveness key can explain a quick one. */
const LEASE_TTL_MS = 20_000;
const RESUMED_WITHIN_MS = 8_000;

describe('cluster: a dead node', () => {
  it('gives up its uploads when its liveness key runs out, long before their leases would', { timeout: 60_000 }, async (ctx) => {
    await requireRedis(ctx);
    const cluster = await startCluster({ nodes: 2, leaseTtlMs: LEASE_TTL_MS });
    const client = startClient({ url: cluster.balancer.url, transport: 'ws', reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 100 });
    const holder = cluster.node(await connectThrough(cluster.balancer, client));
    const bytes = randomBytes(SIZE);
    const expected = sha256Of(bytes);
    const source = gatedStream(bytes, GATE, CHUNK);
    const handle = client.upload(source.stream, { name: 'dead-node.bin', size: SIZE, chunkSize: CHUNK, sha256: expected });
    const attached: number[] = [];
    handle.on('attached', (offset) => attached.push(offset));
    const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), 20_000, 'create');
    handle.done.catch(() => undefined);
    await committedAtLeast(handle, 1 * MiB);

    await holder.kill('SIGKILL');
    const killedAt = Date.now();
    source.release();
    const resumed = new Promise<number>((resolve) => handle.on('attached', () => resolve(Date.now() - killedAt)));
    const resumeMs = await within(resumed, RESUMED_WITHIN_MS, 'the resume on the other node');
    expect(resumeMs).toBeLessThan(RESUMED_WITHIN_MS);
    const result = await within(handle.done, 30_000, 'the upload after the takeover');
    expect(result.sha256).toBe(expected);
    expect(attached[1]).toBeGreaterThanOrEqual(1 * MiB);
    expect(await sha256File(join(cluster.dataDir, 'uploads', `${id}.data`))).toBe(expected);
  });
});

describe('cluster: processing on a dead node', () => {
  it('is taken over once the node\'s liveness key is gone, not when the lease would expire', { timeout: 60_000 }, async (ctx) => {
    await requireRedis(ctx);
    const cluster = await startCluster({ nodes: 2, leaseTtlMs: LEASE_TTL_MS, env: { SLOW_STAGE_MS: '3000' } });
    const client = startClient({ url: cluster.balancer.url, transport: 'ws', reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 100 });
    const receiver = cluster.node(await connectThrough(cluster.balancer, client));
    const bytes = randomBytes(256 * KiB);
    const handle = client.upload(bytes, { name: 'process-me.bin', sha256: sha256Of(bytes) });
    handle.done.catch(() => undefined);
    const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), 20_000, 'create');
    await receiver.waitForLine((line) => line.stageStarted === id, 20_000);
    await receiver.kill('SIGKILL');
    const killedAt = Date.now();
    const survivor = cluster.nodes.find((node) => node !== receiver) as typeof receiver;
    await survivor.waitForLine((line) => line.stageStarted === id, RESUMED_WITHIN_MS);
    expect(Date.now() - killedAt).toBeLessThan(RESUMED_WITHIN_MS);
    await expect(within(handle.done, 30_000, 'completed on the survivor')).resolves.toMatchObject({ id, sha256: sha256Of(bytes) });
  });
});
