// Case 'cancel-latency': how fast a cancel reaches a running stage and comes back as
// `cancelled`, next to a ping round trip over the same socket in the same run.
//
// One run: an in-process hub (the figure is a latency ratio, so sharing the process is fair to
// both sides) and one ws UploadClient over a real 127.0.0.1 socket. 200 times: upload 1 KiB,
// wait until the stage runs, ping once (the baseline), then cancel() and time
//   - cancel -> signal:    client cancel() to the stage's AbortSignal firing (the stage records
//                          performance.now(); same process, same clock);
//   - cancel -> cancelled: client cancel() to the `cancelled` event arriving at the client.
// The ping is interleaved with the cancels so both see the same machine state.
//
// Pairing: the harness measures `baseline` and `subject` separately (and alternates which goes
// first), but the baseline here must come from the same run and socket. So whichever side is
// asked first does the run and keeps the other side's figures for the call that follows.
import { pino } from 'pino';
import { UploadClient } from '../client/node.js';
import { createHubServer } from '../server/app.js';
import type { Stage } from '../server/processing/Stage.js';
import { quantile } from './lib/stats.js';
import { makeBenchTempDir, removeBenchTempDir } from './lib/tempDir.js';
import { registerCase, type Result } from './registry.js';

export const CANCEL_LATENCY_CASE = 'cancel-latency';

export interface CancelLatencyOptions {
  /** Measured cancels. Default 200. */
  cancels?: number;
  /** Unmeasured cancels first (JIT, sockets, file system caches). Default 20. */
  warmup?: number;
}

export interface CancelLatencyFigures {
  pingMs: number[];
  signalMs: number[];
  cancelledMs: number[];
}

interface Waiting {
  running: () => void;
  abortedAt: number | undefined;
}

/** Runs the whole measurement once and returns the raw samples in ms. */
export async function measureCancelLatency(options: CancelLatencyOptions = {}): Promise<CancelLatencyFigures> {
  const cancels = options.cancels ?? 200;
  const warmup = options.warmup ?? 20;
  const waiting = new Map<string, Waiting>();
  const holdStage: Stage = {
    name: 'hold',
    run: (ctx) =>
      new Promise((_resolve, reject) => {
        const entry = waiting.get(ctx.upload.name);
        if (!entry) return reject(new Error(`unexpected upload ${ctx.upload.name}`));
        // Like a real stage that stops on abort: record when, then settle.
        ctx.signal.addEventListener('abort', () => {
          entry.abortedAt = performance.now();
          reject(ctx.signal.reason);
        }, { once: true });
        entry.running();
      }),
  };
  const dataDir = makeBenchTempDir('cancel');
  const hub = await createHubServer({
    logger: pino({ level: 'silent' }),
    pipeline: [holdStage],
    options: { port: 0, host: '127.0.0.1', dataDir, processingConcurrency: 1, abortDeadlineMs: 5_000 },
  });
  const client = new UploadClient({ url: hub.url });
  const figures: CancelLatencyFigures = { pingMs: [], signalMs: [], cancelledMs: [] };
  const payload = new Uint8Array(1024).fill(42);
  try {
    for (let i = 0; i < warmup + cancels; i++) {
      const name = `cancel-${i}.bin`;
      const running = new Promise<void>((resolve) => waiting.set(name, { running: resolve, abortedAt: undefined }));
      const handle = client.upload(payload, { name });
      // The client knows the stage started (its `stage` event) and the stage is inside run().
      const stageSeen = new Promise<void>((resolve) => {
        const off = handle.on('stage', () => {
          off();
          resolve();
        });
      });
      await Promise.all([running, stageSeen]);
      const ping = await client.ping();
      let cancelledAt = 0;
      const cancelled = new Promise<void>((resolve) => {
        const off = handle.on('event', (event) => {
          if (event.type !== 'cancelled') return;
          cancelledAt = performance.now();
          off();
          resolve();
        });
      });
      const start = performance.now();
      void handle.cancel();
      await cancelled;
      await handle.done.catch(() => undefined);
      const abortedAt = waiting.get(name)?.abortedAt;
      waiting.delete(name);
      if (abortedAt === undefined) throw new Error(`${name}: the stage's signal never fired`);
      if (i < warmup) continue;
      figures.pingMs.push(ping);
      figures.signalMs.push(abortedAt - start);
      figures.cancelledMs.push(cancelledAt - start);
    }
  } finally {
    client.close();
    await hub.close();
    removeBenchTempDir(dataDir);
  }
  return figures;
}

function summarise(samples: readonly number[]): { p50: number; p99: number } {
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99) };
}

/** The harness's two sides of one run: ping (baseline) and cancel (subject). */
function toResults(figures: CancelLatencyFigures): { baseline: Result; subject: Result } {
  const ping = summarise(figures.pingMs);
  const cancelled = summarise(figures.cancelledMs);
  const signal = summarise(figures.signalMs);
  return {
    baseline: { latencyMs: { 'p50 (ping | cancel->cancelled)': ping.p50, 'p99 (ping | cancel->cancelled)': ping.p99 } },
    subject: {
      latencyMs: {
        'p50 (ping | cancel->cancelled)': cancelled.p50,
        'p99 (ping | cancel->cancelled)': cancelled.p99,
        'p50 cancel->signal': signal.p50,
        'p99 cancel->signal': signal.p99,
      },
    },
  };
}

type Side = 'baseline' | 'subject';
let kept: { side: Side; result: Result } | undefined;

async function pairedSide(side: Side): Promise<Result> {
  if (kept && kept.side === side) {
    const { result } = kept;
    kept = undefined;
    return result;
  }
  const results = toResults(await measureCancelLatency());
  const other: Side = side === 'baseline' ? 'subject' : 'baseline';
  kept = { side: other, result: results[other] };
  return results[side];
}

registerCase({
  name: CANCEL_LATENCY_CASE,
  baseline: () => pairedSide('baseline'),
  subject: () => pairedSide('subject'),
  targets: { latencyRatioMax: { 'p99 (ping | cancel->cancelled)': 3 } },
});
