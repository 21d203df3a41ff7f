/**
 * A slow link for tests: a TCP proxy on 127.0.0.1:0 that forwards to a target and paces each
 * direction to a rate with a token bucket on a timer. Like a real bottleneck it holds only a
 * small queue; past it, it stops reading, so the backlog backs up into TCP and the sender's
 * socket buffer, where a real slow uplink keeps it. Everything it opens is closed after the test.
 */
import { connect, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { onCleanup } from './helpers.js';

export interface ThrottledProxy {
  /** http://127.0.0.1:port of the proxy: give it to a client in place of the target's url. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** How often the bucket is refilled and the queue written out, in ms. */
const TICK_MS = 10;
/** The bottleneck's own buffer, in bytes; past it the proxy stops reading. */
const QUEUE_BYTES = 64 * 1024;

/** One direction of one connection: `from`'s bytes to `to`, at most `bytesPerSecond`. */
class PacedPipe {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private allowance = 0;
  private ended = false;

  constructor(private readonly from: Socket, private readonly to: Socket, private readonly bytesPerSecond: number) {
    from.on('data', (data: Buffer) => {
      this.queue.push(data);
      this.queued += data.byteLength;
      if (this.queued >= QUEUE_BYTES) from.pause();
    });
    from.on('end', () => (this.ended = true));
  }

  /** Writes what the rate allows for `elapsedMs`. */
  tick(elapsedMs: number): void {
    // A timer that fired late may catch up, but never by more than a few ticks in one burst.
    this.allowance = Math.min(this.allowance + (this.bytesPerSecond * elapsedMs) / 1000, (this.bytesPerSecond * TICK_MS * 4) / 1000);
    while (this.queue.length > 0 && this.allowance >= 1 && !this.to.destroyed) {
      const head = this.queue[0] as Buffer;
      const take = Math.min(head.byteLength, Math.floor(this.allowance));
      this.to.write(head.subarray(0, take));
      this.allowance -= take;
      this.queued -= take;
      if (take === head.byteLength) this.queue.shift();
      else this.queue[0] = head.subarray(take);
    }
    if (this.queued < QUEUE_BYTES && this.from.isPaused() && !this.from.destroyed) this.from.resume();
    if (this.ended && this.queue.length === 0 && !this.to.writableEnded) this.to.end();
  }
}

/** Starts a proxy to `targetUrl` (http://host:port) pacing each direction to `bytesPerSecond`. */
export async function startThrottledProxy(targetUrl: string, bytesPerSecond: number): Promise<ThrottledProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const timers = new Set<ReturnType<typeof setInterval>>();

  const server = createServer((client) => {
    const upstream = connect({ host: target.hostname, port: Number(target.port) });
    sockets.add(client);
    sockets.add(upstream);
    const pipes = [new PacedPipe(client, upstream, bytesPerSecond), new PacedPipe(upstream, client, bytesPerSecond)];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      for (const pipe of pipes) pipe.tick(now - last);
      last = now;
    }, TICK_MS);
    timers.add(timer);
    // Either side failing or closing ends the whole connection, as a cut link would.
    const closeBoth = () => {
      clearInterval(timer);
      timers.delete(timer);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', closeBoth);
      socket.on('close', closeBoth);
    }
  });
  server.on('error', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const timer of timers) clearInterval(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await closed;
    })();
    return closing;
  };
  onCleanup(close);
  return { url: `http://127.0.0.1:${port}`, port, close };
}
