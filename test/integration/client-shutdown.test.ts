/**
 * A hub node that shuts down (SIGTERM: drain; or close) tells its clients to go elsewhere: ws
 * closes with 4503 and the reason ERR_SHUTTING_DOWN, Socket.IO says `closing` ERR_SHUTTING_DOWN
 * and disconnects, and whatever it is asked meanwhile it answers ERR_SHUTTING_DOWN. The client
 * takes all of that as "reconnect and resume", never as the upload's end: here the next hub
 * comes up on the same address and data directory (as another node would behind a load
 * balancer) and the upload completes there, from the committed offset.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { UploadHubError } from '../../shared/errors.js';
import type { HubEvent } from '../../shared/messages.js';
import type { HubServer } from '../../server/app.js';
import type { UploadProgress } from '../../client/UploadClient.js';
import { sha256File, sha256Of, startClient, startHub, storedPath, tempDir, waitFor } from '../helpers.js';
import { TRANSPORT_NAMES, gatedStream } from '../protocolHelpers.js';

const MiB = 1024 * 1024;
/** Every wait below is bounded by the test's timeout. */
const TEST_TIMEOUT_MS = 30_000;

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** A first hub and the means to start its successor on the same port and data directory. */
async function firstHub(): Promise<{ hub: HubServer; next: () => Promise<HubServer> }> {
  const dataDir = await tempDir();
  const hub = await startHub({ options: { dataDir } });
  return { hub, next: () => startHub({ options: { dataDir, port: hub.port } }) };
}

describe('the client after its hub shuts down', { timeout: TEST_TIMEOUT_MS }, () => {
  for (const transport of TRANSPORT_NAMES) {
    describe(transport, () => {
      it('a drain while chunks are in flight: disconnected with ERR_SHUTTING_DOWN, reconnects to the next hub, resumes from the committed offset', async () => {
        const { hub, next } = await firstHub();
        // Retries fast and long enough to outlast the gap between the two hubs.
        const client = startClient({ url: hub.url, transport, reconnectDelayMs: 20, maxReconnectDelayMs: 200, maxReconnectAttempts: 100 });
        const watcher = client.watch();
        const watched: HubEvent[] = [];
        const watcherErrors: UploadHubError[] = [];
        watcher.on('event', (event) => watched.push(event));
        watcher.on('error', (error) => watcherErrors.push(error));
        await watcher.ready;

        // Sent as fast as the hub takes it: chunks are on the wire when the drain begins.
        const bytes = randomBytes(48 * MiB);
        const upload = client.upload(bytes, { name: 'drained.bin', chunkSize: 256 * 1024 });
        const offsets: number[] = [];
        upload.on('attached', (offset) => offsets.push(offset));
        await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 2 * MiB);
        const id = upload.id as string;
        const heard = waitFor<HubEvent>((fn) => watcher.on('event', fn), (event) => event.type === 'completed' && event.uploadId === id);

        const dropped = waitFor<UploadHubError>((fn) => client.on('disconnected', fn));
        await hub.drain();
        expect((await dropped).code).toBe('ERR_SHUTTING_DOWN');
        const committed = upload.progress.bytes;
        expect(committed).toBeLessThan(bytes.byteLength);
        await next();

        const result = await upload.done;
        expect(result.sha256).toBe(sha256Of(bytes));
        expect(await sha256File(storedPath(hub, result.id))).toBe(sha256Of(bytes));
        // Resumed where the first hub left it, not started over.
        expect(offsets[0]).toBe(0);
        expect(offsets.at(-1)).toBeGreaterThanOrEqual(committed);
        expect(offsets.at(-1)).toBeGreaterThan(0);
        // The watcher followed it across the two hubs and heard it complete, with no error.
        await heard;
        expect(result.id).toBe(id);
        expect(watcherErrors).toEqual([]);
      });

      it('a create in flight when the hub closes is sent again to the next hub, not failed', async () => {
        const { hub, next } = await firstHub();
        const client = startClient({ url: hub.url, transport, reconnectDelayMs: 20, maxReconnectDelayMs: 200, maxReconnectAttempts: 100 });
        // The first hub holds the create until it has shut down: the socket closes under the request.
        const seen = deferred();
        const held = deferred();
        const create = hub.hub.create.bind(hub.hub);
        hub.hub.create = async (...args) => {
          seen.resolve();
          await held.promise;
          return create(...args);
        };
        const bytes = randomBytes(2 * MiB);
        const upload = client.upload(bytes, { name: 'held.bin' });
        await seen.promise;
        await hub.close();
        // Answered now, on a hub that has closed: ERR_SHUTTING_DOWN, to a socket that is gone.
        held.resolve();
        await next();
        const result = await upload.done;
        expect(result.sha256).toBe(sha256Of(bytes));
        expect(upload.id).toBe(result.id);
      });

      it('ERR_SHUTTING_DOWN answered to a resume on a draining hub is not the end either', async () => {
        const { hub, next } = await firstHub();
        const client = startClient({ url: hub.url, transport, reconnectDelayMs: 20, maxReconnectDelayMs: 200, maxReconnectAttempts: 100 });
        const bytes = randomBytes(4 * MiB);
        const gated = gatedStream(bytes, 2 * MiB);
        const upload = client.upload(gated.stream, { size: bytes.byteLength, name: 'paused.bin', chunkSize: 256 * 1024 });
        await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 2 * MiB);
        // Paused, then resumed while the hub drains: the resume is refused with ERR_SHUTTING_DOWN
        // (or lost with the socket), and the client goes to the next hub instead.
        upload.pause();
        await waitFor<void>((fn) => upload.on('paused', fn));
        // drain() marks the hub draining before it returns to the event loop, so the resume sent
        // next is refused, or lost with the socket: ERR_SHUTTING_DOWN either way.
        const draining = hub.drain();
        upload.resume();
        await draining;
        await next();
        gated.release();
        const result = await upload.done;
        expect(result.sha256).toBe(sha256Of(bytes));
      });
    });
  }
});
