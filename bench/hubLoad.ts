// Case 'load': the load proof. One hub process takes 500 connections each uploading 1 MiB
// through the project's UploadClient while 200 SSE watchers follow every upload; beside it, in
// the same run, 500 bare `ws` connections send the same bytes to baselines/wsServer.ts.
//
// Per side: throughput (MiB of finished uploads over the time to the last one), chunk-ack
// latency p50/p99 (per chunk, client side: handed to the socket -> its ack), the server's peak
// RSS and CPU (user+sys over the measured phase), the clients' CPU, errors (must be 0);
// for the hub also events/s delivered to the watchers, watcher reconnects and terminal events
// lost (must be 0: per watcher, every completed upload whose terminal event it never saw).
// Bounded in count and time: after LOAD.deadlineMs from the first byte the run stops by itself
// and reports what it has (uploads still running count as unfinished, which fails the case).
import { fileURLToPath } from 'node:url';
import { toHubError } from '../shared/errors.js';
import { NODE_CONNECTIONS } from '../client/node.js';
import { UploadClient, portableResolver } from '../client/UploadClient.js';
import type { ConnectionFactory } from '../client/connection/ClientConnection.js';
import { uploadUnderLoad } from './baselines/wsLoadClient.js';
import { measureHub, repeatedSource } from './hubWs.js';
import { LOAD_FIGURES, LoadTally, inBatches, within } from './lib/loadTally.js';
import { measureServer } from './lib/measure.js';
import { cpuBetween, openFilesLimit, readCpu } from './lib/proc.js';
import type { Transfer } from './lib/result.js';
import { MiB } from './lib/sizes.js';
import { WatcherProcess } from './lib/watcherProcess.js';
import { registerCase, type BenchContext, type Result } from './registry.js';

export const LOAD_CASE = 'load';

export const LOAD = {
  uploads: 500,
  uploadBytes: 1 * MiB,
  watchers: 200,
  /**
   * From the first byte to the last terminal event at every watcher. Runs took 30-165 s on the
   * shared 2-core machine this was written on, depending on what else ran there.
   */
  deadlineMs: 300_000,
  /** Opening connections and watchers, before the clock starts. */
  setupTimeoutMs: 60_000,
  connectBatch: 100,
  watcherBatch: 50,
  /**
   * The baseline's frames: about what the hub's flow control settles on for 500 uploads at once
   * (its first window is 64 KiB and chunks shrink so two fit in a window; the hub runs report
   * their mean chunk size, 24-39 KiB so far), so both sides pay the same per-frame costs.
   */
  baselineFrameBytes: 32 * 1024,
  baselineFramesInFlight: 2,
};

/** Sockets each side holds: every upload connection and watcher, and some to spare (files, the log pipe). */
const OPEN_FILES_NEEDED = LOAD.uploads + LOAD.watchers + 256;

/**
 * The Node UploadClient exactly as `upload-hub/client` builds it (NODE_CONNECTIONS' ws
 * connection), with each connection's sendChunk wrapped to time the chunk's reply.
 */
function timedClient(url: string, tally: LoadTally): UploadClient {
  const ws = NODE_CONNECTIONS.ws as ConnectionFactory;
  const timed: ConnectionFactory = (options) => {
    const connection = ws(options);
    const sendChunk = connection.sendChunk.bind(connection);
    connection.sendChunk = (uploadId, offset, data) => {
      const sentAt = performance.now();
      const reply = sendChunk(uploadId, offset, data);
      reply.then(
        (answer) => {
          if (answer.type === 'error') return tally.error(`chunk: ${answer.code}`);
          tally.ack(performance.now() - sentAt, data.byteLength);
          if (answer.status !== 'accepted') tally.note(`${answer.status} ack`);
        },
        () => undefined, // the connection's loss is counted once, by the client's `disconnected`
      );
      return reply;
    };
    return connection;
  };
  return new UploadClient({ url }, { connections: { ws: timed }, resolveSource: portableResolver });
}

/** Fails the run up front when a side cannot hold every socket, rather than count refused connections. */
async function assertOpenFiles(who: string, pid: number | 'self'): Promise<number> {
  const { soft, hard } = await openFilesLimit(pid);
  if (soft < OPEN_FILES_NEEDED) {
    throw new Error(
      `${who} may open only ${soft} files (hard limit ${hard}); ${LOAD.uploads} connections and ${LOAD.watchers} watchers need ${OPEN_FILES_NEEDED}: ` +
        'raise `ulimit -n` (and the hard limit) before `npm run bench`',
    );
  }
  return soft;
}

function deadlineAfter(ms: number): { reached: Promise<void>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reached = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { reached, clear: () => clearTimeout(timer) };
}

/** The client side of one hub run: uploads in this process, watchers in a child; the hub is the child `pid`. */
async function hubWorkload(url: string, startMeasuring: () => Promise<void>, pid: number): Promise<Transfer> {
  const hubFiles = await assertOpenFiles('the hub', pid);
  const tally = new LoadTally();
  const watchers = WatcherProcess.start();
  const clients = Array.from({ length: LOAD.uploads }, () => timedClient(url, tally));
  let stopped = false;
  let deadline: ReturnType<typeof deadlineAfter> | undefined;
  try {
    for (const failure of await watchers.open(`${url}/api/events`, LOAD.watchers, LOAD.watcherBatch, LOAD.setupTimeoutMs)) {
      tally.error(`watcher open: ${failure}`);
    }
    for (const outcome of await inBatches(clients, LOAD.connectBatch, (client) => within(client.ping(), LOAD.setupTimeoutMs, 'connect'))) {
      if (outcome.status === 'rejected') tally.error(`connect: ${toHubError(outcome.reason, 'ERR_CONNECTION_LOST').code}`);
    }
    for (const client of clients) {
      client.on('disconnected', (reason) => {
        if (!stopped) tally.error(`disconnected: ${reason.code}`);
      });
    }

    await startMeasuring();
    tally.startCpu();
    const watchersPid = watchers.pid as number;
    const watcherCpuBefore = await readCpu(watchersPid);
    deadline = deadlineAfter(LOAD.deadlineMs);
    const started = performance.now();
    let lastSettled = started;
    let settled = 0;
    const completed: string[] = [];
    const uploads = clients.map((client, index) =>
      client.upload(repeatedSource(LOAD.uploadBytes), { name: `load-${index}.bin` }).done.then(
        (result) => {
          completed.push(result.id);
        },
        (error: unknown) => {
          if (!stopped) tally.error(`upload: ${toHubError(error, 'ERR_INTERNAL').code}`);
        },
      ).finally(() => {
        settled++;
        lastSettled = performance.now();
      }),
    );
    const uploadsDone = await Promise.race([Promise.all(uploads).then(() => true), deadline.reached.then(() => false)]);
    const uploadSeconds = ((uploadsDone ? lastSettled : performance.now()) - started) / 1000;
    const watchersDone = await Promise.race([watchers.seen(completed).then(() => true), deadline.reached.then(() => false)]);
    const watchSeconds = (performance.now() - started) / 1000;
    stopped = true;
    tally.stopCpu();
    const watcherCpu = cpuBetween(watcherCpuBefore, await readCpu(watchersPid));
    const watcherCpuSec = watcherCpu.userSec + watcherCpu.sysSec;
    const report = await watchers.report(completed, LOAD.setupTimeoutMs);
    for (const [kind, count] of Object.entries(report.errors)) tally.error(kind, count);
    const uploadCpuSec = tally.cpuSeconds ?? 0;

    process.stderr.write(
      `  load hub: ${completed.length}/${LOAD.uploads} uploads completed in ${uploadSeconds.toFixed(2)} s${uploadsDone ? '' : ' (deadline hit)'}; ` +
        `${tally.chunks} chunks of ${tally.meanChunkKiB.toFixed(0)} KiB on average (${tally.describeNotes()}); ` +
        `${LOAD.watchers} watchers: ${report.frames} events in ${watchSeconds.toFixed(2)} s, ${report.lost} terminal events lost (${report.short} watchers short), ` +
        `${report.reconnects} reconnects${watchersDone ? '' : ' (deadline hit)'}; client CPU ${uploadCpuSec.toFixed(2)} s uploads + ${watcherCpuSec.toFixed(2)} s watchers; ` +
        `errors: ${tally.describeErrors()}; hub open files limit ${hubFiles}\n`,
    );
    const extra = tally.extra(
      { [LOAD_FIGURES.lost]: report.lost, [LOAD_FIGURES.unfinished]: LOAD.uploads - settled, [LOAD_FIGURES.reconnects]: report.reconnects },
      report.frames / watchSeconds,
    );
    return {
      payloadMiB: (completed.length * LOAD.uploadBytes) / MiB,
      seconds: uploadSeconds,
      extra: { ...extra, clientCpuSec: uploadCpuSec + watcherCpuSec },
    };
  } finally {
    stopped = true;
    deadline?.clear();
    for (const client of clients) client.close();
    await watchers.stop();
  }
}

/** One hub run; with --cpu-prof-dir the hub writes a V8 CPU profile there when it exits. */
async function measureHubUnderLoad(context: BenchContext): Promise<Result> {
  await assertOpenFiles('the bench process (it runs the clients)', 'self');
  const profile = context.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', context.cpuProfileDir];
  return measureHub(hubWorkload, {
    openFiles: OPEN_FILES_NEEDED,
    nodeArgs: profile,
    // Writing the profile of a long run takes a while after SIGTERM.
    ...(profile.length > 0 ? { stopTimeoutMs: 60_000 } : {}),
    env: {
      // Every client here is the one anonymous principal on 127.0.0.1: the per-IP and
      // per-principal abuse limits (issue 10) would refuse most of a load that, in the field,
      // comes from many addresses and principals.
      MAX_CONNECTIONS_PER_IP: String(2 * (LOAD.uploads + LOAD.watchers)),
      MAX_OPEN_UPLOADS_PER_PRINCIPAL: String(2 * LOAD.uploads),
      CREATES_PER_MINUTE_PER_PRINCIPAL: String(10 * LOAD.uploads),
    },
  });
}

async function measureBareWs(): Promise<Result> {
  await assertOpenFiles('the bench process (it runs the clients)', 'self');
  return measureServer(
    { file: fileURLToPath(new URL('./baselines/wsServer.ts', import.meta.url)), openFiles: OPEN_FILES_NEEDED },
    async (port, startMeasuring, pid) => {
      await assertOpenFiles('the bare ws server', pid);
      return uploadUnderLoad(
        {
          url: `ws://127.0.0.1:${port}/`,
          connections: LOAD.uploads,
          bytesPerConnection: LOAD.uploadBytes,
          frameBytes: LOAD.baselineFrameBytes,
          framesInFlight: LOAD.baselineFramesInFlight,
          connectBatch: LOAD.connectBatch,
          deadlineMs: LOAD.deadlineMs,
          connectTimeoutMs: LOAD.setupTimeoutMs,
        },
        startMeasuring,
      );
    },
  );
}

registerCase({
  name: LOAD_CASE,
  baseline: () => measureBareWs(),
  subject: (context) => measureHubUnderLoad(context),
  targets: {
    countMax: { [LOAD_FIGURES.errors]: 0, [LOAD_FIGURES.lost]: 0, [LOAD_FIGURES.unfinished]: 0 },
  },
  notes: [
    `subject: ${LOAD.uploads} x ${LOAD.uploadBytes / MiB} MiB uploads, one UploadClient (ws) each, and ${LOAD.watchers} SSE watchers of /api/events, ` +
      'against `upload-hub serve --no-processing` from dist/ in a child process; per-IP and per-principal limits raised by env (one principal, one address here)',
    `baseline: ${LOAD.uploads} bare ws connections to baselines/wsServer.ts (append to a file, ack each frame once written; no sha256, no watchers), ` +
      `${LOAD.baselineFrameBytes / 1024} KiB frames, ${LOAD.baselineFramesInFlight} in flight`,
    'clients run apart from the server: uploads in the bench process, the SSE watchers in a child of their own (their parsing must not delay the ' +
      'acks being timed), all on the same 2 cores as the server: client CPU (both processes; split per run above) is what they took from it',
    'hub side uses the project UploadClient (client/node.ts ws connection, sendChunk wrapped to time each chunk), not the raw protocol: its upload CPU ' +
      '(per run above) stays well under the hub\'s and the bare client\'s is the floor beside it, so the client\'s per-connection cost does not dominate',
    'chunk ack = client side, chunk handed to the socket -> its ack; counts are the worst run; terminal events lost = per watcher, completed uploads whose terminal event it never saw, summed',
    `bounded: ${LOAD.deadlineMs / 1000} s from the first byte, then the run stops and reports what it has`,
  ],
});
