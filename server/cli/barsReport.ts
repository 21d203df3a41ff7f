/**
 * `send` on a terminal: an aggregate line on top, then one bar per file while it runs, through
 * upload and processing (bytes, percent, speed, ETA, phase or stage). Stage warnings and errors,
 * finished files and Ctrl-C notices are printed above the bars and stay; a summary ends it.
 * With --quiet no bars: failures on stderr as they happen, then the summary.
 *
 * Bars are cli-progress's MultiBar, redrawn at most 10 times a second. A finished file's bar is
 * replaced by one line above the bars, so however many files are sent only the running ones
 * (at most --concurrency) take rows at the bottom of the screen.
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import type { HubEvent } from '../../shared/messages.js';
import type { UploadLogLine } from '../../client/node.js';
import { fit, formatBytes, formatClock, formatPercent, formatRate, formatSeconds } from './format.js';
import { describeUpload, type Interruption, type SendEntry, type SendReporter, type SendSummary } from './report.js';

const FPS = 10;
/** What a row needs besides the name and the bar: percent, bytes, speed, ETA, a word of state. */
const FIXED_WIDTH = 60;

const NOTICES: Record<Interruption, string> = {
  cancelling: 'Interrupted: cancelling on the hub (Ctrl-C again to leave them resumable and exit):',
  cancelled: 'Cancelled on the hub:',
  unconfirmed: 'The hub did not confirm the cancel of:',
  'left-resumable': 'Left resumable on the hub (send the same files again to continue):',
};

/** What an entry is doing, in a word or two: "uploading", "queued #2", "import 40%". */
function doing(entry: SendEntry): string {
  const progress = entry.progress;
  if (entry.state !== 'sending') return entry.state;
  if (progress === undefined || entry.id === undefined) return 'starting';
  if (progress.queuePosition !== undefined) return `queued #${progress.queuePosition}`;
  if (progress.phase === 'processing') {
    if (progress.stage === undefined) return 'processing';
    return progress.stagePercent === undefined ? progress.stage : `${progress.stage} ${Math.floor(progress.stagePercent)}%`;
  }
  return progress.bytes >= progress.total && progress.total > 0 ? 'uploaded' : 'uploading';
}

function bar(percent: number, width: number): string {
  const filled = Math.round((Math.min(100, Math.max(0, percent)) / 100) * width);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

interface Row {
  label: string;
  percent: number;
  bytes: string;
  speed: string;
  eta: string;
  doing: string;
}

/** One row, fitted to the terminal: the name and the bar share what the other columns leave. */
function formatRow(row: Row, columns: number): string {
  const room = Math.max(20, columns - 1 - FIXED_WIDTH);
  const nameWidth = Math.min(28, Math.max(10, Math.floor(room * 0.45)));
  const barWidth = Math.min(30, Math.max(8, room - nameWidth - 1));
  const line = `${fit(row.label, nameWidth)} ${bar(row.percent, barWidth)} ${formatPercent(row.percent).padStart(4)} ${row.bytes.padEnd(17)} ${row.speed.padEnd(10)} ${row.eta.padEnd(10)} ${row.doing}`;
  return fit(line.trimEnd(), columns - 1).trimEnd();
}

export class BarsReporter implements SendReporter {
  private readonly bars: MultiBar | undefined;
  private readonly rows = new Map<SendEntry, SingleBar>();
  private readonly entries: readonly SendEntry[];
  private closed = false;

  constructor(
    entries: readonly SendEntry[],
    private readonly quiet: boolean,
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {
    this.entries = entries;
    if (quiet) return;
    // gracefulExit off: Ctrl-C is send's to handle (cancel on the hub), not the bars'.
    this.bars = new MultiBar({ stream: stdout, fps: FPS, hideCursor: true, gracefulExit: false, clearOnComplete: false, format: (_options, _params, payload: { line: () => string }) => payload.line() });
    this.bars.create(100, 0, { line: () => this.aggregateLine() });
  }

  started(entry: SendEntry): void {
    if (!this.bars) return;
    this.rows.set(entry, this.bars.create(100, 0, { line: () => this.entryLine(entry) }));
  }

  created(): void {}

  progress(): void {
    // Nothing to do: the lines read the entries on each redraw.
  }

  event(_entry: SendEntry, _event: HubEvent): void {}

  log(entry: SendEntry, line: UploadLogLine): void {
    if (line.level === 'info' || (this.quiet && line.level !== 'error')) return;
    this.above(`${formatClock(Date.now())} ${line.level.toUpperCase()} ${entry.name}${line.stage === undefined ? '' : ` [${line.stage}]`}: ${line.text}`);
  }

  finished(entry: SendEntry): void {
    const took = formatSeconds(((entry.endedAt ?? Date.now()) - (entry.startedAt ?? Date.now())) / 1000);
    const text = entry.state === 'completed'
      ? `✔ ${entry.name}  ${formatBytes(entry.size)} in ${took}  ${entry.id ?? ''}`
      : `✖ ${entry.name}  ${entry.state}${entry.error ? `  ${entry.error.code} ${entry.error.message}` : ''}  ${entry.id ?? ''}`;
    const row = this.rows.get(entry);
    this.rows.delete(entry);
    if (this.bars) {
      this.bars.log(`${text.trimEnd()}\n`);
      if (row) this.bars.remove(row);
      else this.bars.update();
    } else if (entry.state === 'failed') {
      this.stderr.write(`upload-hub: ${entry.file}: ${entry.error?.code ?? ''} ${entry.error?.message ?? ''}\n`);
    }
  }

  interrupted(what: Interruption, entries: readonly SendEntry[]): void {
    this.above(`${NOTICES[what]} ${entries.length === 0 ? 'nothing was running' : entries.map(describeUpload).join(', ')}`);
  }

  summary(summary: SendSummary): void {
    this.stopBars();
    const parts = [`${summary.completed} completed`];
    if (summary.failed > 0) parts.push(`${summary.failed} failed`);
    if (summary.cancelled > 0) parts.push(`${summary.cancelled} cancelled`);
    if (summary.notSent > 0) parts.push(`${summary.notSent} not sent`);
    const files = summary.files === 1 ? '1 file' : `${summary.files} files`;
    const lines = [`${summary.interrupted ? 'Interrupted. ' : ''}${files}: ${parts.join(', ')}; ${formatBytes(summary.bytes)} in ${formatSeconds(summary.durationMs / 1000)} (${formatRate(summary.bytesPerSecond) === '-' ? '0 B/s' : formatRate(summary.bytesPerSecond)})`];
    for (const failure of summary.failures) {
      lines.push(`  failed: ${failure.file}  ${failure.code}  ${failure.message}${failure.stage === undefined ? '' : ` (stage ${failure.stage})`}${failure.id === undefined ? '' : `  ${failure.id}`}`);
    }
    this.stdout.write(`${lines.join('\n')}\n`);
  }

  close(): void {
    this.stopBars();
  }

  /** A line that stays, above the bars (or on its own without them). */
  private above(text: string): void {
    if (this.bars && !this.closed) {
      this.bars.log(`${text}\n`);
      // Shown now, not at the next redraw: the process may be about to exit.
      this.bars.update();
    } else {
      this.stderr.write(`upload-hub: ${text}\n`);
    }
  }

  private stopBars(): void {
    if (!this.bars || this.closed) return;
    this.closed = true;
    // stop() does not print what log() buffered: flush it first.
    this.bars.update();
    this.bars.stop();
  }

  private columns(): number {
    return Math.max(40, this.stdout.columns || 80);
  }

  private entryLine(entry: SendEntry): string {
    const progress = entry.progress;
    return formatRow({
      label: entry.name,
      percent: progress?.percent ?? 0,
      bytes: progress === undefined ? '' : `${formatBytes(progress.bytes)}/${formatBytes(entry.size)}`,
      speed: progress?.phase === 'upload' ? formatRate(progress.bytesPerSecond) : '',
      eta: progress !== undefined && progress.etaSeconds !== null ? `ETA ${formatSeconds(progress.etaSeconds)}` : '',
      doing: doing(entry),
    }, this.columns());
  }

  private aggregateLine(): string {
    let total = 0;
    let sent = 0;
    let weighted = 0;
    let weights = 0;
    let rate = 0;
    let done = 0;
    for (const entry of this.entries) {
      const progress = entry.progress;
      const finished = entry.state === 'completed' || entry.state === 'failed' || entry.state === 'cancelled';
      if (finished) done++;
      total += entry.size;
      sent += entry.state === 'completed' ? entry.size : (progress?.bytes ?? 0);
      // Weighted by size, so a big file counts for more than a small one; an empty file still counts.
      weights += Math.max(entry.size, 1);
      weighted += Math.max(entry.size, 1) * (entry.state === 'completed' ? 100 : (progress?.percent ?? 0));
      if (entry.state === 'sending' && progress?.phase === 'upload') rate += progress.bytesPerSecond;
    }
    return formatRow({
      label: `${done}/${this.entries.length} files`,
      percent: weights > 0 ? weighted / weights : 0,
      bytes: `${formatBytes(sent)}/${formatBytes(total)}`,
      speed: rate > 0 ? formatRate(rate) : '',
      eta: rate > 0 ? `ETA ${formatSeconds(Math.max(0, total - sent) / rate)}` : '',
      doing: 'total',
    }, this.columns());
  }
}
