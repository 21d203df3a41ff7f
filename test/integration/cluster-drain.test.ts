/**
 * SIGTERM drains a node: ten uploads run through the balancer, spread over three nodes; the
 * node holding the most of them gets SIGTERM mid-upload, while a stage of one more upload runs
 * there. It answers /healthz with 503 draining (the balancer's health check then takes it out),
 * closes its sockets, lets the stage finish and exits 0 within shutdownTimeoutMs; its uploads
 * resume on the other nodes from the committed offset, the others go on undisturbed, and all
 * complete byte-identical.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { UploadClient } from '../../client/node.js';
import type { UploadHandle } from '../../client/UploadClient.js';
import { sha256File, sha256Of, startClient } from '../helpers.js';
import { gatedStream } from '../protocolHelpers.js';
import { committedAtLeast, connectThrough, requestJson, requireRedis, startCluster, within } from '../cluster.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const UPLOADS = 10;
const SIZE = 2 * MiB;
const CHUNK = 128 * KiB;
/** Each source stops here until the SIGTERM has been sent: every upload is mid-way then. */
const GATE = 1 * MiB;
const SHUTDOWN_TIMEOUT_MS = 5000;
/**
 * A stage running on the drained node, well within shutdownTimeoutMs: the drain waits for it,
 * so /healthz is certain to be asked while the node drains (without it a node with nothing to
 * finish is gone in a few ms, and one look at /healthz would race its exit).
 */
const STAGE_MS = 2500;
const WAIT_MS = 20_000;

interface Running {
  client: UploadClient;
  nodeId: string;
  bytes: Buffer;
  handle: UploadHandle;
  release: () => void;
  attached: number[];
  id: string;
}

describe('cluster: SIGTERM on a node with uploads under way', () => {
  it('drains: 503 draining, exit 0 within shutdownTimeoutMs, and its uploads complete on the other nodes', { timeout: 60_000 }, async (ctx) => {
    await requireRedis(ctx);
    const cluster = await startCluster({ nodes: 3, shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS });

    const running: Running[] = [];
    for (let i = 0; i < UPLOADS; i++) {
      // One client each, connected one at a time, so each route is known to be that client's.
      const client = startClient({ url: cluster.balancer.url, transport: 'ws', reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 100 });
      const nodeId = await connectThrough(cluster.balancer, client);
      const bytes = randomBytes(SIZE);
      const source = gatedStream(bytes, GATE, CHUNK);
      const handle = client.upload(source.stream, { name: `drain-${i}.bin`, size: SIZE, chunkSize: CHUNK, sha256: sha256Of(bytes) });
      handle.done.catch(() => undefined);
      const attached: number[] = [];
      handle.on('attached', (offset) => attached.push(offset));
      const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), WAIT_MS, `create ${i}`);
      running.push({ client, nodeId, bytes, handle, release: source.release, attached, id });
    }
    await Promise.all(running.map((upload) => committedAtLeast(upload.handle, CHUNK)));

    const counts = new Map<string, number>();
    for (const upload of running) counts.set(upload.nodeId, (counts.get(upload.nodeId) ?? 0) + 1);
    const [drainedId] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0] as [string, number];
    const drained = cluster.node(drainedId);
    const onDrained = running.filter((upload) => upload.nodeId === drainedId);
    const elsewhere = running.filter((upload) => upload.nodeId !== drainedId);
    expect(onDrained.length, `uploads per node ${JSON.stringify([...counts])}`).toBeGreaterThanOrEqual(2);

    const stageBytes = randomBytes(64 * KiB);
    const staged = (onDrained[0] as Running).client.upload(stageBytes, { name: 'stage-while-draining.bin', metadata: { slowMs: String(STAGE_MS) }, sha256: sha256Of(stageBytes) });
    staged.done.catch(() => undefined);
    const stagedId = await within(new Promise<string>((resolve) => staged.on('created', resolve)), WAIT_MS, 'create the staged upload');
    await drained.waitForLine((line) => line.stageStarted === stagedId, WAIT_MS);
    const committedAtTerm = new Map(running.map((upload) => [upload.id, upload.handle.progress.bytes]));

    const termAt = performance.now();
    const exit = drained.kill('SIGTERM');
    const health = await requestJson(`${drained.url}/healthz`, {}, 2000);
    expect(health.status, JSON.stringify(health.body)).toBe(503);
    expect(health.body).toMatchObject({ status: 'draining', node: drainedId });
    // What a load balancer's health check does on that answer.
    cluster.balancer.setLive(drainedId, false);
    for (const upload of running) upload.release();

    const exited = await within(exit, SHUTDOWN_TIMEOUT_MS + 5000, `${drainedId} exits after SIGTERM`);
    const drainMs = performance.now() - termAt;
    expect(exited, drained.output().slice(-4000)).toEqual({ code: 0, signal: null });
    expect(drainMs, 'exit after SIGTERM, in ms').toBeLessThanOrEqual(SHUTDOWN_TIMEOUT_MS);

    const results = await within(Promise.all(running.map((upload) => upload.handle.done)), 30_000, 'all uploads');
    for (const [i, result] of results.entries()) {
      const upload = running[i] as Running;
      const expected = sha256Of(upload.bytes);
      expect(result.sha256, `upload ${i} (${upload.nodeId})`).toBe(expected);
      expect(await sha256File(join(cluster.dataDir, 'uploads', `${result.id}.data`)), `stored bytes of upload ${i}`).toBe(expected);
    }
    // The stage running at the SIGTERM finished there.
    const stagedResult = await within(staged.done, WAIT_MS, 'the staged upload');
    expect(stagedResult).toMatchObject({ sha256: sha256Of(stageBytes), result: { slow: { nodeId: drainedId } } });
    expect(drained.lines().filter((line) => line.stageAborted === stagedId)).toEqual([]);
    // The drained node's uploads moved, keeping every byte committed before the SIGTERM; the others never noticed.
    for (const upload of onDrained) {
      expect(upload.attached.length, `attaches of ${upload.id}: ${JSON.stringify(upload.attached)}`).toBeGreaterThanOrEqual(2);
      expect(upload.attached[1]).toBeGreaterThanOrEqual(committedAtTerm.get(upload.id) as number);
    }
    for (const upload of elsewhere) expect(upload.attached, `attaches of ${upload.id} on ${upload.nodeId}`).toEqual([0]);
  });
});
