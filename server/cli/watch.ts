/**
 * `upload-hub watch`: every upload the token may see, live, until Ctrl-C (exit 0) or until the
 * hub is lost for good (exit 1).
 *
 * On a terminal, one readable line per change: time, file, state, stage, percent (progress at
 * most once a second per upload, through the same EventThrottle the hub uses). Otherwise, or
 * with --json, NDJSON: `{"type":"snapshot","uploads":[...]}`, then every event as the hub sent it.
 */
import { EventThrottle } from '../../shared/throttle.js';
import type { HubEvent, UploadState, UploadStatus } from '../../shared/messages.js';
import { UploadClient } from '../../client/node.js';
import { EXIT, type ExitCode } from './errors.js';
import { fit, formatClock, formatPercent } from './format.js';
import { hubAccess, reach } from './hub.js';
import { wantsJson, type OutputFlags } from './inspect.js';

const READABLE_PROGRESS_INTERVAL_MS = 1000;

/** What a readable line needs to know of an upload between events. */
interface Known {
  name: string;
  state: UploadState;
  stage: string | undefined;
  percent: number;
}

/** The state an event moves its upload to; undefined for events that do not change it. */
function stateAfter(event: HubEvent): UploadState | undefined {
  switch (event.type) {
    case 'created':
      return event.upload.state;
    case 'uploading':
    case 'uploaded':
    case 'queued':
    case 'processing':
    case 'completed':
    case 'failed':
    case 'cancelled':
    case 'expired':
      return event.type;
    default:
      return undefined;
  }
}

/** Turns snapshots and events into the lines a person reads. */
export class ReadableWatch {
  private readonly known = new Map<string, Known>();

  constructor(private readonly write: (line: string) => void) {}

  snapshot(uploads: readonly UploadStatus[]): void {
    this.write(`${formatClock(Date.now())}  watching ${uploads.length === 1 ? '1 active upload' : `${uploads.length} active uploads`}`);
    for (const upload of uploads) {
      this.known.set(upload.id, { name: upload.name, state: upload.state, stage: upload.stage, percent: upload.percent });
      this.line(upload.id, Date.now(), '');
    }
  }

  event(event: HubEvent): void {
    const known = this.known.get(event.uploadId) ?? { name: event.uploadId, state: 'created', stage: undefined, percent: 0 };
    this.known.set(event.uploadId, known);
    const state = stateAfter(event);
    if (state !== undefined) known.state = state;
    let extra = '';
    switch (event.type) {
      case 'created':
        known.name = event.upload.name;
        extra = `${event.upload.size} bytes, owner ${event.upload.owner}, ${event.uploadId}`;
        break;
      case 'progress':
        known.percent = Math.max(known.percent, event.percent);
        known.stage = event.phase === 'processing' ? event.stage : undefined;
        break;
      case 'stage':
        known.stage = event.stage;
        extra = `stage ${event.index + 1} of ${event.count}`;
        break;
      case 'queued':
        extra = `#${event.position} in queue`;
        break;
      case 'log':
        extra = `${event.level}: ${event.text}`;
        break;
      case 'completed':
        known.percent = 100;
        break;
      case 'failed':
        extra = `${event.error.code} ${event.error.message}`;
        break;
      default:
        break;
    }
    this.line(event.uploadId, event.at, extra);
    if (event.type === 'completed' || event.type === 'failed' || event.type === 'cancelled' || event.type === 'expired') this.known.delete(event.uploadId);
  }

  private line(id: string, at: number, extra: string): void {
    const known = this.known.get(id) as Known;
    this.write(`${formatClock(at)}  ${fit(known.name, 24)} ${known.state.padEnd(10)} ${fit(known.stage ?? '-', 12)} ${formatPercent(known.percent).padStart(4)}${extra === '' ? '' : `  ${extra}`}`.trimEnd());
  }
}

export async function watch(flags: OutputFlags, env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const access = hubAccess(flags, env);
  const client = new UploadClient(access);
  const write = (line: string) => process.stdout.write(`${line}\n`);
  const readable = wantsJson(flags) ? undefined : new ReadableWatch(write);
  const throttle = readable ? new EventThrottle((event) => readable.event(event), { intervalMs: READABLE_PROGRESS_INTERVAL_MS, minStepPercent: 0 }) : undefined;
  try {
    await reach(client, access);
    const watcher = client.watch();
    let started = false;
    watcher.on('snapshot', (uploads) => {
      started = true;
      if (readable) readable.snapshot(uploads);
      else write(JSON.stringify({ type: 'snapshot', uploads }));
    });
    watcher.on('event', (event) => {
      if (throttle) throttle.push(event);
      else write(JSON.stringify(event));
    });
    return await new Promise<ExitCode>((resolve) => {
      const end = (code: ExitCode) => {
        process.off('SIGINT', stopped);
        process.off('SIGTERM', stopped);
        resolve(code);
      };
      // Ctrl-C is how watching ends: not an interruption of anything.
      const stopped = () => end(EXIT.OK);
      process.once('SIGINT', stopped);
      process.once('SIGTERM', stopped);
      watcher.on('error', (error) => {
        process.stderr.write(`upload-hub: ${error.code} ${error.message}\n`);
        // Before the first snapshot nothing is being watched; ERR_CONNECTION_LOST after it
        // means the client gave up reconnecting. Either way nothing more will come.
        if (!started || error.code === 'ERR_CONNECTION_LOST' || error.code === 'ERR_UNAUTHORIZED') end(EXIT.FAILED);
      });
    });
  } finally {
    throttle?.close();
    client.close();
  }
}
