/**
 * `send` for programs (stdout not a terminal, or --json): one JSON object per line on stdout,
 * each with a `type`:
 *
 *   progress  {file, id, bytes, total, percent, phase, stage?, stagePercent?, bytesPerSecond, etaSeconds}
 *             at most PROGRESS_PER_SECOND per file (the hub's own throttle, EventThrottle, with a
 *             longer interval: the first line, each phase's first and the 100% one always come)
 *   log       {file, id, level, text, stage?}  warnings and errors of the processing stages
 *   result    {file, id, state: "completed", name, size, sha256, result}
 *             {file, id, state: "failed" | "cancelled", error: {code, message, stage?}}
 *   interrupted {action: "cancelling" | "cancelled" | "unconfirmed" | "left-resumable", uploads: [{file, id}]}
 *   summary   {files, completed, failed, cancelled, notSent, bytes, durationMs, bytesPerSecond, interrupted, failures}
 *
 * With --quiet only failed results, error lines and the summary. Failures and Ctrl-C are also
 * said in one line each on stderr, for the person watching the pipe.
 */
import { EventThrottle } from '../../shared/throttle.js';
import type { HubEvent } from '../../shared/messages.js';
import type { UploadLogLine } from '../../client/node.js';
import { describeUpload, type Interruption, type SendEntry, type SendReporter, type SendSummary } from './report.js';

export const PROGRESS_PER_SECOND = 4;

const NOTICES: Record<Interruption, string> = {
  cancelling: 'interrupted: cancelling on the hub (Ctrl-C again to leave them resumable and exit):',
  cancelled: 'cancelled on the hub:',
  unconfirmed: 'the hub did not confirm the cancel of:',
  'left-resumable': 'left resumable on the hub (send the same files again to continue):',
};

export class NdjsonReporter implements SendReporter {
  private readonly throttle: EventThrottle;
  /** Which entry a throttled event belongs to, by upload id. */
  private readonly byId = new Map<string, SendEntry>();

  constructor(
    private readonly quiet: boolean,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {
    this.throttle = new EventThrottle((event) => this.writeProgress(event), { intervalMs: 1000 / PROGRESS_PER_SECOND, minStepPercent: 0 });
  }

  started(): void {}

  created(entry: SendEntry): void {
    if (entry.id !== undefined) this.byId.set(entry.id, entry);
  }

  progress(): void {}

  event(_entry: SendEntry, event: HubEvent): void {
    if (!this.quiet && event.type === 'progress') this.throttle.push(event);
  }

  log(entry: SendEntry, line: UploadLogLine): void {
    if (line.level === 'info' || (this.quiet && line.level !== 'error')) return;
    this.line({ type: 'log', file: entry.file, id: entry.id, level: line.level, text: line.text, ...(line.stage === undefined ? {} : { stage: line.stage }) });
  }

  finished(entry: SendEntry): void {
    if (entry.id !== undefined) this.throttle.forget(entry.id);
    if (entry.state === 'completed' && entry.result) {
      if (!this.quiet) this.line({ type: 'result', file: entry.file, state: 'completed', ...entry.result });
      return;
    }
    const error = entry.error;
    if (!error) return;
    this.line({ type: 'result', file: entry.file, id: entry.id, state: entry.state, error: error.toJSON() });
    if (entry.state === 'failed') this.stderr.write(`upload-hub: ${entry.file}: ${error.code} ${error.message}\n`);
  }

  interrupted(what: Interruption, entries: readonly SendEntry[]): void {
    this.line({ type: 'interrupted', action: what, uploads: entries.map((entry) => ({ file: entry.file, id: entry.id })) });
    this.stderr.write(`upload-hub: ${NOTICES[what]} ${entries.length === 0 ? 'nothing was running' : entries.map(describeUpload).join(', ')}\n`);
  }

  summary(summary: SendSummary): void {
    this.line({ type: 'summary', ...summary });
  }

  close(): void {
    this.throttle.close();
  }

  private writeProgress(event: HubEvent): void {
    if (event.type !== 'progress') return;
    const entry = this.byId.get(event.uploadId);
    const { type, uploadId, id: _eventId, at: _at, ...progress } = event;
    this.line({ type, file: entry?.file, id: uploadId, ...progress });
  }

  private line(value: Record<string, unknown>): void {
    this.stdout.write(`${JSON.stringify(value)}\n`);
  }
}
