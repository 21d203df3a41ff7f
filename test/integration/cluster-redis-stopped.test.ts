/**
 * Redis itself stopped for two seconds mid-upload (a Redis server of the test's own, frozen
 * with SIGSTOP and thawed with SIGCONT): its connections stay open but nothing answers. A node
 * notices by its pings (healthz degraded), refuses a create with 503 ERR_UNAVAILABLE within its
 * request timeout, holds the attached upload (its acks wait), and completes it once Redis runs
 * again; nothing acknowledged is lost.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onCleanup, sha256File, sha256Of, startClient } from '../helpers.js';
import { gatedStream, freePort } from '../protocolHelpers.js';
import { committedAtLeast, connectThrough, requestJson, requireRedis, startCluster, within } from '../cluster.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 8 * MiB;
const CHUNK = 256 * KiB;
const GATE = 2 * MiB;
/** Longer than a node's request timeout on Redis (2 s), so a create is refused while Redis is stopped. */
const STOPPED_MS = 4000;
const WAIT_MS = 20_000;

/** A redis-server of this test's own on a free port, nothing saved; killed after the test. */
async function privateRedis(): Promise<{ url: string; pid: number }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  });
  await within(new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (data: Buffer) => {
      output += data.toString();
      if (output.includes('Ready to accept connections')) resolve();
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${output}`)));
  }), 10_000, 'redis-server ready');
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid as number };
}

describe('cluster: Redis stopped for a while', () => {
  it('refuses creates meanwhile, holds the upload, and completes it once Redis runs again', { timeout: 60_000 }, async (ctx) => {
    // The shared Redis is not used, but redis-server must be on the machine (it is where Redis is).
    await requireRedis(ctx);
    const redis = await privateRedis();
    const cluster = await startCluster({ nodes: 2, redisUrl: redis.url });
    const client = startClient({ url: cluster.balancer.url, transport: 'ws', reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 100 });
    const holder = cluster.node(await connectThrough(cluster.balancer, client));

    const bytes = randomBytes(SIZE);
    const expected = sha256Of(bytes);
    const source = gatedStream(bytes, GATE, CHUNK);
    const handle = client.upload(source.stream, { name: 'stopped.bin', size: SIZE, chunkSize: CHUNK, sha256: expected });
    handle.done.catch(() => undefined);
    const id = await within(new Promise<string>((resolve) => handle.on('created', resolve)), WAIT_MS, 'create');
    await committedAtLeast(handle, 1 * MiB);

    let stopped = true;
    process.kill(redis.pid, 'SIGSTOP');
    const thawed = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        stopped = false;
        process.kill(redis.pid, 'SIGCONT');
        resolve();
      }, STOPPED_MS);
      onCleanup(() => clearTimeout(timer));
    });
    let finishedWhileStopped = false;
    source.release();
    void handle.done.then(() => {
      if (stopped) finishedWhileStopped = true;
    }, () => undefined);

    // A create is refused within the node's request timeout, while Redis is still stopped; by
    // then the node's pings have gone unanswered and it says it is degraded.
    const refused = await requestJson(`${holder.url}/api/uploads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'meanwhile.bin', size: 10 }) }, STOPPED_MS);
    expect(stopped, 'the create was answered while Redis was stopped').toBe(true);
    expect(refused.status, JSON.stringify(refused.body)).toBe(503);
    expect(refused.body).toMatchObject({ error: { code: 'ERR_UNAVAILABLE' } });
    const degraded = await requestJson(`${holder.url}/healthz`, {}, STOPPED_MS);
    expect(stopped, 'healthz answered while Redis was stopped').toBe(true);
    expect(degraded.status).toBe(503);
    expect(degraded.body).toMatchObject({ status: 'degraded', storage: { lastError: { code: 'ERR_UNAVAILABLE' } } });
    await thawed;
    expect(finishedWhileStopped, 'the upload finished while Redis was stopped').toBe(false);
    const result = await within(handle.done, 30_000, 'the upload after Redis runs again');
    expect(result.sha256).toBe(expected);
    expect(await sha256File(join(cluster.dataDir, 'uploads', `${id}.data`))).toBe(expected);
    const health = await requestJson(`${holder.url}/healthz`);
    expect(health.body).toMatchObject({ status: 'ok' });
    // The refused create left nothing behind once Redis answered again.
    const listed = await requestJson(`${holder.url}/api/uploads`);
    expect((listed.body.uploads as Array<{ name: string }>).map((upload) => upload.name)).toEqual(['stopped.bin']);
  });
});
