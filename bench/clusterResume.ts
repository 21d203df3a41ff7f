// Case 'cluster-resume': how long an upload stands still when its node dies. Three cluster
// nodes (`upload-hub serve --no-processing` from dist/, one data directory, a Redis key prefix
// of the run) behind a round-robin TCP balancer in the bench process. Per round: one
// UploadClient (ws) starts an upload through the balancer at 32 MiB/s; once 4 MiB are
// acknowledged, and after a delay that spreads a run's kills evenly over one lease renewal
// period, the node its connection went to is SIGKILLed. The client reconnects through the
// balancer (the dead node refuses, so another takes it) and resumes there once the dead node
// counts as dead: its liveness key (refreshed every 500 ms, min(2 s, TTL) to live) or, if that
// lasts longer, the upload's lease has run out. Timed from the SIGKILL: the new connection reaching a node, the upload
// attached there, and the first chunk accepted there (the committed offset grows again). Then
// the upload is cancelled and a fresh node (a new id, started during the round) takes the dead
// one's place in the balancer, so three stay up.
//
// Baseline: LEASE_TTL_MS 1500 (what the tests use); subject: the default, 5000. Both the lease's
// and the liveness key's PTTL are read from Redis just before the kill; the sooner of the two
// is when another node may take the upload, so `takeover allowed -> first chunk accepted` is
// what the failover itself costs.
// Kills are pooled over the runs of a side (killsPerRun each; 21 over the default 3 runs) and
// their p50/p99 printed after each run.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChunkSource } from '../client/sources.js';
import { toHubError } from '../shared/errors.js';
import { repeatedSource } from './hubWs.js';
import { TcpBalancer, type Route } from './lib/clusterBalancer.js';
import { observedClient } from './lib/clusterClient.js';
import { NodeGroup } from './lib/clusterGroup.js';
import type { HubNode } from './lib/clusterNodes.js';
import { aliveRemainingMs, assertRedis, leaseRemainingMs } from './lib/clusterRedis.js';
import { within } from './lib/loadTally.js';
import { MiB } from './lib/sizes.js';
import { quantile } from './lib/stats.js';
import { registerCase, type Result } from './registry.js';

export const CLUSTER_RESUME_CASE = 'cluster-resume';

export const CLUSTER_RESUME = {
  nodes: 3,
  /** Kills per measured run of each side; the default 3 runs make 21. */
  killsPerRun: 7,
  /** Large enough to be still running when the first chunk lands on the new node. */
  uploadBytes: 1024 * MiB,
  /** Acknowledged before the kill phase starts: the upload is under way. */
  killAfterBytes: 4 * MiB,
  /**
   * The client's pace, as from a client on a real network rather than loopback: the prefix the
   * new node rehashes on takeover stays tens of MiB whatever the kill's delay, not hundreds.
   */
  bytesPerSecond: 32 * MiB,
  shortLeaseTtlMs: 1_500,
  defaultLeaseTtlMs: 5_000,
  connectTimeoutMs: 30_000,
  /** A round's wait for the resume, past the lease TTL. */
  resumeSlackMs: 20_000,
  cancelTimeoutMs: 10_000,
};

const FIGURES = {
  reconnected: 'kill -> new connection at a node p50',
  attached: 'kill -> attached on the new node p50',
  acceptedP50: 'kill -> first chunk accepted p50',
  acceptedP99: 'kill -> first chunk accepted p99',
  leaseLeft: 'lease left at the kill p50',
  aliveLeft: 'liveness key left at the kill p50',
  beyondLease: 'takeover allowed -> first chunk accepted p50',
  beyondLeaseP99: 'takeover allowed -> first chunk accepted p99',
  failed: 'rounds failed',
} as const;

/** From the moment another node may take the upload (the sooner of the two keys' ends) to the first chunk accepted. */
function pastTakeover(kill: Kill): number {
  return kill.acceptedMs - Math.min(kill.leaseLeftMs, kill.aliveLeftMs);
}

interface Kill {
  /** The dead holder's lease had this long to run at the kill (its PTTL just before). */
  leaseLeftMs: number;
  /** The dead holder's liveness key had this long to live at the kill. */
  aliveLeftMs: number;
  reconnectedMs: number;
  attachedMs: number;
  acceptedMs: number;
  victim: string;
  successor: string;
}

/** Every kill of a side so far, over its runs. */
const pooled = new Map<number, Kill[]>();

/** The bench's bytes, each read held back until the pace allows it (counted from the first read). */
function pacedSource(size: number, bytesPerSecond: number): ChunkSource {
  const bytes = repeatedSource(size);
  let startedAt: number | undefined;
  let firstOffset = 0;
  return {
    size,
    read: async (offset, length) => {
      if (startedAt === undefined) {
        startedAt = performance.now();
        firstOffset = offset;
      }
      const due = startedAt + (1000 * (offset - firstOffset)) / bytesPerSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      return bytes.read(offset, length);
    },
  };
}

/** Resolves with the first value `arm` passes to its callback; `arm` returns its unsubscribe. */
function firstOf<T>(arm: (found: (value: T) => void) => () => void): { promise: Promise<T>; off: () => void } {
  let off = (): void => undefined;
  const promise = new Promise<T>((resolve) => {
    off = arm((value) => {
      off();
      resolve(value);
    });
  });
  return { promise, off: () => off() };
}

/** One round: an upload through the balancer, its node killed, the time to the resume elsewhere. */
async function killRound(group: NodeGroup, balancer: TcpBalancer, round: number, leaseTtlMs: number): Promise<{ kill: Kill; replacement: Promise<HubNode>; slot: number }> {
  let killedAt: number | undefined;
  /** Connections opened after the kill, by index: only their acks count as the resume. */
  let firstAfterKill = Number.POSITIVE_INFINITY;
  let beforeKillBytes = 0;
  let onBytesBeforeKill: (() => void) | undefined;
  let onAcceptedAfterKill: ((at: number) => void) | undefined;
  const client = observedClient({ url: balancer.url }, {
    opened: (index) => {
      if (killedAt !== undefined && firstAfterKill === Number.POSITIVE_INFINITY) firstAfterKill = index;
    },
    answered: (index, reply, bytes, _sentAt, at) => {
      if (reply.type !== 'ack' || reply.status !== 'accepted') return;
      if (index >= firstAfterKill) onAcceptedAfterKill?.(at);
      else if (killedAt === undefined) {
        beforeKillBytes += bytes;
        if (beforeKillBytes >= CLUSTER_RESUME.killAfterBytes) onBytesBeforeKill?.();
      }
    },
  });
  try {
    const routesBefore = balancer.routes.length;
    await within(client.ping(), CLUSTER_RESUME.connectTimeoutMs, 'connect through the balancer');
    const route = balancer.routes[routesBefore];
    if (route === undefined) throw new Error('the ping was answered, but the balancer routed no connection');
    const slot = group.nodes.findIndex((node) => node.nodeId === route.nodeId);
    const victim = group.nodes[slot];
    if (victim === undefined) throw new Error(`the connection went to ${route.nodeId}, not a node of the group`);

    const underWay = new Promise<void>((resolve) => (onBytesBeforeKill = resolve));
    const handle = client.upload(pacedSource(CLUSTER_RESUME.uploadBytes, CLUSTER_RESUME.bytesPerSecond), { name: `resume-${round}.bin` });
    const failed = handle.done.then(
      () => {
        throw new Error('the upload finished before the resume was seen: make it larger');
      },
      (error: unknown) => {
        throw new Error(`the upload failed: ${toHubError(error, 'ERR_INTERNAL').code} ${(error as Error).message}`);
      },
    );
    failed.catch(() => undefined); // raced below; after the round, its end (the cancel) is nobody's business
    await within(Promise.race([underWay, failed]), CLUSTER_RESUME.connectTimeoutMs, `${CLUSTER_RESUME.killAfterBytes / MiB} MiB acknowledged`);

    const rerouted = firstOf<Route>((found) => {
      const listener = (next: Route): void => found(next);
      balancer.on('route', listener);
      return () => balancer.off('route', listener);
    });
    const attached = firstOf<number>((found) => handle.on('attached', () => found(performance.now())));
    const accepted = new Promise<number>((resolve) => (onAcceptedAfterKill = resolve));
    // Where in the lease's renewal cycle the kill falls decides the wait: spread evenly over the
    // rounds across one renewal period (TTL/3), not always just after the lease was granted.
    await sleep(((round + 0.5) / CLUSTER_RESUME.killsPerRun) * (leaseTtlMs / 3));
    const uploadId = handle.id;
    if (uploadId === undefined || group.prefix === undefined) throw new Error('no upload id (or no Redis prefix) before the kill');
    const leaseLeftMs = await leaseRemainingMs(group.prefix, uploadId);
    if (leaseLeftMs === undefined) throw new Error(`upload ${uploadId} has no lease in Redis before the kill`);
    const aliveLeftMs = await aliveRemainingMs(group.prefix, victim.nodeId);
    if (aliveLeftMs === undefined) throw new Error(`node ${victim.nodeId} has no liveness key before the kill`);
    const leaseReadAt = performance.now();
    killedAt = performance.now();
    const dead = victim.kill();
    // The replacement starts now, beside the wait: it joins the rotation after the round.
    const replacement = dead.then(() => group.startReplacement(slot));
    replacement.catch(() => undefined); // the caller awaits it
    try {
      const acceptedAt = await within(Promise.race([accepted, failed]), leaseTtlMs + CLUSTER_RESUME.resumeSlackMs, 'first chunk accepted after the kill');
      // Both came before the accepted chunk: the bound only guards against a bug here.
      const [newRoute, attachedAt] = await within(Promise.all([rerouted.promise, attached.promise]), CLUSTER_RESUME.connectTimeoutMs, 'route and attached after the kill');
      await within(handle.cancel(), CLUSTER_RESUME.cancelTimeoutMs, 'cancel').catch(() => undefined);
      return {
        // The PTTL was read a moment before the kill: what was left of it at the kill.
        kill: { leaseLeftMs: leaseLeftMs - (killedAt - leaseReadAt), aliveLeftMs: aliveLeftMs - (killedAt - leaseReadAt), reconnectedMs: newRoute.at - killedAt, attachedMs: attachedAt - killedAt, acceptedMs: acceptedAt - killedAt, victim: victim.nodeId, successor: newRoute.nodeId },
        replacement,
        slot,
      };
    } catch (error) {
      rerouted.off();
      attached.off();
      // Still put a node in the dead one's place, so the next round has three.
      throw Object.assign(error as Error, { replacement, slot });
    }
  } finally {
    client.close();
  }
}

async function measureResume(leaseTtlMs: number, setLeaseTtl: boolean): Promise<Result> {
  await assertRedis();
  const group = await NodeGroup.start({ label: `cluster-resume-${leaseTtlMs}`, nodes: CLUSTER_RESUME.nodes, redis: true, leaseTtlMs: setLeaseTtl ? leaseTtlMs : undefined });
  let balancer: TcpBalancer | undefined;
  const kills: Kill[] = [];
  const failures: string[] = [];
  try {
    balancer = await TcpBalancer.listen(group.nodes.map((node, i) => ({ slot: `s${i}`, nodeId: node.nodeId, port: node.port })));
    for (let round = 0; round < CLUSTER_RESUME.killsPerRun; round++) {
      let replacement: Promise<HubNode> | undefined;
      let slot: number | undefined;
      try {
        const outcome = await killRound(group, balancer, round, leaseTtlMs);
        kills.push(outcome.kill);
        ({ replacement, slot } = outcome);
      } catch (error) {
        failures.push((error as Error).message.split('\n')[0] ?? 'unknown');
        ({ replacement, slot } = error as { replacement?: Promise<HubNode>; slot?: number });
      }
      if (replacement !== undefined && slot !== undefined) {
        const node = await replacement;
        group.replace(slot, node);
        balancer.setTarget(`s${slot}`, node.nodeId, node.port);
      }
    }
  } finally {
    await balancer?.close();
    await group.close();
  }

  const all = [...(pooled.get(leaseTtlMs) ?? []), ...kills];
  pooled.set(leaseTtlMs, all);
  const acceptedAll = all.map((kill) => kill.acceptedMs);
  const beyondAll = all.map(pastTakeover);
  process.stderr.write(
    `  LEASE_TTL_MS ${leaseTtlMs}: kill -> first chunk accepted (ms) ${kills.map((kill) => kill.acceptedMs.toFixed(0)).join(', ')}; ` +
      `victim -> successor ${kills.map((kill) => `${kill.victim}->${kill.successor}`).join(' ')}` +
      `${failures.length === 0 ? '' : `; FAILED rounds: ${failures.join(' | ')}`}\n` +
      (acceptedAll.length === 0
        ? ''
        : `  LEASE_TTL_MS ${leaseTtlMs} pooled over ${acceptedAll.length} kills so far: kill -> first chunk accepted p50 ${quantile(acceptedAll, 0.5).toFixed(0)} ms, ` +
          `p99 ${quantile(acceptedAll, 0.99).toFixed(0)} ms, min ${Math.min(...acceptedAll).toFixed(0)}, max ${Math.max(...acceptedAll).toFixed(0)}; ` +
          `takeover allowed -> first chunk accepted p50 ${quantile(beyondAll, 0.5).toFixed(0)} ms, p99 ${quantile(beyondAll, 0.99).toFixed(0)} ms\n`),
  );
  const median = (pick: (kill: Kill) => number): number => quantile(kills.map(pick), 0.5);
  return {
    latencyMs:
      kills.length === 0
        ? {}
        : {
            [FIGURES.reconnected]: median((kill) => kill.reconnectedMs),
            [FIGURES.attached]: median((kill) => kill.attachedMs),
            [FIGURES.acceptedP50]: median((kill) => kill.acceptedMs),
            [FIGURES.acceptedP99]: quantile(kills.map((kill) => kill.acceptedMs), 0.99),
            [FIGURES.leaseLeft]: median((kill) => kill.leaseLeftMs),
            [FIGURES.aliveLeft]: median((kill) => kill.aliveLeftMs),
            [FIGURES.beyondLease]: median(pastTakeover),
            [FIGURES.beyondLeaseP99]: quantile(kills.map(pastTakeover), 0.99),
          },
    counts: { [FIGURES.failed]: failures.length },
  };
}

registerCase({
  name: CLUSTER_RESUME_CASE,
  baseline: () => measureResume(CLUSTER_RESUME.shortLeaseTtlMs, true),
  subject: () => measureResume(CLUSTER_RESUME.defaultLeaseTtlMs, false),
  targets: { countMax: { [FIGURES.failed]: 0 } },
  notes: [
    `${CLUSTER_RESUME.nodes} cluster nodes (\`upload-hub serve --no-processing\`, dist/, one data directory, REDIS_URL with a key prefix of the run) behind a round-robin TCP balancer; ` +
      `baseline LEASE_TTL_MS ${CLUSTER_RESUME.shortLeaseTtlMs}, subject the default (${CLUSTER_RESUME.defaultLeaseTtlMs})`,
    `per round: an UploadClient (ws) uploads through the balancer at ${CLUSTER_RESUME.bytesPerSecond / MiB} MiB/s; after ${CLUSTER_RESUME.killAfterBytes / MiB} MiB acknowledged ` +
      'and a delay spreading the run\'s kills evenly over one renewal period (TTL/3), its node is SIGKILLed; ' +
      'times from the kill to the new connection reaching a live node, to `attached` there, and to the first chunk accepted on it; then cancel, and a fresh node takes the dead one\'s place',
    `${CLUSTER_RESUME.killsPerRun} kills per run and side; p50/p99 in the table are per run (medians over runs), the pooled ones over every kill of the side are printed after each run`,
    'another node may take the upload once the dead holder\'s liveness key (refreshed every 500 ms, min(2 s, TTL) to live) or its lease runs out, whichever is sooner; ' +
      '`lease left`, `liveness key left` = their PTTLs in Redis at the kill; `takeover allowed -> first chunk accepted` = what the failover costs past that: the takeover poll (<= 200 ms), rehash of the committed prefix, first ack',
  ],
});
