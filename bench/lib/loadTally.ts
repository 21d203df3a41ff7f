// What both sides of the load case count while it runs: every chunk's send-to-ack time, chunk
// sizes, errors by kind, and the client process's CPU. One object per run, so the hub and its
// bare-ws baseline are summed up the same way.
import type { Transfer } from './result.js';
import { quantileOfSorted } from './stats.js';

/** Names of the latency and count figures, shared by both sides so the report lines them up. */
export const LOAD_FIGURES = {
  ackP50: 'chunk ack p50',
  ackP99: 'chunk ack p99',
  errors: 'errors',
  lost: 'terminal events lost',
  unfinished: 'unfinished at deadline',
  reconnects: 'watcher reconnects',
} as const;

export class LoadTally {
  private readonly ackMs: number[] = [];
  private chunkBytes = 0;
  private readonly errors = new Map<string, number>();
  /** Things worth a look that are not errors (gap acks, say). */
  private readonly notes = new Map<string, number>();
  private cpuAtStart: NodeJS.CpuUsage | undefined;
  private cpuSec: number | undefined;

  /** One chunk's ack arrived `ms` after the chunk was handed to the socket. */
  ack(ms: number, bytes: number): void {
    this.ackMs.push(ms);
    this.chunkBytes += bytes;
  }

  error(kind: string, count = 1): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + count);
  }

  note(kind: string): void {
    this.notes.set(kind, (this.notes.get(kind) ?? 0) + 1);
  }

  get errorCount(): number {
    let total = 0;
    for (const count of this.errors.values()) total += count;
    return total;
  }

  /** `ERR_X x3, closed 1006 x1`, or `none`. */
  describeErrors(): string {
    return describe(this.errors);
  }

  describeNotes(): string {
    return describe(this.notes);
  }

  get chunks(): number {
    return this.ackMs.length;
  }

  get meanChunkKiB(): number {
    return this.ackMs.length === 0 ? 0 : this.chunkBytes / this.ackMs.length / 1024;
  }

  /** The client's CPU clock starts with the measured phase, like the server's. */
  startCpu(): void {
    this.cpuAtStart = process.cpuUsage();
  }

  /** Client CPU (user + sys) between startCpu() and stopCpu(), in s. */
  get cpuSeconds(): number | undefined {
    return this.cpuSec;
  }

  stopCpu(): void {
    if (this.cpuAtStart === undefined) return;
    const used = process.cpuUsage(this.cpuAtStart);
    this.cpuSec = (used.user + used.system) / 1e6;
  }

  /** Latencies, client CPU and the counts, for Transfer.extra; `counts` adds the side's own. */
  extra(counts: Record<string, number>, eventsPerSec?: number): NonNullable<Transfer['extra']> {
    const sorted = [...this.ackMs].sort((a, b) => a - b);
    return {
      ...(sorted.length === 0
        ? {}
        : { latencyMs: { [LOAD_FIGURES.ackP50]: quantileOfSorted(sorted, 0.5), [LOAD_FIGURES.ackP99]: quantileOfSorted(sorted, 0.99) } }),
      ...(this.cpuSec === undefined ? {} : { clientCpuSec: this.cpuSec }),
      ...(eventsPerSec === undefined ? {} : { eventsPerSec }),
      counts: { [LOAD_FIGURES.errors]: this.errorCount, ...counts },
    };
  }
}

function describe(counts: ReadonlyMap<string, number>): string {
  if (counts.size === 0) return 'none';
  return [...counts].map(([kind, count]) => `${kind} x${count}`).join(', ');
}

/** Rejects with `what` unless `promise` settles within `ms`; the timer never outlives it. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `open` over `items` in batches of `size`, so a burst of connects never overflows the listen backlog. */
export async function inBatches<T, R>(items: readonly T[], size: number, open: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const settled: PromiseSettledResult<R>[] = [];
  for (let i = 0; i < items.length; i += size) settled.push(...(await Promise.allSettled(items.slice(i, i + size).map(open))));
  return settled;
}
