// Cases 'cluster-throughput' and 'cluster-throughput-redis-1node': what scale-out on Redis does
// to aggregate throughput. 60 UploadClients (ws) upload 16 MiB each at once; the baseline is one
// embedded node (no Redis, the default), the subjects three cluster nodes (clients spread over
// them round robin, each straight to its node) and one cluster node alone. All nodes are
// `upload-hub serve --no-processing` from dist/ in child processes on one temp data directory;
// cluster nodes share a Redis key prefix of their own, deleted after the run.
//
// On a 2-core machine three nodes cannot be 3x one: per run the CPU of each kind of process
// (nodes, the bench's clients, Redis) is printed, and with --cpu-prof-dir where each kind's
// main thread spends it (top functions by self time).
import { toHubError } from '../shared/errors.js';
import { repeatedSource } from './hubWs.js';
import { ChunkCount, observedClient } from './lib/clusterClient.js';
import { NodeGroup, cpuTotalsBetween } from './lib/clusterGroup.js';
import { monotonicUs, profileThisProcess, readProfiles, summarizeSelfTime, type ProfileWindow } from './lib/clusterProfile.js';
import { assertRedis } from './lib/clusterRedis.js';
import { within } from './lib/loadTally.js';
import { MiB } from './lib/sizes.js';
import { registerCase, type BenchContext, type Result } from './registry.js';
import type { CpuProfile } from './lib/cpuProfile.js';

export const CLUSTER_THROUGHPUT_CASE = 'cluster-throughput';
export const CLUSTER_THROUGHPUT_REDIS_CASE = 'cluster-throughput-redis-1node';

export const CLUSTER_THROUGHPUT = {
  uploads: 60,
  uploadBytes: 16 * MiB,
  clusterNodes: 3,
  connectTimeoutMs: 30_000,
  /** From the first byte; a run that takes longer stops and counts the rest as unfinished. */
  deadlineMs: 120_000,
  profileTop: 12,
};

const FIGURES = { errors: 'errors', unfinished: 'unfinished at deadline' } as const;

interface Setup {
  label: string;
  nodes: number;
  redis: boolean;
}

const SETUPS = {
  single: { label: 'one node, no Redis', nodes: 1, redis: false },
  cluster: { label: `${CLUSTER_THROUGHPUT.clusterNodes} nodes on Redis`, nodes: CLUSTER_THROUGHPUT.clusterNodes, redis: true },
  redisSingle: { label: 'one node on Redis', nodes: 1, redis: true },
} satisfies Record<string, Setup>;

function slug(label: string): string {
  return label.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
}

async function measureSpread(setup: Setup, context: BenchContext): Promise<Result> {
  if (setup.redis) await assertRedis();
  const group = await NodeGroup.start({ label: `cluster-tp-${slug(setup.label)}`, nodes: setup.nodes, redis: setup.redis, cpuProfileDir: context.cpuProfileDir });
  const count = new ChunkCount();
  const { uploads, uploadBytes } = CLUSTER_THROUGHPUT;
  const clients = Array.from({ length: uploads }, (_unused, i) => observedClient({ url: (group.nodes[i % group.nodes.length] as (typeof group.nodes)[number]).url }, count.observer));
  let clientProfile: CpuProfile | undefined;
  let transfer: { seconds: number; completed: number; clientCpuSec: number; peakRssMiB: number; cpu: ReturnType<typeof cpuTotalsBetween>; measuredSpan: ProfileWindow };
  let deadline: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.all(clients.map((client) => within(client.ping(), CLUSTER_THROUGHPUT.connectTimeoutMs, 'connect')));
    // Beside the nodes' folder, not in it: that one is read back as the nodes' profiles.
    const stopProfile = group.profileDir === undefined ? undefined : await profileThisProcess(`${group.profileDir}-bench-clients.cpuprofile`);
    const cpuBefore = await group.cpu();
    const clientBefore = process.cpuUsage();
    const started = performance.now();
    const fromUs = monotonicUs();
    let completed = 0;
    let lastDone = started;
    const all = Promise.all(clients.map((client, index) =>
      client.upload(repeatedSource(uploadBytes), { name: `cluster-${index}.bin` }).done.then(
        () => {
          completed++;
          lastDone = performance.now();
        },
        (error: unknown) => count.error(`upload: ${toHubError(error, 'ERR_INTERNAL').code}`),
      ),
    ));
    const finished = await Promise.race([all.then(() => true), new Promise<false>((resolve) => (deadline = setTimeout(() => resolve(false), CLUSTER_THROUGHPUT.deadlineMs)))]);
    const seconds = ((finished ? lastDone : performance.now()) - started) / 1000;
    const measuredSpan = { fromUs, toUs: fromUs + seconds * 1e6 };
    const clientCpu = process.cpuUsage(clientBefore);
    const cpu = cpuTotalsBetween(cpuBefore, await group.cpu());
    clientProfile = await stopProfile?.();
    transfer = { seconds, completed, clientCpuSec: (clientCpu.user + clientCpu.system) / 1e6, peakRssMiB: await group.peakRssMiB(), cpu, measuredSpan };
  } finally {
    clearTimeout(deadline);
    for (const client of clients) client.close();
    await group.close();
  }

  const { seconds, completed, clientCpuSec, cpu, peakRssMiB, measuredSpan } = transfer;
  const nodeCpuSec = cpu.nodes.userSec + cpu.nodes.sysSec;
  const allCpuSec = nodeCpuSec + clientCpuSec + (cpu.redisSec ?? 0);
  const payloadMiB = (completed * uploadBytes) / MiB;
  process.stderr.write(
    `  ${setup.label}: ${completed}/${uploads} uploads in ${seconds.toFixed(2)} s = ${(payloadMiB / seconds).toFixed(0)} MiB/s; ` +
      `${count.accepted} chunks accepted; CPU s: nodes ${nodeCpuSec.toFixed(2)} (user ${cpu.nodes.userSec.toFixed(2)}, sys ${cpu.nodes.sysSec.toFixed(2)}), ` +
      `bench clients ${clientCpuSec.toFixed(2)}${cpu.redisSec === undefined ? '' : `, Redis ${cpu.redisSec.toFixed(2)} (whole server)`}; ` +
      `together ${allCpuSec.toFixed(2)} s = ${((100 * allCpuSec) / seconds).toFixed(0)}% of one core; errors: ${count.describeErrors()}\n`,
  );
  if (group.profileDir !== undefined) {
    const nodeProfiles = await readProfiles(group.profileDir);
    process.stderr.write(`${summarizeSelfTime(`hub node process (${setup.label}), profiles in ${group.profileDir}`, nodeProfiles, CLUSTER_THROUGHPUT.profileTop, measuredSpan)}\n`);
    if (clientProfile !== undefined) process.stderr.write(`${summarizeSelfTime(`bench process (${uploads} UploadClients over ws)`, [clientProfile], CLUSTER_THROUGHPUT.profileTop, measuredSpan)}\n`);
  }
  return {
    mibPerSec: payloadMiB / seconds,
    serverUserCpuSec: cpu.nodes.userSec,
    serverSysCpuSec: cpu.nodes.sysSec,
    peakRssMiB,
    payloadMiB,
    clientCpuSec,
    counts: { [FIGURES.errors]: count.errorCount, [FIGURES.unfinished]: uploads - completed },
  };
}

const commonNotes = [
  `${CLUSTER_THROUGHPUT.uploads} x ${CLUSTER_THROUGHPUT.uploadBytes / MiB} MiB uploads at once, one UploadClient (ws) each, started together after every client connected; ` +
    'MiB/s = payload / time from the first byte to the last upload done',
  '`upload-hub serve --no-processing` from dist/ in child processes, one shared temp data directory, per-IP and per-principal limits off; ' +
    'cluster nodes on REDIS_URL (default redis://127.0.0.1:6379) with a key prefix of the run, deleted after it',
  'server CPU = all nodes together (user, sys: disk writes, sockets); client CPU = the bench process (all clients); Redis CPU per run above (the whole server)',
  'every process shares the same cores: with --cpu-prof-dir DIR each run prints the top functions by self time per kind of process',
];

const targets = { countMax: { [FIGURES.errors]: 0, [FIGURES.unfinished]: 0 } };

registerCase({
  name: CLUSTER_THROUGHPUT_CASE,
  baseline: (context) => measureSpread(SETUPS.single, context),
  subject: (context) => measureSpread(SETUPS.cluster, context),
  targets,
  notes: [
    `baseline: ${SETUPS.single.label} (the embedded default); subject: ${SETUPS.cluster.label}, client i straight to node i mod ${CLUSTER_THROUGHPUT.clusterNodes} (no balancer in the byte path)`,
    ...commonNotes,
  ],
});

registerCase({
  name: CLUSTER_THROUGHPUT_REDIS_CASE,
  baseline: (context) => measureSpread(SETUPS.single, context),
  subject: (context) => measureSpread(SETUPS.redisSingle, context),
  targets,
  notes: [`baseline: ${SETUPS.single.label} (the embedded default); subject: ${SETUPS.redisSingle.label}, every client to it`, ...commonNotes],
});
