// The hub over raw WebSocket, through UploadClient, against the bare-ws baselines of the same
// run: one 512 MiB upload, and 100 connections uploading 4 MiB each.
import { UploadClient } from '../client/node.js';
import type { ChunkSource } from '../client/sources.js';
import type { TransportName } from '../client/UploadClient.js';
import { caseNames } from './caseNames.js';
import { measureServer } from './lib/measure.js';
import type { SpawnServerOptions } from './lib/proc.js';
import { payloadBlock } from './lib/payload.js';
import type { Transfer } from './lib/result.js';
import { MiB } from './lib/sizes.js';
import { makeBenchTempDir, removeBenchTempDir } from './lib/tempDir.js';
import { attachSubject, type Result } from './registry.js';

/** `size` bytes of the bench's random block repeated: no disk reads on the client side, like the baseline. */
export function repeatedSource(size: number): ChunkSource {
  return {
    size,
    read: async (offset, length) => {
      const block = payloadBlock(MiB);
      if (offset % MiB === 0 && length <= MiB) return block.subarray(0, length);
      const out = Buffer.allocUnsafe(length);
      for (let at = 0; at < length; ) {
        const from = (offset + at) % MiB;
        const n = Math.min(MiB - from, length - at);
        block.copy(out, at, from, from + n);
        at += n;
      }
      return out;
    },
  };
}

/**
 * Runs the hub (`upload-hub serve`, no processing) in a child process for one measured run,
 * from the build in dist/ as `npm start` does (`npm run bench` builds first). `server` adds to
 * the spawn (environment, node flags, open files); its `args` go after the serve flags.
 */
export async function measureHub(
  workload: (url: string, startMeasuring: () => Promise<void>, pid: number) => Promise<Transfer>,
  server: Omit<SpawnServerOptions, 'file'> = {},
): Promise<Result> {
  const dataDir = makeBenchTempDir('hub');
  try {
    return await measureServer(
      {
        ...server,
        file: 'dist/server/main.js',
        args: ['serve', '--port', '0', '--data-dir', dataDir, '--no-processing', ...(server.args ?? [])],
        env: { LOG_LEVEL: 'info', ...server.env },
      },
      (port, startMeasuring, pid) => workload(`http://127.0.0.1:${port}`, startMeasuring, pid),
    );
  } finally {
    removeBenchTempDir(dataDir);
  }
}

/** Uploads `mib` MiB over one client of `transport`; the clock starts once the client is connected. */
export async function hubSingleUpload(url: string, transport: TransportName, mib: number, startMeasuring: () => Promise<void>): Promise<Transfer> {
  const client = new UploadClient({ url, transport });
  try {
    await client.ping(); // connect and authenticate outside the measured span
    await startMeasuring();
    const started = performance.now();
    await client.upload(repeatedSource(mib * MiB), { name: 'bench.bin' }).done;
    return { payloadMiB: mib, seconds: (performance.now() - started) / 1000 };
  } finally {
    client.close();
  }
}

attachSubject(caseNames.wsSingle, {
  subject: ({ singleUploadMiB }) => measureHub((url, start) => hubSingleUpload(url, 'ws', singleUploadMiB, start)),
  targets: { mibPerSecRatioMin: 0.85, cpuRatioMax: 2, peakRssMiBMax: 120 },
});

attachSubject(caseNames.wsConcurrent, {
  subject: () =>
    measureHub(async (url, startMeasuring) => {
      const clients = Array.from({ length: 100 }, () => new UploadClient({ url }));
      try {
        await Promise.all(clients.map((client) => client.ping()));
        await startMeasuring();
        const started = performance.now();
        await Promise.all(clients.map((client) => client.upload(repeatedSource(4 * MiB), { name: 'bench.bin' }).done));
        return { payloadMiB: 400, seconds: (performance.now() - started) / 1000 };
      } finally {
        for (const client of clients) client.close();
      }
    }),
  targets: { mibPerSecRatioMin: 0.9, peakRssMiBMax: 200 },
});
