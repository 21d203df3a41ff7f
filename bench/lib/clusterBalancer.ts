// A round-robin TCP balancer in the bench process, in front of hub nodes: each new connection
// goes to the next node; a node that refuses (killed) is skipped for the next, as a proxy with
// passive health checks does. Records where every connection went, and when.
import { EventEmitter, once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** How long a node may take to accept a connection before the next one is tried, in ms. */
const UPSTREAM_CONNECT_MS = 2_000;

export interface BalancerTarget {
  /** A slot keeps its place in the rotation while its node is replaced (setTarget). */
  slot: string;
  nodeId: string;
  port: number;
}

export interface Route {
  slot: string;
  nodeId: string;
  /** performance.now() when the node took the connection. */
  at: number;
}

/** Pipes both ways with backpressure; either side closing or failing destroys both. */
function splice(a: Socket, b: Socket): void {
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
  private readonly targets: BalancerTarget[];
  private next = 0;

  private constructor(private readonly server: Server, readonly port: number, targets: readonly BalancerTarget[]) {
    super();
    this.url = `http://127.0.0.1:${port}`;
    this.targets = targets.map((target) => ({ ...target }));
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

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
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

  private async connectNext(client: Socket): Promise<{ upstream: Socket; target: BalancerTarget } | undefined> {
    const count = this.targets.length;
    const start = this.next;
    for (let i = 0; i < count && !client.destroyed; i++) {
      const index = (start + i) % count;
      const target = { ...(this.targets[index] as BalancerTarget) };
      const upstream = this.track(connect({ host: '127.0.0.1', port: target.port }));
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
