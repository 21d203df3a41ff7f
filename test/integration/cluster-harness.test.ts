/**
 * The cluster harness itself (test/cluster.ts), on plain TCP servers and the real Redis: the
 * balancer's rotation, failover and routes, the Redis proxy's cut, and prefix clean-up. The
 * cluster tests trust these pieces to tell them where a connection went and when Redis was away.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { onCleanup } from '../helpers.js';
import { cleanupPrefix, keysUnder, redisUrl, requireRedis, startBalancer, startRedisProxy, testPrefix, within, type Route } from '../cluster.js';

/** A TCP server that greets each connection with its name, then echoes. */
async function namedServer(name: string): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => sockets.delete(socket));
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const closeServer = () => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  });
  onCleanup(async () => {
    if (server.listening) await closeServer();
  });
  return { server, port: (server.address() as { port: number }).port, sockets };
}

function closeServer(target: { server: Server; sockets: Set<Socket> }): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const socket of target.sockets) socket.destroy();
    target.server.close(() => resolve());
  });
}

/** Connects to `port`; resolves with the first line it receives, or undefined when the socket closes first. */
async function greeting(port: number): Promise<{ socket: Socket; name: string | undefined }> {
  const socket = connect({ host: '127.0.0.1', port });
  onCleanup(() => {
    socket.destroy();
  });
  socket.on('error', () => {});
  const name = await within(new Promise<string | undefined>((resolve) => {
    let text = '';
    socket.on('data', (data: Buffer) => {
      text += data.toString();
      if (text.includes('\n')) resolve(text.split('\n')[0]);
    });
    socket.once('close', () => resolve(undefined));
  }), 5000, 'greeting');
  return { socket, name };
}

describe('cluster harness: balancer', () => {
  it('sends connections round robin, skips a node that refuses, honours setLive, and destroys what no node takes', async () => {
    const servers = await Promise.all(['n1', 'n2', 'n3'].map(async (nodeId) => ({ nodeId, ...(await namedServer(nodeId)) })));
    const balancer = await startBalancer(servers);
    const heard: Route[] = [];
    balancer.on('route', (route: Route) => heard.push(route));

    const names: Array<string | undefined> = [];
    for (let i = 0; i < 4; i++) names.push((await greeting(balancer.port)).name);
    expect(names).toEqual(['n1', 'n2', 'n3', 'n1']);
    expect(balancer.routedTo()).toEqual(names);
    expect(heard).toEqual(balancer.routes);

    // n2 is gone but still in the rotation: its turn falls to the next node.
    await closeServer(servers[1] as (typeof servers)[number]);
    const afterDeath: Array<string | undefined> = [];
    for (let i = 0; i < 3; i++) afterDeath.push((await greeting(balancer.port)).name);
    expect(afterDeath).toEqual(['n3', 'n1', 'n3']);

    balancer.setLive('n1', false);
    for (let i = 0; i < 2; i++) expect((await greeting(balancer.port)).name).toBe('n3');

    balancer.setLive('n1', true);
    await closeServer(servers[0] as (typeof servers)[number]);
    await closeServer(servers[2] as (typeof servers)[number]);
    const routed = balancer.routes.length;
    expect((await greeting(balancer.port)).name).toBeUndefined();
    expect(balancer.routes.length).toBe(routed);
  });

  it('pipes both ways, and a node closing its side closes the client side', async () => {
    const target = await namedServer('n1');
    const balancer = await startBalancer([{ nodeId: 'n1', port: target.port }]);
    const { socket } = await greeting(balancer.port);
    const echoed = new Promise<string>((resolve) => socket.on('data', (data: Buffer) => {
      if (data.toString().includes('ping')) resolve(data.toString());
    }));
    socket.write('ping');
    expect(await within(echoed, 5000, 'echo')).toContain('ping');

    const closed = once(socket, 'close');
    for (const serverSide of target.sockets) serverSide.destroy();
    await within(closed, 5000, 'client side closed');
  });
});

describe('cluster harness: Redis', () => {
  it('deletes every key of a prefix and nothing else', async (ctx) => {
    await requireRedis(ctx);
    const prefix = testPrefix();
    const neighbour = testPrefix();
    const redis = new Redis(redisUrl(), { lazyConnect: true });
    redis.on('error', () => {});
    onCleanup(() => {
      redis.disconnect();
    });
    await redis.connect();
    const pipeline = redis.pipeline();
    for (let i = 0; i < 1200; i++) pipeline.set(`${prefix}key:${i}`, 'x');
    pipeline.set(`${neighbour}key`, 'y');
    await pipeline.exec();

    expect(await cleanupPrefix(prefix)).toBe(1200);
    expect(await keysUnder(prefix)).toEqual([]);
    expect(await keysUnder(neighbour)).toEqual([`${neighbour}key`]);
  });

  it('the Redis proxy cuts every connection, refuses new ones while cut, and accepts again after', async (ctx) => {
    await requireRedis(ctx);
    const prefix = testPrefix();
    const proxy = await startRedisProxy();
    const redis = new Redis(proxy.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    onCleanup(() => {
      redis.disconnect();
    });
    await redis.connect();
    await redis.set(`${prefix}through-proxy`, '1');
    expect(await redis.get(`${prefix}through-proxy`)).toBe('1');

    const dropped = once(redis, 'close');
    const back = proxy.cut(500);
    expect(proxy.isCut).toBe(true);
    await within(dropped, 5000, 'the client saw its connection cut');
    const { name } = await greeting(proxy.port);
    expect(name).toBeUndefined();
    expect(proxy.refused).toBe(1);

    await within(back, 5000, 'the cut ended');
    expect(proxy.isCut).toBe(false);
    const again = new Redis(proxy.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    again.on('error', () => {});
    onCleanup(() => {
      again.disconnect();
    });
    await again.connect();
    expect(await again.get(`${prefix}through-proxy`)).toBe('1');
  });
});
