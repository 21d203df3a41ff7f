/**
 * The hub's log: structured JSON (pino), one `info` line per lifecycle step of each upload with
 * its id, one line per HTTP request and upgrade, and never a token — not from the tokens file,
 * a hello, a Socket.IO handshake, a header, a cookie or a query string.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHubServer } from '../../server/app.js';
import { newToken } from '../../server/auth/TokensFile.js';
import { redactUrl } from '../../server/transports/http/accessLog.js';
import type { UploadProgress } from '../../client/UploadClient.js';
import { capturedLogger, onCleanup, startClient, tempDir, waitFor } from '../helpers.js';
import { readNdjson } from './http-helpers.js';

const MiB = 1024 * 1024;

describe('logs', () => {
  it('one info line per lifecycle step with the upload id; requests logged with tokens redacted, and no token anywhere', async () => {
    const alice = newToken('alice', 'uploader');
    const path = join(await tempDir(), 'tokens.json');
    await writeFile(path, JSON.stringify([alice.entry]));
    const log = capturedLogger();
    const hub = await createHubServer({ logger: log.logger, options: { port: 0, host: '127.0.0.1', dataDir: await tempDir(), tokensFile: path } });
    onCleanup(() => hub.close());

    // A watcher with the token in the query (as EventSource must), then uploads over both sockets.
    const stopWatching = new AbortController();
    const watcher = readNdjson(await fetch(`${hub.url}/api/events?token=${encodeURIComponent(alice.token)}`, { headers: { accept: 'application/x-ndjson' }, signal: stopWatching.signal }));
    const ws = startClient({ url: hub.url, transport: 'ws', token: alice.token });
    const sio = startClient({ url: hub.url, transport: 'socket.io', token: alice.token });
    const completed = await ws.upload(randomBytes(2 * MiB), { name: 'done.bin' }).done;
    const mismatch = await sio.upload(randomBytes(MiB), { name: 'bad.bin', sha256: 'f'.repeat(64) }).done.catch((e: unknown) => e);
    expect(mismatch).toMatchObject({ code: 'ERR_CHECKSUM_MISMATCH' });
    const cancelled = ws.upload(randomBytes(8 * MiB), { name: 'cancelled.bin' });
    const cancelledDone = cancelled.done.catch((e: unknown) => e);
    await waitFor<UploadProgress>((fn) => cancelled.on('progress', fn), (p) => p.bytes > 0);
    const ended = log.next('upload cancelled');
    await cancelled.cancel();
    await cancelledDone;
    await ended;
    await fetch(`${hub.url}/api/uploads/${completed.id}`, { headers: { cookie: `upload_hub_token=${alice.token}` } });
    await fetch(`${hub.url}/api/uploads/${completed.id}`, { headers: { authorization: `Bearer ${alice.token}` } });
    // A stream's line is written when it ends.
    const streamLogged = log.next('http request', (line) => String(line.url).startsWith('/api/events'));
    stopWatching.abort();
    watcher.end();
    expect(await streamLogged).toMatchObject({ url: '/api/events?token=[REDACTED]', method: 'GET', status: 200 });

    const about = (id: string) => log.lines.filter((line) => line.uploadId === id).map((line) => line.msg);
    expect(about(completed.id)).toEqual(['upload created', 'upload uploaded', 'upload completed']);
    expect(log.lines.find((line) => line.msg === 'upload completed')).toMatchObject({
      level: 30, uploadId: completed.id, size: 2 * MiB, durationMs: expect.any(Number), bytesPerSecond: expect.any(Number), sha256: completed.sha256,
    });
    expect(log.lines.find((line) => line.msg === 'upload failed')).toMatchObject({ level: 30, code: 'ERR_CHECKSUM_MISMATCH', uploadId: expect.any(String) });
    expect(log.lines.find((line) => line.msg === 'upload cancelled')).toMatchObject({ level: 30, code: 'ERR_CANCELLED', uploadId: cancelled.id });
    // Every line about an upload names it.
    for (const line of log.lines.filter((line) => String(line.msg).startsWith('upload ') && line.msg !== 'upload request')) expect(line.uploadId, String(line.msg)).toEqual(expect.any(String));

    const requests = log.lines.filter((line) => line.msg === 'http request');
    expect(requests.map((line) => line.url)).toContain('/api/events?token=[REDACTED]');
    expect(log.lines.filter((line) => line.msg === 'upgrade request').length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(log.lines)).not.toContain(alice.token);
  });

  it('redacts credential query parameters from logged URLs, whatever their case or place', () => {
    expect(redactUrl('/api/events?token=abc')).toBe('/api/events?token=[REDACTED]');
    expect(redactUrl('/api/events?upload=x&Token=abc&y=1')).toBe('/api/events?upload=x&Token=[REDACTED]&y=1');
    expect(redactUrl('/socket.io/?EIO=4&transport=polling&access_token=abc')).toBe('/socket.io/?EIO=4&transport=polling&access_token=[REDACTED]');
    expect(redactUrl('/api/uploads?%74oken=abc')).toBe('/api/uploads?%74oken=[REDACTED]');
    expect(redactUrl('/api/uploads')).toBe('/api/uploads');
  });
});
