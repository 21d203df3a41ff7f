// The nodes of one measured run, and everything they leave behind: one shared temp data
// directory, a Redis key prefix of their own (cluster nodes), CPU profiles when asked. close()
// stops the nodes, deletes the prefix's keys and the directory.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { cpuBetween, readCpu, readPeakRssMiB, type CpuSnapshot } from './proc.js';
import { benchPrefix, benchRedisUrl, deletePrefix, redisCpuSeconds } from './clusterRedis.js';
import { startHubNode, UNLIMITED_CLIENTS, type HubNode } from './clusterNodes.js';
import { makeBenchTempDir, removeBenchTempDir } from './tempDir.js';

export interface NodeGroupOptions {
  /** Names the temp directory and the profile folder. */
  label: string;
  nodes: number;
  /** Cluster nodes on Redis; false: the embedded single node (then `nodes` must be 1). */
  redis: boolean;
  /** LEASE_TTL_MS of cluster nodes; unset: the hub's default. */
  leaseTtlMs?: number | undefined;
  /** Write a V8 CPU profile of every node into a folder of its own under this one. */
  cpuProfileDir?: string | undefined;
  env?: Record<string, string> | undefined;
}

/** Writing the profile of a busy node after SIGTERM takes a while. */
const PROFILED_STOP_MS = 60_000;

export interface CpuTotals {
  nodes: CpuSnapshot;
  /** Redis server CPU (the whole server: other clients of the same Redis count too); undefined without Redis. */
  redisSec: number | undefined;
}

export class NodeGroup {
  readonly nodes: HubNode[] = [];
  /** Where this run's node profiles go (undefined unless profiling). */
  readonly profileDir: string | undefined;
  private restarts = 0;

  private constructor(
    private readonly options: NodeGroupOptions,
    readonly dataDir: string,
    readonly prefix: string | undefined,
  ) {
    this.profileDir = options.cpuProfileDir === undefined ? undefined : path.join(options.cpuProfileDir, `${options.label}-${Date.now()}`);
    if (this.profileDir !== undefined) mkdirSync(this.profileDir, { recursive: true });
  }

  static async start(options: NodeGroupOptions): Promise<NodeGroup> {
    if (!options.redis && options.nodes !== 1) throw new Error('nodes without Redis cannot share uploads: one embedded node only');
    const group = new NodeGroup(options, makeBenchTempDir(options.label), options.redis ? benchPrefix() : undefined);
    try {
      const started = await Promise.allSettled(Array.from({ length: options.nodes }, (_unused, i) => group.startNode(`n${i + 1}`)));
      for (const outcome of started) if (outcome.status === 'fulfilled') group.nodes.push(outcome.value);
      const failed = started.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      return group;
    } catch (error) {
      await group.close();
      throw error;
    }
  }

  /**
   * A node to take the place of the one at `index` (killed): same directory and prefix, a new
   * name (`n2-r1`: a node id is never reused) and port. Call replace() once it should count.
   */
  startReplacement(index: number): Promise<HubNode> {
    return this.startNode(`n${index + 1}-r${++this.restarts}`);
  }

  replace(index: number, node: HubNode): void {
    this.nodes[index] = node;
  }

  private startNode(nodeId: string): Promise<HubNode> {
    return startHubNode({
      nodeId,
      dataDir: this.dataDir,
      redis: this.prefix === undefined ? undefined : { url: benchRedisUrl(), prefix: this.prefix, leaseTtlMs: this.options.leaseTtlMs },
      nodeArgs: this.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', this.profileDir],
      env: { ...UNLIMITED_CLIENTS, ...this.options.env },
    });
  }

  async cpu(): Promise<CpuTotals> {
    const each = await Promise.all(this.nodes.map((node) => readCpu(node.pid)));
    return {
      nodes: each.reduce((sum, cpu) => ({ userSec: sum.userSec + cpu.userSec, sysSec: sum.sysSec + cpu.sysSec }), { userSec: 0, sysSec: 0 }),
      redisSec: this.prefix === undefined ? undefined : await redisCpuSeconds(),
    };
  }

  /** The largest VmHWM among the nodes, in MiB. */
  async peakRssMiB(): Promise<number> {
    return Math.max(...(await Promise.all(this.nodes.map((node) => readPeakRssMiB(node.pid)))));
  }

  /** Stops every node (SIGTERM: they drain), then deletes the prefix's keys and the directory. */
  async close(): Promise<void> {
    try {
      await Promise.all(this.nodes.map((node) => node.stop(this.profileDir === undefined ? undefined : PROFILED_STOP_MS)));
      if (this.prefix !== undefined) await deletePrefix(this.prefix);
    } finally {
      removeBenchTempDir(this.dataDir);
    }
  }
}

export function cpuTotalsBetween(before: CpuTotals, after: CpuTotals): CpuTotals {
  return {
    nodes: cpuBetween(before.nodes, after.nodes),
    redisSec: before.redisSec === undefined || after.redisSec === undefined ? undefined : after.redisSec - before.redisSec,
  };
}
