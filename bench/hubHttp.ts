// The hub's HTTP surface under load:
//   - 'busboy-multipart-512MiB' subject: the hub's POST /api/uploads/multipart, driven by the
//     same multipart client as the bare busboy baseline (one 512 MiB file part).
//   - 'sse-fanout-1000': 1,000 SSE watchers on /api/events while 20 uploads of 8 MiB run over
//     ws. Subject = with the watchers; baseline = the same 20 uploads with none, so the ratios
//     are the price of the fan-out. Reports events/s delivered to all watchers together, the
//     hub's CPU and peak RSS, and fails the run unless every watcher got every `completed`.
import { Agent, get, type IncomingMessage } from 'node:http';
import { UploadClient } from '../client/node.js';
import { uploadMultipart } from './baselines/busboyClient.js';
import { caseNames } from './caseNames.js';
import { measureHub, repeatedSource } from './hubWs.js';
import type { Transfer } from './lib/result.js';
import { MiB } from './lib/sizes.js';
import { attachSubject, registerCase, type Result } from './registry.js';

export const SSE_FANOUT_CASE = 'sse-fanout-1000';

attachSubject(caseNames.multipart, {
  subject: ({ singleUploadMiB }) =>
    measureHub((url, startMeasuring) => uploadMultipart({ url: `${url}/api/uploads/multipart`, totalMiB: singleUploadMiB }, startMeasuring)),
  targets: { mibPerSecRatioMin: 0.9 },
});

export interface FanoutOptions {
  watchers: number;
  uploads: number;
  uploadMiB: number;
  /** A run that has not seen every terminal event by then fails. Default 120 s. */
  timeoutMs?: number;
}

/**
 * One SSE watcher with a deliberately cheap parser: counts frames and notes the upload of
 * every `completed`, nothing else, so the bench client spends little of the shared CPU.
 */
class Watcher {
  frames = 0;
  readonly completed = new Set<string>();
  private carry = '';
  private onSnapshot: (() => void) | undefined;
  private onComplete: (() => void) | undefined;
  private expected: ReadonlySet<string> | undefined;
  private response: IncomingMessage | undefined;

  open(url: string, agent: Agent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onSnapshot = resolve;
      const req = get(url, { agent, headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`watcher got HTTP ${res.statusCode}`));
        this.response = res;
        res.setEncoding('utf8');
        res.on('data', (text: string) => this.read(text));
      });
      req.on('error', reject);
    });
  }

  /** Resolves once a `completed` arrived for every id in `ids`. */
  until(ids: ReadonlySet<string>): Promise<void> {
    this.expected = ids;
    return new Promise((resolve) => {
      this.onComplete = resolve;
      this.check();
    });
  }

  close(): void {
    this.response?.destroy();
  }

  private read(text: string): void {
    const frames = (this.carry + text).split('\n\n');
    this.carry = frames.pop() ?? '';
    for (const frame of frames) {
      if (!frame.startsWith('event: ')) continue;
      if (frame.startsWith('event: snapshot')) {
        this.onSnapshot?.();
        this.onSnapshot = undefined;
        continue;
      }
      this.frames++;
      if (frame.startsWith('event: completed')) {
        const match = /"uploadId":"([^"]+)"/.exec(frame);
        if (match?.[1]) this.completed.add(match[1]);
        this.check();
      }
    }
  }

  private check(): void {
    if (!this.expected || !this.onComplete) return;
    for (const id of this.expected) if (!this.completed.has(id)) return;
    this.onComplete();
    this.onComplete = undefined;
  }
}

/** One run against a fresh hub process: `watchers` SSE streams (0 for the baseline) while the uploads run. */
export function measureFanout(options: FanoutOptions): Promise<Result> {
  let eventsPerSec: number | undefined;
  return measureHub(async (url, startMeasuring) => {
    const figures = await fanoutWorkload(url, options, startMeasuring);
    eventsPerSec = figures.eventsPerSec;
    return figures;
  }).then((result) => (eventsPerSec === undefined ? result : { ...result, eventsPerSec }));
}

/** The client side of one fan-out run against the hub at `url`. */
export async function fanoutWorkload(url: string, options: FanoutOptions, startMeasuring: () => Promise<void> = async () => {}): Promise<Transfer & { eventsPerSec?: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const watchers = Array.from({ length: options.watchers }, () => new Watcher());
  const clients = Array.from({ length: options.uploads }, () => new UploadClient({ url }));
  try {
    // Open the streams in batches so the listen backlog never overflows.
    for (let i = 0; i < watchers.length; i += 100) {
      await Promise.all(watchers.slice(i, i + 100).map((watcher) => watcher.open(`${url}/api/events`, agent)));
    }
    await Promise.all(clients.map((client) => client.ping()));
    await startMeasuring();
    const started = performance.now();
    const results = await Promise.all(clients.map((client, index) =>
      client.upload(repeatedSource(options.uploadMiB * MiB), { name: `fanout-${index}.bin` }).done));
    const ids = new Set(results.map((result) => result.id));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const missing = watchers.filter((watcher) => watcher.completed.size < ids.size).length;
        reject(new Error(`${missing} of ${watchers.length} watchers did not receive every terminal event`));
      }, options.timeoutMs ?? 120_000);
    });
    try {
      await Promise.race([Promise.all(watchers.map((watcher) => watcher.until(ids))), timeout]);
    } finally {
      clearTimeout(timer);
    }
    const seconds = (performance.now() - started) / 1000;
    const delivered = watchers.reduce((sum, watcher) => sum + watcher.frames, 0);
    if (options.watchers > 0) {
      process.stderr.write(`  ${SSE_FANOUT_CASE}: ${options.watchers} watchers each got all ${ids.size} completed; ${delivered} events delivered in ${seconds.toFixed(2)} s\n`);
    }
    return { payloadMiB: options.uploads * options.uploadMiB, seconds, ...(options.watchers > 0 ? { eventsPerSec: delivered / seconds } : {}) };
  } finally {
    for (const watcher of watchers) watcher.close();
    for (const client of clients) client.close();
    agent.destroy();
  }
}

const FANOUT = { watchers: 1000, uploads: 20, uploadMiB: 8 };

registerCase({
  name: SSE_FANOUT_CASE,
  baseline: () => measureFanout({ ...FANOUT, watchers: 0 }),
  subject: () => measureFanout(FANOUT),
});
