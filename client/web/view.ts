/**
 * The one mapping from what the hub says about an upload — its events, its status (from a
 * snapshot or `GET /api/uploads/:id`), the page's own connection — to what both pages show.
 * Pure and clock-free (time comes in as `now`, in ms), so the upload page and the dashboard
 * tell the same story and unit tests can replay any sequence.
 *
 * @example
 * let view = createdView(Date.now());
 * view = withEvent(view, event, Date.now());
 * const shown = present(view, Date.now(), 'waiting for client');
 * badge.textContent = shown.badge;
 */
import type { HubEvent, Phase, TerminalState, UploadState, UploadStatus } from '../../shared/messages.js';
import { describeProgress, formatBytes, formatEta, formatPercent, formatRate, isFinished } from './format.js';

/** An upload's state as a page knows it: `starting` before the hub named it, `gone` once the hub no longer knows it. */
export type ViewState = UploadState | 'starting' | 'gone';

/** Seconds to the end of the whole bar as estimated at `at` (ms); it counts down from there. */
export interface Estimate {
  seconds: number;
  at: number;
}

export interface UploadView {
  state: ViewState;
  /** A cancel was asked for and how the upload ended has not been heard yet. */
  cancelling: boolean;
  /** Its own client holds it on purpose (the upload page's Pause): still, but not waiting for anyone. */
  paused: boolean;
  phase: Phase;
  /** Overall percent; never goes back. */
  percent: number;
  bytes: number;
  total: number;
  stage: string | undefined;
  stagePercent: number | undefined;
  queuePosition: number | undefined;
  /** Whether a writer holds the upload; undefined while nothing said so either way. */
  attached: boolean | undefined;
  /** Upload speed as the hub last measured it; 0 when unknown or over. */
  bytesPerSecond: number;
  eta: Estimate | null;
  /** When the hub last said anything about this upload. */
  heardAt: number;
}

/** How long an upload in its upload phase may be silent before a page asks the hub about it (ms). */
export const QUIET_MS = 3000;

/** Order of the states an upload moves through, so a late status never takes a view back. */
const RANK: Record<ViewState, number> = {
  starting: 0, created: 1, uploading: 2, uploaded: 3, queued: 4, processing: 5, completed: 6, failed: 6, cancelled: 6, expired: 6, gone: 6,
};

function blank(state: ViewState, now: number, total: number): UploadView {
  return {
    state, cancelling: false, paused: false, phase: 'upload', percent: 0, bytes: 0, total, stage: undefined, stagePercent: undefined,
    queuePosition: undefined, attached: undefined, bytesPerSecond: 0, eta: null, heardAt: now,
  };
}

/** An item of the upload page before the hub has answered its create. */
export function startingView(now: number, total: number): UploadView {
  return { ...blank('starting', now, total), attached: true };
}

/** A dashboard row first heard of through an event other than `created`. */
export function createdView(now: number): UploadView {
  return blank('created', now, 0);
}

export function isDone(view: UploadView): boolean {
  return isFinished(view.state);
}

/** Still in its upload phase, so it moves only while a writer sends. */
function receiving(view: UploadView): boolean {
  return view.state === 'starting' || view.state === 'created' || view.state === 'uploading';
}

/** The upload needs its client (or, on the upload page, its connection) back before it moves again. */
export function isWaiting(view: UploadView): boolean {
  return !isDone(view) && !view.cancelling && !view.paused && receiving(view) && view.attached === false;
}

/**
 * The whole bar's ETA from one progress event. While processing, the hub's own estimate already
 * runs to 100%. While uploading it runs to the end of the upload phase only; the page cannot
 * know how fast the stages will go, so it assumes the bar keeps the pace the upload gives it:
 * the upload fills `share = percent × total / bytes` of the bar, so the bar moves
 * `percent × bytesPerSecond / bytes` per second.
 */
export function wholeBarEta(event: Pick<Extract<HubEvent, { type: 'progress' }>, 'phase' | 'percent' | 'bytes' | 'bytesPerSecond' | 'etaSeconds'>): number | null {
  if (event.percent >= 100) return 0;
  if (event.phase === 'processing') return event.etaSeconds;
  if (event.bytesPerSecond <= 0 || event.bytes <= 0 || event.percent <= 0) return null;
  return ((100 - event.percent) * event.bytes) / (event.percent * event.bytesPerSecond);
}

/** Ends the view in a terminal state: nothing moves, nothing is estimated, a completed bar is full. */
export function withEnd(view: UploadView, state: TerminalState | 'gone', now: number, stage?: string): UploadView {
  if (isDone(view)) return view;
  const ended: UploadView = { ...view, state, cancelling: false, paused: false, bytesPerSecond: 0, eta: null, queuePosition: undefined, heardAt: now };
  if (state === 'completed') return { ...ended, percent: 100, bytes: Math.max(view.bytes, view.total), stagePercent: view.stage === undefined ? undefined : 100 };
  return stage === undefined ? ended : { ...ended, stage };
}

/** Moves the state forward only; a cancel being asked for does not change what the hub said. */
function advance(view: UploadView, state: UploadState): UploadView {
  return RANK[state] >= RANK[view.state] ? { ...view, state } : view;
}

/**
 * What a status says, fetched at `askedAt`. A terminal state is final and always taken; the rest
 * only when no event was heard since the status was asked for (the live stream is newer then),
 * and never a state behind the one shown.
 */
export function withStatus(view: UploadView, status: UploadStatus, now: number, askedAt = now): UploadView {
  if (isDone(view)) return view;
  const base: UploadView = { ...view, total: status.size, percent: Math.max(view.percent, status.percent) };
  if (status.state === 'completed' || status.state === 'failed' || status.state === 'cancelled' || status.state === 'expired') {
    return withEnd({ ...base, bytes: status.bytes }, status.state, now, status.state === 'completed' ? undefined : (status.error?.stage ?? status.stage));
  }
  if (view.heardAt > askedAt || RANK[status.state] < RANK[view.state]) return { ...base, heardAt: Math.max(view.heardAt, now) };
  const next: UploadView = {
    ...base,
    state: status.state,
    phase: status.phase,
    bytes: status.bytes,
    stage: status.stage,
    stagePercent: status.stagePercent,
    queuePosition: status.queuePosition,
    attached: status.attached,
    heardAt: now,
  };
  // A status carries no speed: the last measured one stands only while bytes may still move.
  if (!receiving(next) || isWaiting(next)) next.bytesPerSecond = 0;
  if (next.state === 'queued') next.eta = null;
  return next;
}

/** One hub event. Events after the end change nothing: terminal states are final. */
export function withEvent(view: UploadView, event: HubEvent, now: number): UploadView {
  if (isDone(view)) return view;
  const heard: UploadView = { ...view, heardAt: now };
  switch (event.type) {
    case 'created': {
      // Created is published before its creator attaches, so its `attached: false` says nothing yet.
      const next = withStatus(heard, event.upload, now, now);
      return { ...next, attached: event.upload.attached ? true : view.attached };
    }
    case 'progress': {
      const moving = event.phase === 'upload';
      const estimate = wholeBarEta(event);
      return {
        ...heard,
        phase: event.phase,
        percent: Math.max(view.percent, event.percent),
        bytes: event.bytes,
        total: event.total,
        stage: moving ? view.stage : event.stage,
        stagePercent: moving ? view.stagePercent : event.stagePercent,
        // Chunks that were in flight when it paused still report; they start no new estimate.
        bytesPerSecond: moving && !view.paused ? event.bytesPerSecond : 0,
        // Committed bytes mean someone is writing.
        attached: moving ? true : view.attached,
        // An unknown estimate (a stage's rate is measured afresh) leaves the last one counting down.
        eta: view.paused ? null : estimate === null ? view.eta : { seconds: estimate, at: now },
      };
    }
    case 'uploading':
      return { ...advance(heard, 'uploading'), attached: true, bytes: Math.max(view.bytes, event.bytes) };
    case 'uploaded':
      // The upload's speed is over; the whole-bar estimate goes on counting down.
      return { ...advance(heard, 'uploaded'), bytes: event.bytes, bytesPerSecond: 0 };
    case 'queued':
      // How long the queue takes is unknown.
      return { ...advance(heard, 'queued'), queuePosition: event.position, bytesPerSecond: 0, eta: null };
    case 'processing':
      return { ...advance(heard, 'processing'), phase: 'processing', queuePosition: undefined, bytesPerSecond: 0 };
    case 'stage':
      return { ...heard, stage: event.stage, stagePercent: 0 };
    case 'log':
      return heard;
    case 'completed':
      return withEnd(heard, 'completed', now);
    case 'failed':
      return withEnd(heard, 'failed', now, event.error.stage);
    case 'cancelled':
      return withEnd(heard, 'cancelled', now, event.stage);
    case 'expired':
      return withEnd(heard, 'expired', now);
  }
}

export function withCancelling(view: UploadView): UploadView {
  return isDone(view) ? view : { ...view, cancelling: true };
}

export function withCancelRefused(view: UploadView): UploadView {
  return { ...view, cancelling: false };
}

/**
 * Its client paused (or resumed) sending. Paused, nothing moves and nothing is estimated; once
 * resumed, speed and ETA come back with the next progress event.
 */
export function withPaused(view: UploadView, paused: boolean): UploadView {
  if (isDone(view) || view.paused === paused) return view;
  return paused ? { ...view, paused: true, bytesPerSecond: 0, eta: null } : { ...view, paused: false };
}

/** The upload page's own connection dropped: its uploads wait for it, at no speed. */
export function withConnectionLost(view: UploadView): UploadView {
  return isDone(view) ? view : { ...view, attached: false, bytesPerSecond: 0 };
}

/** Seconds left of the whole bar at `now`, counting down from the last estimate; null when unknown or over. */
export function remainingSeconds(view: UploadView, now: number): number | null {
  if (isDone(view) || view.cancelling || view.paused || isWaiting(view) || view.eta === null) return null;
  const left = view.eta.seconds - Math.max(0, now - view.eta.at) / 1000;
  // An estimate that ran out before the end was wrong: say nothing rather than "0 s" for ever.
  return left > 0 ? left : null;
}

/** The upload speed a page shows now, bytes/s: 0 unless bytes are moving (as for a sum over uploads). */
export function liveRate(view: UploadView): number {
  return !isDone(view) && !view.cancelling && !view.paused && !isWaiting(view) && receiving(view) && view.phase === 'upload' ? view.bytesPerSecond : 0;
}

/** Whether the view changes with time alone (its ETA counts down). */
export function isCountingDown(view: UploadView, now: number): boolean {
  return remainingSeconds(view, now) !== null;
}

/** An upload in its upload phase, known to the hub: when it falls silent, its client may have gone. */
export function mayGoQuiet(view: UploadView): boolean {
  return !isDone(view) && receiving(view) && view.state !== 'starting';
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
    else if (receiving(view)) counts.uploading++;
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
