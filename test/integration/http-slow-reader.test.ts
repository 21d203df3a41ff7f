import { get, type IncomingMessage, type ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { HubEvent } from '../../shared/messages.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import { randomFile, startClient, startHub } from '../helpers.js';
import { parseData, readSse, type SseFrame } from './http-helpers.js';

const MiB = 1024 * 1024;

describe('a slow SSE reader', () => {
  it('gets coalesced progress while its socket is paused, bounded server memory, and still `completed` once it reads again', async () => {
    // Every commit publishes progress.
    const hub = await startHub({ options: { progressIntervalMs: 0, progressMinStepPercent: 0, maxOpenUploadsPerPrincipal: 0, createsPerMinutePerPrincipal: 0 } });
    const file = await randomFile(256 * MiB);
    let serverSide: ServerResponse | undefined;
    hub.server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/api/events') serverSide = res;
    });

    const response = await new Promise<IncomingMessage>((resolve) => get(`${hub.url}/api/events`, resolve));
    const frames = readSse(response);
    await frames.next((frame) => frame.event === 'snapshot');
    // Stop reading, then keep the kernel's socket buffers (their size varies by machine and
    // grows on its own) full with log lines, so the server-side response stays congested.
    response.pause();
    const res = serverSide as ServerResponse;
    const line = 'x'.repeat(4000);
    let fillerBytes = 0;
    let filling = true;
    const fill = async (): Promise<void> => {
      for (let filler = 0; filling && !res.writableNeedDrain; filler++) {
        if (fillerBytes > 64 * MiB) throw new Error('the paused socket never filled up');
        const { id } = await hub.hub.create(ANONYMOUS, { name: `filler-${filler}`, size: 1 });
        for (let i = 0; i < 10 && !res.writableNeedDrain; i++) {
          hub.hub.log(id, 'info', line);
          fillerBytes += line.length;
        }
      }
    };
    await fill();
    const refill = (): void => void fill();
    res.on('drain', refill);
    let published = 0;
    let maxBuffered = 0;
    let blockedSeen = 0;
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const untap = hub.hub.events.tap((event: HubEvent) => {
      if (event.type === 'progress') published++;
      maxBuffered = Math.max(maxBuffered, res.writableLength);
      if (res.writableNeedDrain) blockedSeen++;
      if (published % 64 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    });

    const client = startClient({ url: hub.url });
    const result = await client.upload(file.path, { chunkSize: 64 * 1024 }).done;
    untap();
    filling = false;
    res.off('drain', refill);
    expect(result.sha256).toBe(file.sha256);

    response.resume();
    const completed = await frames.next((frame: SseFrame) => frame.event === 'completed');
    expect(parseData(completed).uploadId).toBe(result.id);
    const delivered = frames.frames.filter((frame) => frame.event === 'progress' && parseData(frame).uploadId === result.id);

    expect(blockedSeen).toBeGreaterThan(0);
    expect(delivered.length).toBeLessThan(published);
    expect(parseData(delivered.at(-1) as SseFrame)).toMatchObject({ percent: 100, bytes: file.size });
    expect(maxBuffered).toBeLessThan(hub.hub.options.watcherMaxBufferedBytes);
    expect(rssPeak - rssBefore).toBeLessThan(192 * MiB);
  });
});
