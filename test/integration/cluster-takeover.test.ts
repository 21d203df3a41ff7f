/**
 * Takeover after a SIGKILL: three hub nodes on one Redis prefix and one data directory behind a
 * round-robin balancer. A ws upload through the balancer is killed with its node mid-upload;
 * the client reconnects through the balancer, resumes on another node from the committed
 * offset, and completes byte-identical. Watchers on the surviving nodes (SSE, Socket.IO) follow
 * it from its first progress to completed with ids that keep increasing across the takeover,
 * and SSE on another node replays the rest of it from an id in the middle.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HubEvent } from '../../shared/messages.js';
import type { Watcher } from '../../client/Watcher.js';
import { sha256File, sha256Of, startClient } from '../helpers.js';
import { gatedStream } from '../protocolHelpers.js';
import { committedAtLeast, connectThrough, requestJson, requireRedis, startCluster, within } from '../cluster.js';
import { curlSse, openEventSource } from './http-helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 8 * MiB;
const CHUNK = 256 * KiB;
/** The source stops here until the node is dead: the upload is provably unfinished at the kill. */
const GATE = 3 * MiB;
/** Every progress event reaches every watcher, so a replay can be compared with the live stream. */
const UNTHROTTLED = { PROGRESS_INTERVAL_MS: '0', PROGRESS_MIN_STEP_PERCENT: '0' };
const WAIT_MS = 20_000;

function strictlyIncreasing(ids: readonly number[]): boolean {
  return ids.every((id, i) => i === 0 || id > (ids[i - 1] as number));
}

/** The first event passing `test`, among those `watcher` has emitted into `seen` or yet to come. */
function nextEvent(watcher: Watcher, seen: readonly HubEvent[], test: (event: HubEvent) => boolean): Promise<HubEvent> {
  const found = seen.find(test);
  if (found !== undefined) return Promise.resolve(found);
  return new Promise((resolve) => {
    const off = watcher.on('event', (event) => {
      if (!test(event)) return;
      off();
      resolve(event);
    });
  });
}

describe('cluster: a node killed mid-upload', () => {
  // The uploader over each socket transport; the watchers are the same (SSE, Socket.IO).
  it.for(['ws', 'socket.io'] as const)('the %s client resumes on another node and completes with the right sha256; watchers on other nodes see it through; SSE replays it from the middle on another node', { timeout: 60_000 }, async (transport, ctx) => {
    await requireRedis(ctx);
    const cluster = await startCluster({ nodes: 3, env: UNTHROTTLED });
    const client = startClient({ url: cluster.balancer.url, transport, reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 100 });
    const holder = cluster.node(await connectThrough(cluster.balancer, client));
    const [sseNode, ioNode] = cluster.nodes.filter((node) => node !== holder) as [typeof holder, typeof holder];

    const sse = openEventSource(`${sseNode.url}/api/events`);
    await within(sse.log.next((frame) => frame.event === 'snapshot'), WAIT_MS, `SSE snapshot on ${sseNode.nodeId}`);
    const watchClient = startClient({ url: ioNode.url, transport: 'socket.io' });
    const watcher = watchClient.watch();
    const ioEvents: HubEvent[] = [];
    watcher.on('event', (event) => ioEvents.push(event));
    await within(watcher.ready, WAIT_MS, `Socket.IO watcher on ${ioNode.nodeId}`);

    const bytes = randomBytes(SIZE);
    const expected = sha256Of(bytes);
    const source = gatedStream(bytes, GATE, CHUNK);
    const handle = client.upload(source.stream, { name: 'takeover.bin', size: SIZE, chunkSize: CHUNK, sha256: expected });
    const attached: number[] = [];
    handle.on('attached', (offset) => attached.push(offset));
    const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), WAIT_MS, 'create');
    handle.done.catch(() => undefined);

    await committedAtLeast(handle, 1 * MiB);
    // Both watchers have heard the first node's progress before it dies.
    await within(sse.log.next((frame) => frame.event === 'progress' && frame.data.uploadId === id), WAIT_MS, `SSE progress on ${sseNode.nodeId}`);
    await within(nextEvent(watcher, ioEvents, (event) => event.type === 'progress' && event.uploadId === id), WAIT_MS, `Socket.IO progress on ${ioNode.nodeId}`);

    const committedAtKill = handle.progress.bytes;
    const exit = await holder.kill('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    expect(committedAtKill, 'killed mid-upload').toBeLessThanOrEqual(GATE);
    source.release();

    const result = await within(handle.done, 30_000, 'the upload after the takeover');
    expect(result.sha256).toBe(expected);
    expect(await sha256File(join(cluster.dataDir, 'uploads', `${id}.data`))).toBe(expected);
    const status = await requestJson(`${sseNode.url}/api/uploads/${id}`);
    expect(status.body).toMatchObject({ id, state: 'completed', sha256: expected, size: SIZE });

    // Resumed, not restarted: attached again at an offset holding every byte acknowledged before the kill.
    expect(attached[0]).toBe(0);
    expect(attached.length, `attached at ${JSON.stringify(attached)}`).toBeGreaterThanOrEqual(2);
    expect(attached[1]).toBeGreaterThanOrEqual(committedAtKill);
    expect(attached[1]).toBeLessThanOrEqual(GATE);
    const routed = cluster.balancer.routedTo();
    expect(routed[0]).toBe(holder.nodeId);
    expect(routed.length).toBeGreaterThanOrEqual(2);
    expect(routed.slice(1).filter((nodeId) => nodeId === holder.nodeId), `routes ${JSON.stringify(routed)}`).toEqual([]);

    // SSE on a surviving node: one stream with ids increasing across the takeover, the upload from its first progress to completed.
    await within(sse.log.next((frame) => frame.event === 'completed' && frame.data.uploadId === id), WAIT_MS, 'SSE completed');
    const sseIds = sse.log.frames.map((frame) => Number(frame.lastEventId));
    expect(strictlyIncreasing(sseIds), `SSE ids ${JSON.stringify(sseIds)}`).toBe(true);
    const mine = sse.log.frames.filter((frame) => frame.data.uploadId === id);
    const sseProgress = mine.filter((frame) => frame.event === 'progress').map((frame) => frame.data.bytes as number);
    expect(sseProgress.some((at) => at <= committedAtKill), 'SSE saw progress from the killed node').toBe(true);
    expect(sseProgress.some((at) => at > GATE), 'SSE saw progress from the node that took over').toBe(true);
    expect(sseProgress.at(-1)).toBe(SIZE);
    expect(mine.at(-1)?.event).toBe('completed');

    // Socket.IO on a surviving node: the same story, in order.
    await within(nextEvent(watcher, ioEvents, (event) => event.type === 'completed' && event.uploadId === id), WAIT_MS, 'Socket.IO completed');
    const ioMine = ioEvents.filter((event) => event.uploadId === id);
    expect(strictlyIncreasing(ioEvents.map((event) => event.id)), `Socket.IO ids ${JSON.stringify(ioEvents.map((event) => event.id))}`).toBe(true);
    const ioProgress = ioMine.flatMap((event) => (event.type === 'progress' ? [event.bytes] : []));
    expect(ioProgress.some((at) => at <= committedAtKill), 'Socket.IO saw progress from the killed node').toBe(true);
    expect(ioProgress.some((at) => at > GATE), 'Socket.IO saw progress from the node that took over').toBe(true);
    expect(ioMine.at(-1)?.type).toBe('completed');

    // Replay from the middle (an event of the killed node) on another node: exactly the rest.
    const middle = mine.filter((frame) => frame.event === 'progress' && (frame.data.bytes as number) <= committedAtKill).at(-1);
    if (middle === undefined) throw new Error('no SSE progress from before the kill');
    const replayNode = ioNode;
    const replay = curlSse(`${replayNode.url}/api/uploads/${id}/events`, { 'Last-Event-ID': middle.lastEventId });
    expect(await within(replay.exit, WAIT_MS, `SSE replay on ${replayNode.nodeId} ends after completed`)).toBe(0);
    const replayed = replay.log.frames.filter((frame) => frame.id !== undefined);
    expect(replayed.map((frame) => frame.event)).not.toContain('snapshot');
    expect(replayed.map((frame) => Number(frame.id))).toEqual(mine.filter((frame) => Number(frame.lastEventId) > Number(middle.lastEventId)).map((frame) => Number(frame.lastEventId)));
    expect(replayed.at(-1)?.event).toBe('completed');
  });
});
