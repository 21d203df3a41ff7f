import { randomBytes } from 'node:crypto';
import { Agent, get } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Writer } from '../../server/core/UploadHub.js';
import { startHub } from '../helpers.js';
import { gateStage, httpTransportOf } from './http-helpers.js';

const CYCLES = 10_000;
const CONCURRENCY = 32;
const KiB = 1024;

function timeouts(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
}

describe('watcher stream clean-up', () => {
  it(`leaves no subscription, timer or listener behind after ${CYCLES} connect/disconnect cycles`, async () => {
    const gate = gateStage();
    gate.stage.when = (upload) => upload.name === 'held.bin';
    // A short heartbeat and a time throttle, so streams hold timers while events flow.
    // Uploads created as fast as they complete, and 32 streams whose closes the hub may see late:
    // past the default abuse limits (createsPerMinutePerPrincipal, maxConnectionsPerIp).
    const hub = await startHub({ pipeline: [gate.stage], options: { heartbeatMs: 5, progressIntervalMs: 20, progressMinStepPercent: 0, createsPerMinutePerPrincipal: 0, maxOpenUploadsPerPrincipal: 0, maxConnectionsPerIp: 0 } });
    const transport = httpTransportOf(hub);
    // Uploads driven through the core in-process: events flow with no socket of their own.
    const writer: Writer = { detached: () => undefined };
    const send = async (name: string, size: number): Promise<string> => {
      const { id } = await hub.hub.create(ANONYMOUS, { name, size });
      await hub.hub.attach(ANONYMOUS, id, writer);
      const chunk = randomBytes(64 * KiB);
      for (let offset = 0; offset < size; offset += chunk.byteLength) {
        const result = await hub.hub.receive(writer, ANONYMOUS, id, offset, chunk.subarray(0, Math.min(chunk.byteLength, size - offset)));
        if (!result.ok) throw result.error;
      }
      return id;
    };
    const heldId = await send('held.bin', 1000);
    await gate.started;

    const baseline = { subscribers: hub.hub.events.subscriberCount, timeouts: timeouts(), listeners: hub.server.listenerCount('request') };
    let opened = 0;
    const countRequest = (): void => void opened++;
    hub.server.on('request', countRequest);

    let stop = false;
    const traffic = (async () => {
      for (let count = 0; !stop; count++) {
        hub.hub.log(heldId, 'info', `line ${count}`);
        await send(`traffic-${count}.bin`, 2 * 1024 * KiB);
      }
    })();

    const agent = new Agent({ keepAlive: false, maxSockets: CONCURRENCY });
    const variants = [
      { path: '/api/events', headers: {} },
      { path: '/api/events', headers: { accept: 'application/x-ndjson' } },
      { path: `/api/uploads/${heldId}/events`, headers: {} },
      { path: '/api/events', headers: { 'last-event-id': String(hub.hub.events.lastId) } },
    ];
    let refused = 0;
    const cycle = (index: number): Promise<void> =>
      new Promise((resolve) => {
        const variant = variants[index % variants.length] as (typeof variants)[number];
        const req = get(`${hub.url}${variant.path}`, { agent, headers: variant.headers }, (res) => {
          if (res.statusCode !== 200) refused++;
          // The first bytes mean the stream is open and subscribed: hang up then.
          res.once('data', () => req.destroy());
        });
        req.once('close', () => resolve());
        req.on('error', () => undefined);
      });
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < CYCLES) await cycle(next++);
    }));
    stop = true;
    await traffic;
    await transport.streams.idle();
    agent.destroy();
    hub.server.off('request', countRequest);

    expect(refused).toBe(0);
    expect(opened).toBe(CYCLES);
    expect(transport.connections()).toBe(0);
    expect(transport.streams.timers).toBe(0);
    expect(hub.hub.events.subscriberCount).toBe(baseline.subscribers);
    expect(hub.server.listenerCount('request')).toBe(baseline.listeners);
    // A per-stream timer left behind would show up by the thousand.
    expect(timeouts()).toBeLessThanOrEqual(baseline.timeouts);

    gate.release();
  });
});
