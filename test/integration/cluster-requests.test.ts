/**
 * The request channel between nodes takes only well-formed requests: garbage published on it
 * (not JSON, an unknown type, an id that is not an upload id, a request for another node) is
 * ignored and the node keeps writing its upload; a real `release` makes it let go at once (its
 * writer is told, the offset committed, the lease free for the node that asked).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import { redisUrl, requireRedis, testPrefix, TEST_LEASE_TTL_MS, within } from '../cluster.js';
import { hubEvent, onCleanup, recordingWriter, startHub, tempDir } from '../helpers.js';

const KiB = 1024;

describe('cluster: the request channel', () => {
  it('ignores malformed requests and honours a release', async (ctx) => {
    await requireRedis(ctx);
    const prefix = testPrefix();
    const options = { redisUrl: redisUrl(), redisPrefix: prefix, dataDir: await tempDir(), leaseTtlMs: TEST_LEASE_TTL_MS };
    const [a, b] = await Promise.all([startHub({ options: { ...options, nodeId: 'a' } }), startHub({ options: { ...options, nodeId: 'b' } })]);
    const publisher = new Redis(redisUrl());
    onCleanup(() => void publisher.disconnect());
    const channel = `${prefix}ctl`;

    const held = await a.hub.create(ANONYMOUS, { name: 'held.bin', size: 64 * KiB });
    const writer = recordingWriter();
    await a.hub.attach(ANONYMOUS, held.id, writer);
    const bytes = randomBytes(64 * KiB);
    expect(await a.hub.receive(writer, ANONYMOUS, held.id, 0, bytes.subarray(0, 16 * KiB))).toMatchObject({ ok: true });

    // Garbage about the held upload, then a well-formed cancel of another upload of node a:
    // requests are handled in order, so once that one is cancelled the garbage was handled.
    const marker = await a.hub.create(ANONYMOUS, { name: 'marker.bin', size: 10 });
    const markerCancelled = hubEvent(a.hub, marker.id, 'cancelled');
    for (const text of [
      'not json',
      JSON.stringify({ to: 'a', type: 'bogus', uploadId: held.id }),
      JSON.stringify({ to: 'a', type: 'release', uploadId: '../../etc/passwd' }),
      JSON.stringify({ to: 'a', type: 'release' }),
      JSON.stringify({ to: 'b', type: 'release', uploadId: held.id }),
      JSON.stringify([1, 2, 3]),
      JSON.stringify({ to: 'a', type: 'cancel', uploadId: marker.id }),
    ]) await publisher.publish(channel, text);
    await within(markerCancelled, 5_000, 'the marker cancelled');
    // Node a still holds the upload and writes it.
    expect(writer.reasons).toEqual([]);
    expect(await a.hub.receive(writer, ANONYMOUS, held.id, 16 * KiB, bytes.subarray(16 * KiB, 32 * KiB))).toMatchObject({ ok: true, committed: 32 * KiB });

    // A resume on node b sends a real release: a lets go, and b continues from the committed offset.
    const onB = recordingWriter();
    const attached = await within(b.hub.attach(ANONYMOUS, held.id, onB), 5_000, 'the resume on node b');
    expect(writer.reasons).toEqual([undefined]);
    expect(attached.offset).toBe(32 * KiB);
    expect(await b.hub.receive(onB, ANONYMOUS, held.id, 32 * KiB, bytes.subarray(32 * KiB))).toMatchObject({ ok: true, committed: 64 * KiB });
    expect(await a.hub.receive(writer, ANONYMOUS, held.id, 32 * KiB, bytes.subarray(32 * KiB))).toMatchObject({ ok: false });
  });
});
