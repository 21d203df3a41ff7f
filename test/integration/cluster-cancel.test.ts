/**
 * Cancel across nodes: an upload's bytes go in on one node and its (slow) processing stage runs
 * there; a cancel sent to another node reaches it: the stage's AbortSignal fires on the node
 * doing the work, the uploader gets ERR_CANCELLED, and every node says the upload is cancelled.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256Of, startClient } from '../helpers.js';
import { connectThrough, firstLine, requestJson, requireRedis, startCluster, within } from '../cluster.js';

/** The stage would run for a minute: only a cancel that reaches it ends the test in time. */
const SLOW_STAGE_MS = 60_000;
const WAIT_MS = 20_000;

describe('cluster: cancel sent to another node', () => {
  it('aborts the stage on the node processing the upload, and the upload ends cancelled on every node', { timeout: 60_000 }, async (ctx) => {
    await requireRedis(ctx);
    const cluster = await startCluster({ nodes: 3, env: { SLOW_STAGE_MS: String(SLOW_STAGE_MS) } });
    const client = startClient({ url: cluster.balancer.url, transport: 'ws' });
    const receiver = cluster.node(await connectThrough(cluster.balancer, client));

    const bytes = randomBytes(1024 * 1024);
    const handle = client.upload(bytes, { name: 'to-cancel.bin', sha256: sha256Of(bytes) });
    handle.done.catch(() => undefined);
    const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), WAIT_MS, 'create');

    // Every byte is in once the stage runs; it runs where the bytes went in.
    const started = await firstLine(cluster.nodes, (line) => line.stageStarted === id, WAIT_MS);
    expect(started.node.nodeId, 'the node running the stage').toBe(receiver.nodeId);

    const canceller = cluster.nodes.find((node) => node !== receiver) as typeof receiver;
    const cancelled = await requestJson(`${canceller.url}/api/uploads/${id}`, { method: 'DELETE' });
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
    expect(cancelled.body).toMatchObject({ id, state: 'cancelled' });

    const aborted = await receiver.waitForLine((line) => line.stageAborted === id, WAIT_MS);
    expect(aborted.nodeId).toBe(receiver.nodeId);
    await expect(within(handle.done, WAIT_MS, 'the uploader hears of the cancel')).rejects.toMatchObject({ code: 'ERR_CANCELLED' });

    for (const node of cluster.nodes) {
      const status = await requestJson(`${node.url}/api/uploads/${id}`);
      expect(status.body, `status on ${node.nodeId}`).toMatchObject({ id, state: 'cancelled' });
    }
    // The stage ran once, on one node, and was aborted there only.
    for (const node of cluster.nodes) {
      const mine = node.lines().filter((line) => line.stageStarted === id || line.stageAborted === id);
      expect(mine.length, `stage lines on ${node.nodeId}`).toBe(node === receiver ? 2 : 0);
    }
  });
});
