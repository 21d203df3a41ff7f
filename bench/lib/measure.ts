// One measured run against a freshly spawned server: the pattern every case shares.
import { cpuBetween, readCpu, readPeakRssMiB, spawnServer, type SpawnServerOptions } from './proc.js';
import type { Result, Transfer } from './result.js';

/**
 * Spawns the server, lets `workload` drive it, and reports client throughput plus the
 * server's CPU and peak RSS. `workload` receives a `startMeasuring` callback to call once its
 * connections are set up, so handshakes and start-up stay out of the CPU figure; if it never
 * calls it, CPU is measured from the moment the port was announced. `pid` is the server's, for
 * workloads that check its limits.
 */
export async function measureServer(
  server: SpawnServerOptions,
  workload: (port: number, startMeasuring: () => Promise<void>, pid: number) => Promise<Transfer>,
): Promise<Result> {
  const running = await spawnServer(server);
  try {
    let cpuBefore = await readCpu(running.pid);
    const startMeasuring = async (): Promise<void> => {
      cpuBefore = await readCpu(running.pid);
    };
    const transfer = await workload(running.port, startMeasuring, running.pid);
    const cpu = cpuBetween(cpuBefore, await readCpu(running.pid));
    const peakRssMiB = await readPeakRssMiB(running.pid);
    return {
      mibPerSec: transfer.payloadMiB / transfer.seconds,
      serverUserCpuSec: cpu.userSec,
      serverSysCpuSec: cpu.sysSec,
      peakRssMiB,
      payloadMiB: transfer.payloadMiB,
      ...transfer.extra,
    };
  } finally {
    await running.stop();
  }
}
