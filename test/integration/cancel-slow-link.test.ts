/**
 * Cancel overtakes data (issue 8, item 6): on a 1 MiB/s link a cancel must not wait behind
 * megabytes of chunks queued before it, on either socket transport. The client keeps little
 * in its socket's send buffer and the hub's window holds about 250 ms of the measured rate.
 */
import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { UploadProgress } from '../../client/UploadClient.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import { DiskStore } from '../../server/store/DiskStore.js';
import type { UploadStore } from '../../server/store/UploadStore.js';
import { randomFile, startClient, startHub, tempDir, waitFor } from '../helpers.js';
import { TRANSPORT_NAMES } from '../protocolHelpers.js';
import { startThrottledProxy } from '../proxy.js';

const MiB = 1024 * 1024;

/** The disk store, noting each upload's file size at the moment its bytes are removed. */
function measuringStore(dataDir: string): { store: UploadStore; sizeAtRemoval: Map<string, number> } {
  const disk = new DiskStore(dataDir);
  const sizeAtRemoval = new Map<string, number>();
  const store = new Proxy(disk, {
    get(target, property, receiver) {
      if (property === 'removeData') {
        return async (id: string) => {
          try {
            sizeAtRemoval.set(id, statSync(target.dataPath(id)).size);
          } catch {
            sizeAtRemoval.set(id, 0);
          }
          return target.removeData(id);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, sizeAtRemoval };
}

describe.each(TRANSPORT_NAMES)('cancel over a 1 MiB/s link (%s)', (transport) => {
  it('is cancelled within 1.5 s of the click, with at most 2 MiB stored after it', async () => {
    const dataDir = await tempDir();
    const { store, sizeAtRemoval } = measuringStore(dataDir);
    const hub = await startHub({ options: { dataDir }, store });
    const proxy = await startThrottledProxy(hub.url, 1 * MiB);
    const client = startClient({ url: proxy.url, transport });
    const file = await randomFile(24 * MiB);

    const upload = client.upload(file.path);
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 2 * MiB);
    const id = upload.id as string;
    const committedAtClick = (await hub.hub.status(ANONYMOUS, id)).bytes;

    const clicked = performance.now();
    await upload.cancel();
    const clickToCancelled = performance.now() - clicked;

    await expect(upload.done).rejects.toMatchObject({ code: 'ERR_CANCELLED' });
    expect((await hub.hub.status(ANONYMOUS, id)).state).toBe('cancelled');
    const storedAfterClick = (sizeAtRemoval.get(id) ?? Number.NaN) - committedAtClick;
    const measured = `click-to-cancelled ${Math.round(clickToCancelled)} ms, ${storedAfterClick} bytes stored after the click`;
    expect(clickToCancelled, measured).toBeLessThanOrEqual(1500);
    expect(storedAfterClick, measured).toBeGreaterThanOrEqual(0);
    expect(storedAfterClick, measured).toBeLessThanOrEqual(2 * MiB);
  }, 60_000);
});
