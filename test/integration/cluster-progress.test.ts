/**
 * Byte progress on several nodes: the node writing an upload appends its progress to the shared
 * event log at most once per progressIntervalMs (every node reads every event), and the latest
 * always follows: a watcher on another node sees fewer progress events than commits, and the
 * last one it sees is where the bytes stopped, even when they stop mid-interval.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { HubEvent } from '../../shared/messages.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Writer } from '../../server/core/UploadHub.js';
import { redisUrl, requireRedis, testPrefix, TEST_LEASE_TTL_MS, within } from '../cluster.js';
import { startHub, tempDir } from '../helpers.js';

const KiB = 1024;
const CHUNK = 16 * KiB;
const CHUNKS = 40;
const INTERVAL_MS = 200;

describe('cluster: progress through the shared log', () => {
  it('is paced per upload on the writing node, and the last commit always reaches watchers on other nodes', async (ctx) => {
    await requireRedis(ctx);
    const dataDir = await tempDir();
    const options = { redisUrl: redisUrl(), redisPrefix: testPrefix(), dataDir, leaseTtlMs: TEST_LEASE_TTL_MS, progressIntervalMs: INTERVAL_MS, progressMinStepPercent: 0 };
    const [writerNode, watcherNode] = await Promise.all([startHub({ options: { ...options, nodeId: 'w' } }), startHub({ options: { ...options, nodeId: 'v' } })]);
    const size = CHUNK * CHUNKS * 2;
    const created = await writerNode.hub.create(ANONYMOUS, { name: 'paced.bin', size });
    const seen: HubEvent[] = [];
    const subscription = watcherNode.hub.events.subscribe({ deliver: (event) => void seen.push(event) });
    subscription.add(created.id);
    const writer: Writer = { detached: () => undefined };
    await writerNode.hub.attach(ANONYMOUS, created.id, writer);
    // Half the file, chunk after chunk as fast as they commit; then the sender stalls.
    const bytes = randomBytes(CHUNK * CHUNKS);
    for (let offset = 0; offset < bytes.byteLength; offset += CHUNK) {
      const result = await writerNode.hub.receive(writer, ANONYMOUS, created.id, offset, bytes.subarray(offset, offset + CHUNK));
      expect(result.ok).toBe(true);
    }
    const last = await within(new Promise<HubEvent>((resolve) => {
      const check = (): boolean => {
        const found = seen.find((event) => event.type === 'progress' && event.bytes === bytes.byteLength);
        if (found) resolve(found);
        return found !== undefined;
      };
      if (check()) return;
      const again = watcherNode.hub.events.subscribe({ deliver: () => void check() });
      again.add(created.id);
    }), 5_000, 'the stalled upload\'s last progress on the other node');
    expect(last).toMatchObject({ type: 'progress', bytes: CHUNK * CHUNKS, total: size });
    const progress = seen.filter((event) => event.type === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.length, 'progress events appended').toBeLessThan(CHUNKS);
    for (let i = 1; i < progress.length; i++) {
      expect((progress[i] as HubEvent).at - (progress[i - 1] as HubEvent).at).toBeGreaterThanOrEqual(INTERVAL_MS - 20);
    }
    subscription.close();
    await writerNode.hub.detach(created.id, writer);
  });
});
