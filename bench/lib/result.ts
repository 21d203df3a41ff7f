// What one measured run of a case yields. Every figure is optional so a case
// can report only what it can measure (e.g. no server CPU for an in-process subject).
export interface Result {
  /** Payload throughput seen by the client. */
  mibPerSec?: number;
  /** Server user CPU during the measured phase only (start-up excluded). */
  serverUserCpuSec?: number;
  /** Server system CPU during the measured phase (disk writes, sockets). */
  serverSysCpuSec?: number;
  /** Server VmHWM over its whole life, in MiB. */
  peakRssMiB?: number;
  /** Payload actually moved, so a figure can be read against its size. */
  payloadMiB?: number;
  /** Events delivered to watchers per second, all watchers together (fan-out cases). */
  eventsPerSec?: number;
  /** Named latencies in ms (e.g. a p99), for cases that time events rather than move bytes. */
  latencyMs?: Record<string, number>;
  /** CPU (user + sys) of the bench process that ran the clients, over the measured phase. */
  clientCpuSec?: number;
  /** Named counts (errors, lost events...): the report shows the worst run, not the median. */
  counts?: Record<string, number>;
}

/** What a client workload reports back: how much it moved, and how long the transfer took. */
export interface Transfer {
  payloadMiB: number;
  seconds: number;
  /** Figures only the client can know; measureServer passes them through. */
  extra?: Pick<Result, 'latencyMs' | 'clientCpuSec' | 'counts' | 'eventsPerSec'>;
}
