/**
 * What the pages show of an upload: the one event -> view reducer all clients share
 * (shared/view.ts, re-exported here) and how a page presents a view — its badge, facts, the bar
 * for all files — and when it asks the hub again. Pure and clock-free (time comes in as `now`,
 * in ms), so the upload page and the dashboard tell the same story and unit tests can replay any
 * sequence.
 *
 * @example
 * let view = createdView(Date.now());
 * view = withEvent(view, event, Date.now());
 * const shown = present(view, Date.now(), 'waiting for client');
 * badge.textContent = shown.badge;
 */
import { isDone, isReceiving, isWaiting, liveRate, remainingSeconds, type UploadView, type ViewState } from '../../shared/view.js';
import { describeProgress, formatBytes, formatEta, formatPercent, formatRate } from './format.js';

export {
  createdView, isDone, isReceiving, isWaiting, liveRate, reduce, remainingSeconds, startingView, wholeBarEta, withCancelling, withCancelRefused,
  withConnectionLost, withEnd, withEvent, withPaused, withStatus, type Estimate, type UploadView, type ViewState,
} from '../../shared/view.js';

/** How long an upload in its upload phase may be silent before a page asks the hub about it (ms). */
export const QUIET_MS = 3000;

/** Whether the view changes with time alone (its ETA counts down). */
export function isCountingDown(view: UploadView, now: number): boolean {
  return remainingSeconds(view, now) !== null;
}

/** An upload in its upload phase, known to the hub: when it falls silent, its client may have gone. */
export function mayGoQuiet(view: UploadView): boolean {
  return !isDone(view) && isReceiving(view) && view.state !== 'starting';
}

/** Nothing was heard of it for `quietMs`: time to ask the hub whether its client is still there. */
export function isQuiet(view: UploadView, now: number, quietMs = QUIET_MS): boolean {
  return mayGoQuiet(view) && now - view.heardAt >= quietMs;
}

/** Everything a page writes for one upload. */
export interface Presentation {
  /** For `data-state`: the upload's state, or `starting`/`cancelling`/`paused`/`gone` locally. */
  state: ViewState | 'cancelling' | 'paused';
  waiting: boolean;
  badge: string;
  /** `upload`, `processing`, `done`, or how it ended. */
  phase: string;
  stage: string;
  queue: string;
  rate: string;
  eta: string;
  percent: number;
  percentText: string;
}

/** `waitingText`: what an upload that waits for its writer is called on this page. */
export function present(view: UploadView, now: number, waitingText: string): Presentation {
  const done = isDone(view);
  const state = !done && view.cancelling ? 'cancelling' : view.state;
  const waiting = isWaiting(view);
  const paused = !done && !view.cancelling && view.paused;
  const badge = waiting
    ? waitingText
    : paused ? 'paused' : describeProgress({ state, phase: view.phase, percent: view.percent, stage: view.stage, stagePercent: view.stagePercent, queuePosition: view.queuePosition });
  let stage: string;
  if (view.stage === undefined || view.state === 'completed') stage = '—';
  else if (done) stage = view.stage;
  else stage = `${view.stage} ${Math.floor(view.stagePercent ?? 0)}%`;
  return {
    state: paused ? 'paused' : state,
    waiting,
    badge,
    phase: view.state === 'completed' ? 'done' : done ? view.state : view.phase,
    stage,
    queue: !done && view.state === 'queued' && view.queuePosition !== undefined ? `#${view.queuePosition}` : '—',
    rate: formatRate(liveRate(view)),
    eta: formatEta(remainingSeconds(view, now)),
    percent: view.percent,
    percentText: formatPercent(view.percent),
  };
}

/** What the upload page's bar for all its files sums up. */
export interface Aggregate {
  /** Files the bar covers: every one not cancelled, failed, expired or gone (those will not complete). */
  files: number;
  /** Committed bytes and sizes of those files. */
  bytes: number;
  total: number;
  /** Their bars averaged by size (a file counts at least one byte): 0-100, 100 once all completed. */
  percent: number;
  /** Sum of their live upload speeds, bytes/s. */
  bytesPerSecond: number;
  /** Seconds until the last of them reaches 100%; null when nothing runs or any running one's ETA is unknown. */
  etaSeconds: number | null;
  /** Every file on the page, by where it is. */
  counts: Record<'uploading' | 'processing' | 'queued' | 'paused' | 'waiting' | 'completed' | 'failed' | 'cancelled', number>;
}

/**
 * The bar for all files at `now`. Its ETA is the longest of theirs: they run side by side, so
 * the whole is done when the slowest is, and it never reads sooner than any one bar says.
 */
export function aggregate(views: Iterable<UploadView>, now: number): Aggregate {
  const counts: Aggregate['counts'] = { uploading: 0, processing: 0, queued: 0, paused: 0, waiting: 0, completed: 0, failed: 0, cancelled: 0 };
  let files = 0;
  let bytes = 0;
  let total = 0;
  let weighted = 0;
  let weights = 0;
  let bytesPerSecond = 0;
  let eta: number | null = 0;
  let unfinished = 0;
  for (const view of views) {
    if (view.state === 'cancelled') counts.cancelled++;
    else if (view.state === 'failed' || view.state === 'expired' || view.state === 'gone') counts.failed++;
    else if (view.state === 'completed') counts.completed++;
    else if (view.paused && !view.cancelling) counts.paused++;
    else if (isWaiting(view)) counts.waiting++;
    else if (view.state === 'queued') counts.queued++;
    else if (isReceiving(view)) counts.uploading++;
    else counts.processing++;
    if (view.state === 'cancelled' || view.state === 'failed' || view.state === 'expired' || view.state === 'gone') continue;
    files++;
    bytes += Math.min(view.bytes, view.total);
    total += view.total;
    const weight = Math.max(1, view.total);
    weighted += weight * view.percent;
    weights += weight;
    if (isDone(view)) continue;
    unfinished++;
    bytesPerSecond += liveRate(view);
    const left = remainingSeconds(view, now);
    eta = left === null || eta === null ? null : Math.max(eta, left);
  }
  return {
    files, bytes, total, counts, bytesPerSecond,
    percent: weights === 0 ? 0 : unfinished === 0 ? 100 : Math.min(weighted / weights, 100),
    etaSeconds: unfinished === 0 ? null : eta,
  };
}

/** What the bar for all files shows. */
export interface AggregatePresentation {
  percent: number;
  percentText: string;
  /** "3.0 MiB of 12 MiB" */
  bytes: string;
  rate: string;
  eta: string;
  /** "2 uploading, 1 queued, 1 completed": the non-zero counts, in a fixed order. */
  summary: string;
  /** Every file covered has completed (and there is at least one). */
  done: boolean;
}

const COUNT_WORDS: ReadonlyArray<[keyof Aggregate['counts'], string]> = [
  ['uploading', 'uploading'], ['processing', 'processing'], ['queued', 'queued'], ['paused', 'paused'], ['waiting', 'waiting'],
  ['completed', 'completed'], ['failed', 'failed'], ['cancelled', 'cancelled'],
];

export function presentAggregate(total: Aggregate): AggregatePresentation {
  const done = total.files > 0 && total.counts.completed === total.files;
  return {
    percent: total.percent,
    percentText: formatPercent(total.percent),
    bytes: `${formatBytes(total.bytes)} of ${formatBytes(total.total)}`,
    rate: formatRate(total.bytesPerSecond),
    eta: formatEta(total.etaSeconds),
    summary: COUNT_WORDS.filter(([key]) => total.counts[key] > 0).map(([key, word]) => `${total.counts[key]} ${word}`).join(', ') || 'nothing yet',
    done,
  };
}
