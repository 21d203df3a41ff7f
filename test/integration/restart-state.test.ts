/**
 * A restart never moves an upload backwards: a hub in a child process is killed (SIGKILL) or
 * stopped (SIGTERM) and started again on the same data directory; each upload reports the
 * state, bytes, percent and updatedAt it had.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { UploadStatus } from '../../shared/messages.js';
import type { UploadProgress } from '../../client/UploadClient.js';
import { startClient, tempDir, waitFor } from '../helpers.js';
import { freePort, spawnHub } from '../protocolHelpers.js';

const MiB = 1024 * 1024;

async function status(url: string, id: string): Promise<UploadStatus> {
  const response = await fetch(`${url}/api/uploads/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as UploadStatus;
}

/** `first` bytes of `bytes`, then nothing until the test ends: an upload provably stopped part way. */
function stalledStream(bytes: Buffer, first: number): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    // The first byte comes a moment after create, so the last write's time differs from createdAt.
    await delay(30);
    for (let at = 0; at < first; at += 256 * 1024) yield bytes.subarray(at, Math.min(at + 256 * 1024, first));
    await new Promise(() => undefined);
  }
  return Readable.from(pieces(), { objectMode: false });
}

describe('a restart never moves an upload backwards', () => {
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`after ${signal}, an upload receiving bytes is uploading with its bytes, percent and updatedAt; a completed one reports its size`, async () => {
      const dataDir = await tempDir();
      const port = await freePort();
      let child = await spawnHub(dataDir, port);
      // Resuming is not what this test is about: the client must not reattach after the restart.
      const client = startClient({ url: child.url, transport: 'ws', maxReconnectAttempts: 0 });

      const whole = randomBytes(1 * MiB);
      const completed = await client.upload(whole, { name: 'whole.bin' }).done;

      const bytes = randomBytes(8 * MiB);
      const partial = client.upload(stalledStream(bytes, 3 * MiB), { size: bytes.byteLength, name: 'partial.bin' });
      partial.done.catch(() => undefined);
      await waitFor<UploadProgress>((fn) => partial.on('progress', fn), (p) => p.bytes >= 3 * MiB);
      const before = await status(child.url, partial.id as string);
      expect(before).toMatchObject({ state: 'uploading', bytes: 3 * MiB });
      expect(before.updatedAt).toBeGreaterThan(before.createdAt);
      const completedBefore = await status(child.url, completed.id);

      await child.kill(signal);
      child = await spawnHub(dataDir, port);

      const after = await status(child.url, partial.id as string);
      expect(after).toMatchObject({ state: 'uploading', bytes: 3 * MiB, percent: before.percent, attached: false });
      expect(after.percent).toBeGreaterThan(0);
      if (signal === 'SIGTERM') {
        expect(after.updatedAt).toBe(before.updatedAt);
      } else {
        // Killed: the time of the last write is what the disk says, within the write itself.
        expect(Math.abs(after.updatedAt - before.updatedAt)).toBeLessThan(25);
      }
      const completedAfter = await status(child.url, completed.id);
      expect(completedAfter).toMatchObject({ state: 'completed', bytes: whole.byteLength, percent: 100, updatedAt: completedBefore.updatedAt, sha256: completed.sha256 });
    });
  }
});
