// Case 'cluster-chunk-cost': what Redis mode costs per chunk. One UploadClient (ws) uploads
// 256 MiB in 64 KiB chunks (4096 chunks, so per-chunk work outweighs per-byte work) to one
// node: the embedded default (baseline) or one cluster node on Redis (subject). Per chunk: the
// node's CPU (user + sys of every thread, from /proc over the upload), the wall time (upload
// time / chunks) and the ack time (chunk handed to the socket -> its ack, p50 and p99); for the
// subject also the Redis server's CPU per chunk (INFO cpu: the whole server).
import { toHubError } from '../shared/errors.js';
import { repeatedSource } from './hubWs.js';
import { ChunkCount, observedClient } from './lib/clusterClient.js';
import { NodeGroup, cpuTotalsBetween } from './lib/clusterGroup.js';
import { monotonicUs, readProfiles, summarizeSelfTime } from './lib/clusterProfile.js';
import { assertRedis } from './lib/clusterRedis.js';
import { within } from './lib/loadTally.js';
import { MiB } from './lib/sizes.js';
import { quantile } from './lib/stats.js';
import { registerCase, type BenchContext, type Result } from './registry.js';

export const CLUSTER_CHUNK_COST_CASE = 'cluster-chunk-cost';

export const CLUSTER_CHUNK_COST = {
  uploadBytes: 256 * MiB,
  chunkBytes: 64 * 1024,
  connectTimeoutMs: 30_000,
  deadlineMs: 120_000,
  profileTop: 12,
};

const FIGURES = {
  cpuPerChunk: 'node CPU per chunk',
  redisCpuPerChunk: 'Redis CPU per chunk',
  wallPerChunk: 'wall time per chunk',
  ackP50: 'chunk ack p50',
  ackP99: 'chunk ack p99',
  errors: 'errors',
  unfinished: 'upload not done',
} as const;

async function measureChunks(redis: boolean, context: BenchContext): Promise<Result> {
  if (redis) await assertRedis();
  const label = redis ? 'one node on Redis' : 'one node, no Redis';
  const group = await NodeGroup.start({ label: redis ? 'cluster-cc-redis' : 'cluster-cc-single', nodes: 1, redis, cpuProfileDir: context.cpuProfileDir });
  const count = new ChunkCount(true);
  const client = observedClient({ url: (group.nodes[0] as (typeof group.nodes)[number]).url }, count.observer);
  const { uploadBytes, chunkBytes } = CLUSTER_CHUNK_COST;
  let measured: { seconds: number; cpu: ReturnType<typeof cpuTotalsBetween>; peakRssMiB: number; done: boolean; fromUs: number };
  let deadline: ReturnType<typeof setTimeout> | undefined;
  try {
    await within(client.ping(), CLUSTER_CHUNK_COST.connectTimeoutMs, 'connect');
    const before = await group.cpu();
    const started = performance.now();
    const fromUs = monotonicUs();
    const upload = client.upload(repeatedSource(uploadBytes), { name: 'chunk-cost.bin', chunkSize: chunkBytes }).done.then(
      () => true,
      (error: unknown) => {
        count.error(`upload: ${toHubError(error, 'ERR_INTERNAL').code}`);
        return false;
      },
    );
    const done = await Promise.race([upload, new Promise<false>((resolve) => (deadline = setTimeout(() => resolve(false), CLUSTER_CHUNK_COST.deadlineMs)))]);
    const seconds = (performance.now() - started) / 1000;
    measured = { seconds, cpu: cpuTotalsBetween(before, await group.cpu()), peakRssMiB: await group.peakRssMiB(), done, fromUs };
  } finally {
    clearTimeout(deadline);
    client.close();
    await group.close();
  }

  const { seconds, cpu, peakRssMiB, done, fromUs } = measured;
  const chunks = Math.max(1, count.accepted);
  const nodeCpuSec = cpu.nodes.userSec + cpu.nodes.sysSec;
  const ms = (sec: number): number => (1000 * sec) / chunks;
  process.stderr.write(
    `  ${label}: ${count.accepted} chunks of ${(count.acceptedBytes / chunks / 1024).toFixed(0)} KiB in ${seconds.toFixed(2)} s${done ? '' : ' (not finished)'}; ` +
      `node CPU ${nodeCpuSec.toFixed(2)} s (user ${cpu.nodes.userSec.toFixed(2)}, sys ${cpu.nodes.sysSec.toFixed(2)}) = ${(1000 * ms(nodeCpuSec)).toFixed(0)} us/chunk` +
      `${cpu.redisSec === undefined ? '' : `; Redis ${cpu.redisSec.toFixed(2)} s = ${(1000 * ms(cpu.redisSec)).toFixed(0)} us/chunk (whole server)`}; errors: ${count.describeErrors()}\n`,
  );
  if (group.profileDir !== undefined) {
    process.stderr.write(`${summarizeSelfTime(`hub node process (${label}), profiles in ${group.profileDir}`, await readProfiles(group.profileDir), CLUSTER_CHUNK_COST.profileTop, { fromUs, toUs: fromUs + seconds * 1e6 })}\n`);
  }
  return {
    mibPerSec: count.acceptedBytes / MiB / seconds,
    serverUserCpuSec: cpu.nodes.userSec,
    serverSysCpuSec: cpu.nodes.sysSec,
    peakRssMiB,
    payloadMiB: uploadBytes / MiB,
    latencyMs: {
      [FIGURES.cpuPerChunk]: ms(nodeCpuSec),
      ...(cpu.redisSec === undefined ? {} : { [FIGURES.redisCpuPerChunk]: ms(cpu.redisSec) }),
      [FIGURES.wallPerChunk]: ms(seconds),
      ...(count.ackMs.length === 0 ? {} : { [FIGURES.ackP50]: quantile(count.ackMs, 0.5), [FIGURES.ackP99]: quantile(count.ackMs, 0.99) }),
    },
    counts: { [FIGURES.errors]: count.errorCount, [FIGURES.unfinished]: done ? 0 : 1 },
  };
}

registerCase({
  name: CLUSTER_CHUNK_COST_CASE,
  baseline: (context) => measureChunks(false, context),
  subject: (context) => measureChunks(true, context),
  targets: { countMax: { [FIGURES.errors]: 0, [FIGURES.unfinished]: 0 } },
  notes: [
    `one UploadClient (ws) uploads ${CLUSTER_CHUNK_COST.uploadBytes / MiB} MiB in ${CLUSTER_CHUNK_COST.chunkBytes / 1024} KiB chunks to one ` +
      '`upload-hub serve --no-processing` (dist/, child process); baseline: the embedded default, no Redis; subject: a cluster node on REDIS_URL, a key prefix of its own deleted after the run',
    'node CPU per chunk = user + sys of all the node\'s threads (/proc, over the upload) / chunks accepted; wall time per chunk = upload time / chunks; ' +
      'chunk ack = chunk handed to the socket -> its ack (several chunks are in flight, so it is not the per-chunk cost)',
    'Redis CPU per chunk (subject only): INFO cpu of the Redis server over the upload / chunks: the whole server, other clients of it included',
  ],
});
