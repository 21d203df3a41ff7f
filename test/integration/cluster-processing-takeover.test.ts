/**
 * Processing after a node dies, and the cluster's chores: an upload whose stage runs on node A
 * when A is SIGKILLed is taken over by another node once A's lease runs out, processed there
 * from the start, and completes; its watchers see `completed` with the right sha256. The expiry
 * sweep and the takeover scan each run on one node per interval, however many nodes there are.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256Of, startClient, startHub, tempDir } from '../helpers.js';
import { connectThrough, firstLine, redisUrl, requestJson, requireRedis, startCluster, testPrefix, TEST_LEASE_TTL_MS, within } from '../cluster.js';

/** Long enough to kill the node mid-stage; short enough for the successor to finish in time. */
const SLOW_STAGE_MS = 2_000;
const WAIT_MS = 20_000;

describe('cluster: processing when its node dies', () => {
  it('another node takes the upload over after the lease runs out, runs the stage again and completes it', { timeout: 60_000 }, async (ctx) => {
    await requireRedis(ctx);
    const cluster = await startCluster({ nodes: 3, env: { SLOW_STAGE_MS: String(SLOW_STAGE_MS) } });
    const client = startClient({ url: cluster.balancer.url, transport: 'ws', reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 100 });
    const receiver = cluster.node(await connectThrough(cluster.balancer, client));
    const bytes = randomBytes(512 * 1024);
    const handle = client.upload(bytes, { name: 'process-me.bin', sha256: sha256Of(bytes) });
    handle.done.catch(() => undefined);
    const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), WAIT_MS, 'create');

    const started = await firstLine(cluster.nodes, (line) => line.stageStarted === id, WAIT_MS);
    expect(started.node.nodeId).toBe(receiver.nodeId);
    const killedAt = Date.now();
    await receiver.kill('SIGKILL');

    // A survivor runs the stage from the start once the dead node's lease expired.
    const survivors = cluster.nodes.filter((node) => node !== receiver);
    const again = await firstLine(survivors, (line) => line.stageStarted === id, WAIT_MS);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(TEST_LEASE_TTL_MS - 500);
    // The uploader, reconnected through the balancer to a survivor, hears the end there.
    await expect(within(handle.done, WAIT_MS, 'completed on a survivor')).resolves.toMatchObject({ id, sha256: sha256Of(bytes) });
    const watcher = survivors.find((node) => node !== again.node) ?? again.node;
    const status = (await requestJson(`${watcher.url}/api/uploads/${id}`)).body;
    expect(status).toMatchObject({ id, state: 'completed', sha256: sha256Of(bytes), percent: 100 });
    // The stage ran once more, on one survivor only.
    const runs = survivors.map((node) => node.lines().filter((line) => line.stageStarted === id).length);
    expect(runs.reduce((sum, count) => sum + count, 0)).toBe(1);
  });

  it('runs each cluster chore on one node per interval', async (ctx) => {
    await requireRedis(ctx);
    const dataDir = await tempDir();
    const prefix = testPrefix();
    const options = { redisUrl: redisUrl(), redisPrefix: prefix, dataDir, leaseTtlMs: TEST_LEASE_TTL_MS };
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((nodeId) => startHub({ options: { ...options, nodeId } })));
    const ran: string[] = [];
    // All three ask at the same moment, twice within one interval: one run in all.
    for (let round = 0; round < 2; round++) {
      await Promise.all(nodes.map((node) => node.hub.registry.once('sweep-test', 60_000, async () => void ran.push(node.nodeId))));
    }
    expect(ran).toHaveLength(1);
  });
});
