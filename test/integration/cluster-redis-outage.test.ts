/**
 * Redis away for two seconds mid-upload: the nodes reach Redis through a proxy that cuts every
 * connection and refuses new ones for the outage. Meanwhile a node says it is degraded and
 * refuses a create with 503 ERR_UNAVAILABLE, and the attached upload does not finish (its acks
 * wait for Redis); once Redis is back the upload completes byte-identical, and creates work again.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256File, sha256Of, startClient } from '../helpers.js';
import { gatedStream } from '../protocolHelpers.js';
import { committedAtLeast, connectThrough, requestJson, requireRedis, startCluster, startRedisProxy, within } from '../cluster.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 8 * MiB;
const CHUNK = 256 * KiB;
/** The source stops here until the cut: the upload is provably unfinished when Redis goes. */
const GATE = 2 * MiB;
const OUTAGE_MS = 2000;
const WAIT_MS = 20_000;

const createBody = (name: string) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, size: 10 }) });

describe('cluster: Redis unreachable for a while', () => {
  it('refuses creates with 503 ERR_UNAVAILABLE meanwhile, holds the upload, and completes it once Redis is back', { timeout: 60_000 }, async (ctx) => {
    await requireRedis(ctx);
    const proxy = await startRedisProxy();
    const cluster = await startCluster({ nodes: 2, redisUrl: proxy.url });
    const client = startClient({ url: cluster.balancer.url, transport: 'ws', reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 100 });
    const holder = cluster.node(await connectThrough(cluster.balancer, client));

    const bytes = randomBytes(SIZE);
    const expected = sha256Of(bytes);
    const source = gatedStream(bytes, GATE, CHUNK);
    const handle = client.upload(source.stream, { name: 'outage.bin', size: SIZE, chunkSize: CHUNK, sha256: expected });
    handle.done.catch(() => undefined);
    const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), WAIT_MS, 'create');
    await committedAtLeast(handle, 1 * MiB);
    const committedAtCut = handle.progress.bytes;

    let finishedDuringCut = false;
    const back = proxy.cut(OUTAGE_MS);
    source.release();
    void handle.done.then(() => {
      if (proxy.isCut) finishedDuringCut = true;
    }, () => undefined);

    // One look each, while the link is still cut (checked after each answer).
    const health = await requestJson(`${holder.url}/healthz`, {}, OUTAGE_MS);
    expect(proxy.isCut, 'healthz answered within the outage').toBe(true);
    expect(health.status, JSON.stringify(health.body)).toBe(503);
    expect(health.body).toMatchObject({ status: 'degraded' });
    const refused = await requestJson(`${holder.url}/api/uploads`, createBody('during-outage.bin'), OUTAGE_MS);
    expect(proxy.isCut, 'the create was answered within the outage').toBe(true);
    expect(refused.status, JSON.stringify(refused.body)).toBe(503);
    expect(refused.body).toMatchObject({ error: { code: 'ERR_UNAVAILABLE' } });

    await within(back, OUTAGE_MS + 5000, 'the end of the outage');
    expect(finishedDuringCut, 'the upload finished while Redis was away').toBe(false);
    const result = await within(handle.done, 30_000, 'the upload after the outage');
    expect(result.sha256).toBe(expected);
    expect(await sha256File(join(cluster.dataDir, 'uploads', `${id}.data`))).toBe(expected);
    expect(committedAtCut).toBeLessThanOrEqual(GATE);

    for (const node of cluster.nodes) {
      const status = await requestJson(`${node.url}/api/uploads/${id}`);
      expect(status.body, `status on ${node.nodeId}`).toMatchObject({ id, state: 'completed', sha256: expected });
    }
    const created = await requestJson(`${holder.url}/api/uploads`, createBody('after-outage.bin'));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  });
});
