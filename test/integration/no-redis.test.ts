/**
 * One node loads nothing of Redis: without redisUrl the hub never imports ioredis or the
 * Socket.IO Redis adapter (server/store/redis/ is imported dynamically, only when asked for).
 * The same fixture with redisUrl set does load them, so the check can tell.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { redisUrl, requireRedis, testPrefix } from '../cluster.js';
import { tempDir } from '../helpers.js';

const run = promisify(execFile);

async function loadedPackages(options: Record<string, unknown>): Promise<string[]> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/fixtures/loaded-modules.ts', JSON.stringify(options)], {
    cwd: new URL('../..', import.meta.url).pathname,
    timeout: 30_000,
  });
  return (JSON.parse(stdout.trim().split('\n').at(-1) as string) as { packages: string[] }).packages;
}

describe('one node without REDIS_URL', () => {
  it('loads neither ioredis nor the Socket.IO Redis adapter; a node with REDIS_URL loads both', async (ctx) => {
    const alone = await loadedPackages({ dataDir: await tempDir() });
    expect(alone).toContain('socket.io');
    expect(alone).not.toContain('ioredis');
    expect(alone).not.toContain('@socket.io/redis-streams-adapter');
    await requireRedis(ctx);
    const clustered = await loadedPackages({ dataDir: await tempDir(), redisUrl: redisUrl(), redisPrefix: testPrefix() });
    expect(clustered).toContain('ioredis');
    expect(clustered).toContain('@socket.io/redis-streams-adapter');
  });
});
