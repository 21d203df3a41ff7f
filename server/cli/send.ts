/**
 * `upload-hub send FILE...`: uploads files over one socket, --concurrency at a time, and reports
 * them on a terminal (bars) or as NDJSON. Ctrl-C cancels what runs on the hub and prints the
 * ids; a second Ctrl-C exits at once and leaves what the hub has not cancelled yet resumable.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { toHubError } from '../../shared/errors.js';
import { UploadClient, fileFingerprints, type UploadHandle } from '../../client/node.js';
import { BarsReporter } from './barsReport.js';
import { EXIT, usageError, type ExitCode } from './errors.js';
import { hubAccess, reach, type HubFlags } from './hub.js';
import { NdjsonReporter } from './ndjsonReport.js';
import { summarize, type SendEntry, type SendReporter } from './report.js';

export const DEFAULT_CONCURRENCY = 4;
/** The hub takes maxUploadsPerConnection (16 by default) at once per connection; more would fail with ERR_TOO_MANY_UPLOADS. */
export const MAX_CONCURRENCY = 64;
/** How long the first Ctrl-C waits for the hub to confirm its cancels before exiting anyway. */
export const CANCEL_WAIT_MS = 10_000;

export interface SendFlags extends HubFlags {
  metadata: Record<string, string>;
  concurrency: number;
  json?: boolean;
  quiet?: boolean;
  resume: boolean;
  fingerprints?: string;
}

/** commander argParser for a repeatable --metadata key=value. */
export function collectMetadata(value: string, previous: Record<string, string>): Record<string, string> {
  const at = value.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError('expected key=value, e.g. --metadata album=summer');
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

/** commander argParser for --concurrency. */
export function parseConcurrency(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_CONCURRENCY) {
    throw new InvalidArgumentError(`expected a whole number from 1 to ${MAX_CONCURRENCY}`);
  }
  return Number(value);
}

/** Every FILE must be a readable regular file before anything is sent: one line per one that is not (exit 2). */
async function entriesOf(files: readonly string[]): Promise<SendEntry[]> {
  const problems: string[] = [];
  const entries: SendEntry[] = [];
  for (const file of files) {
    try {
      const info = await stat(file);
      if (!info.isFile()) problems.push(`${file}: not a regular file`);
      else entries.push({ file, name: basename(file), size: info.size, id: undefined, state: 'waiting', progress: undefined });
    } catch (error) {
      problems.push(`${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
    }
  }
  if (problems.length > 0) throw usageError(problems);
  return entries;
}

function reporterFor(entries: readonly SendEntry[], flags: SendFlags): SendReporter {
  const quiet = flags.quiet === true;
  return flags.json || !process.stdout.isTTY ? new NdjsonReporter(quiet) : new BarsReporter(entries, quiet);
}

interface Running {
  entry: SendEntry;
  handle: UploadHandle;
}

export async function send(files: readonly string[], flags: SendFlags, env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const access = hubAccess(flags, env);
  const entries = await entriesOf(files);

  // Ctrl-C is ours from here on: before anything runs it simply ends the command.
  let interrupts = 0;
  let onInterrupt: () => void = () => {};
  const sigint = () => {
    interrupts++;
    onInterrupt();
  };
  process.on('SIGINT', sigint);
  // Always kept, --no-resume included: an upload started over is remembered for the next run.
  const fingerprintsPath = flags.fingerprints ?? (env.UPLOAD_HUB_FINGERPRINTS || undefined);
  const client = new UploadClient({ ...access, fingerprints: fileFingerprints(fingerprintsPath) });
  let reporter: SendReporter | undefined;
  try {
    const reached = reach(client, access);
    const interruptedEarly = new Promise<'interrupted'>((resolve) => (onInterrupt = () => resolve('interrupted')));
    if ((await Promise.race([reached.then(() => 'reached' as const), interruptedEarly])) === 'interrupted') return EXIT.INTERRUPTED;

    reporter = reporterFor(entries, flags);
    const startedAt = Date.now();
    const outcome = await run(client, entries, flags, reporter, (handler) => {
      onInterrupt = handler;
      if (interrupts > 0) handler();
    });
    reporter.summary(summarize(entries, startedAt, outcome !== 'done'));
    if (outcome !== 'done') return EXIT.INTERRUPTED;
    return entries.every((entry) => entry.state === 'completed') ? EXIT.OK : EXIT.FAILED;
  } finally {
    process.off('SIGINT', sigint);
    reporter?.close();
    // A second Ctrl-C leaves the uploads to the hub as they are: main.ts exits without closing
    // the connection politely, and closing it here would only fail them locally.
    if (interrupts < 2) client.close();
  }
}

/**
 * Runs the uploads, `concurrency` at a time. Resolves 'done' when every file ended, 'cancelled'
 * after a Ctrl-C whose cancels the hub confirmed (or did not within CANCEL_WAIT_MS:
 * 'unconfirmed'), 'left' at once on a second Ctrl-C.
 */
function run(
  client: UploadClient,
  entries: SendEntry[],
  flags: SendFlags,
  reporter: SendReporter,
  onInterrupt: (handler: () => void) => void,
): Promise<'done' | 'cancelled' | 'unconfirmed' | 'left'> {
  return new Promise((resolve) => {
    const waiting = [...entries];
    const running = new Set<Running>();
    let interrupted = false;
    let cancelTimer: ReturnType<typeof setTimeout> | undefined;
    let ended = false;
    const end = (how: 'done' | 'cancelled' | 'unconfirmed' | 'left') => {
      if (ended) return;
      ended = true;
      clearTimeout(cancelTimer);
      resolve(how);
    };

    const next = () => {
      while (!interrupted && running.size < flags.concurrency && waiting.length > 0) start(waiting.shift() as SendEntry);
      if (running.size > 0) return;
      if (!interrupted) end('done');
      else {
        reporter.interrupted('cancelled', entries.filter((entry) => entry.state === 'cancelled'));
        end('cancelled');
      }
    };

    const start = (entry: SendEntry) => {
      entry.state = 'sending';
      entry.startedAt = Date.now();
      const handle = client.upload(entry.file, { name: entry.name, resume: flags.resume, ...(Object.keys(flags.metadata).length > 0 ? { metadata: flags.metadata } : {}) });
      const item: Running = { entry, handle };
      running.add(item);
      reporter.started(entry);
      handle.on('created', (id) => {
        entry.id = id;
        reporter.created(entry);
      });
      handle.on('progress', (progress) => {
        entry.progress = progress;
        reporter.progress(entry);
      });
      handle.on('event', (event) => reporter.event(entry, event));
      handle.on('log', (line) => reporter.log(entry, line));
      handle.done.then(
        (result) => {
          entry.state = 'completed';
          entry.result = result;
          entry.id = result.id;
        },
        (error: unknown) => {
          const hubError = toHubError(error);
          entry.state = hubError.code === 'ERR_CANCELLED' ? 'cancelled' : 'failed';
          entry.error = hubError;
        },
      ).finally(() => {
        if (ended) return;
        entry.endedAt = Date.now();
        running.delete(item);
        reporter.finished(entry);
        next();
      });
    };

    onInterrupt(() => {
      if (ended) return;
      if (interrupted) {
        reporter.interrupted('left-resumable', [...running].map((item) => item.entry));
        end('left');
        return;
      }
      interrupted = true;
      const cancelling = [...running];
      reporter.interrupted('cancelling', cancelling.map((item) => item.entry));
      for (const item of cancelling) void item.handle.cancel();
      cancelTimer = setTimeout(() => {
        reporter.interrupted('unconfirmed', [...running].map((item) => item.entry));
        end('unconfirmed');
      }, CANCEL_WAIT_MS);
      next();
    });

    next();
  });
}
