// A round-robin TCP balancer in front of hub nodes, for the cluster benchmarks and the cluster
// tests (test/cluster.ts): each new connection goes to the next live node; a node that refuses
// (killed) is skipped for the next, as a proxy with passive health checks does. Bytes are piped
// both ways (nothing buffered past the sockets' high-water marks); either side closing or
// failing destroys both. Records where every connection went, and when.
import { EventEmitter, once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** How long a node may take to accept a connection before the next one is tried, in ms. */
const UPSTREAM_CONNECT_MS = 2_000;

export interface BalancerTarget {
  /** A slot keeps its place in the rotation while its node is replaced (setTarget). Default: the nodeId. */
  slot?: string;
  nodeId: string;
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
}

export interface Route {
  slot: string;
  nodeId: string;
  /** performance.now() when the node took the connection. */
  at: number;
}

interface Slot {
  slot: string;
  nodeId: string;
  port: number;
  host: string;
  /** Out of the rotation (setLive false): skipped, its open connections stay. */
  live: boolean;
}

/** Pipes both ways with backpressure; either side closing or failing destroys both. */
export function splice(a: Socket, b: Socket): void {
  const closeBoth = (): void => {
    a.destroy();
    b.destroy();
  };
  for (const socket of [a, b]) {
    socket.on('error', closeBoth);
    socket.on('close', closeBoth);
  }
  a.pipe(b);
  b.pipe(a);
}

/** Emits 'route' (Route) for every connection a node took. */
export class TcpBalancer extends EventEmitter {
  readonly url: string;
  readonly routes: Route[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly targets: Slot[];
  private next = 0;
  private closing: Promise<void> | undefined;

  private constructor(private readonly server: Server, readonly port: number, targets: readonly BalancerTarget[]) {
    super();
    this.url = `http://127.0.0.1:${port}`;
    this.targets = targets.map((target) => ({ slot: target.slot ?? target.nodeId, nodeId: target.nodeId, port: target.port, host: target.host ?? '127.0.0.1', live: true }));
    server.on('connection', (client) => this.accept(client));
  }

  static async listen(targets: readonly BalancerTarget[]): Promise<TcpBalancer> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new TcpBalancer(server, (server.address() as { port: number }).port, targets);
  }

  /** Puts a (restarted) node in a slot's place; connections already open stay where they are. */
  setTarget(slot: string, nodeId: string, port: number): void {
    const target = this.targets.find((candidate) => candidate.slot === slot);
    if (target === undefined) throw new Error(`balancer: no slot ${slot}`);
    target.nodeId = nodeId;
    target.port = port;
  }

  /** Takes a node out of the rotation (false) or puts it back (true); its open connections stay. */
  setLive(nodeId: string, live: boolean): void {
    const target = this.targets.find((candidate) => candidate.nodeId === nodeId);
    if (target === undefined) throw new Error(`balancer: no node ${nodeId}`);
    target.live = live;
  }

  /** The nodes connections went to, in order. */
  routedTo(): string[] {
    return this.routes.map((route) => route.nodeId);
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
    return this.closing;
  }

  private track(socket: Socket): Socket {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }

  private accept(client: Socket): void {
    this.track(client);
    // Until a node takes it, the client's bytes wait in its socket (no 'data' listener yet).
    client.on('error', () => client.destroy());
    void this.connectNext(client).then((taken) => {
      if (taken === undefined || client.destroyed) {
        taken?.upstream.destroy();
        client.destroy();
        return;
      }
      splice(client, taken.upstream);
      const route: Route = { slot: taken.target.slot, nodeId: taken.target.nodeId, at: performance.now() };
      this.routes.push(route);
      this.emit('route', route);
    });
  }

  /** Tries the live targets from the next in turn; undefined when none took the connection. */
  private async connectNext(client: Socket): Promise<{ upstream: Socket; target: Slot } | undefined> {
    const count = this.targets.length;
    const start = this.next;
    for (let i = 0; i < count && !client.destroyed; i++) {
      const index = (start + i) % count;
      const target = { ...(this.targets[index] as Slot) };
      if (!target.live) continue;
      const upstream = this.track(connect({ host: target.host, port: target.port }));
      upstream.on('error', () => undefined); // 'close' follows, and says it
      const connected = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), UPSTREAM_CONNECT_MS);
        upstream.once('connect', () => {
          clearTimeout(timer);
          resolve(true);
        });
        upstream.once('close', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (connected && !client.destroyed) {
        // The rotation goes on after the node that took it, so a dead node's turn is not given twice to one neighbour.
        this.next = (index + 1) % count;
        return { upstream, target };
      }
      upstream.destroy();
    }
    return undefined;
  }
}
