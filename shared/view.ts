/**
 * The one mapping from what the hub says about an upload — its events, its status (from a
 * snapshot, a resume's reply or `GET /api/uploads/:id`), a client's own connection and pause —
 * to where its bar is: state, phase, percent, bytes, stage, queue position, speed and ETA. The
 * client's upload handle, the upload page and the dashboard all run it, so one event moves every
 * bar the same way.
 *
 * Pure and clock-free (time comes in as `now`, in ms), so any sequence can be replayed in a
 * unit test. Rules it keeps: the percent never goes back; a state never goes back (a late status
 * does not undo a newer event); a terminal state is final; a status newer than anything heard
 * (after a reconnect, a resume) replaces what the view said.
 *
 * @example
 * let view = createdView(Date.now());
 * view = reduce(view, event, Date.now());      // a hub event
 * view = reduce(view, status, Date.now(), at); // a status asked for at `at`
 */
import type { HubEvent, Phase, TerminalState, UploadState, UploadStatus } from './messages.js';

/** An upload's state as a view knows it: `starting` before the hub named it, `gone` once the hub no longer knows it. */
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
  /** Its own client holds it on purpose (pause()): still, but not waiting for anyone. */
  paused: boolean;
  phase: Phase;
  /** Overall percent, 0-100 across upload and processing; never goes back. */
  percent: number;
  /** Bytes the hub has committed. */
  bytes: number;
  total: number;
  stage: string | undefined;
  stagePercent: number | undefined;
  queuePosition: number | undefined;
  /** Whether a writer holds the upload; undefined while nothing said so either way. */
  attached: boolean | undefined;
  /** Upload speed as the hub last measured it, bytes/s; 0 when unknown or over. */
  bytesPerSecond: number;
  /** The whole bar's ETA; null when unknown. */
  eta: Estimate | null;
  /** When the hub last said anything about this upload (ms). */
  heardAt: number;
}

/** Order of the states an upload moves through, so a late status never takes a view back. */
const RANK: Record<ViewState, number> = {
  starting: 0, created: 1, uploading: 2, uploaded: 3, queued: 4, processing: 5, completed: 6, failed: 6, cancelled: 6, expired: 6, gone: 6,
};

const ENDED: ReadonlySet<ViewState> = new Set<ViewState>(['completed', 'failed', 'cancelled', 'expired', 'gone']);

function blank(state: ViewState, now: number, total: number): UploadView {
  return {
    state, cancelling: false, paused: false, phase: 'upload', percent: 0, bytes: 0, total, stage: undefined, stagePercent: undefined,
    queuePosition: undefined, attached: undefined, bytesPerSecond: 0, eta: null, heardAt: now,
  };
}

/** An upload its own client is about to create (or resume): `total` bytes, held by that client. */
export function startingView(now: number, total: number): UploadView {
  return { ...blank('starting', now, total), attached: true };
}

/** An upload first heard of through an event other than `created` (a dashboard row). */
export function createdView(now: number): UploadView {
  return blank('created', now, 0);
}

/** Ended: completed, failed, cancelled, expired, or gone from the hub. Nothing changes it any more. */
export function isDone(view: UploadView): boolean {
  return ENDED.has(view.state);
}

/** Still in its upload phase, so it moves only while a writer sends. */
export function isReceiving(view: UploadView): boolean {
  return view.state === 'starting' || view.state === 'created' || view.state === 'uploading';
}

/** The upload needs its client (or, for the client itself, its connection) back before it moves again. */
export function isWaiting(view: UploadView): boolean {
  return !isDone(view) && !view.cancelling && !view.paused && isReceiving(view) && view.attached === false;
}

/**
 * The whole bar's ETA from one progress event. While processing, the hub's own estimate already
 * runs to 100%. While uploading it runs to the end of the upload phase only; nobody can know how
 * fast the stages will go, so this assumes the bar keeps the pace the upload gives it: the
 * upload fills `share = percent × total / bytes` of the bar, so the bar moves
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
  if (!isReceiving(next) || isWaiting(next)) next.bytesPerSecond = 0;
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

/**
 * The reducer: a hub event, or a status asked for at `askedAt` (default `now`), applied to the
 * view. Statuses carry no `type`; events always do.
 */
export function reduce(view: UploadView, input: HubEvent | UploadStatus, now: number, askedAt = now): UploadView {
  return 'type' in input ? withEvent(view, input, now) : withStatus(view, input, now, askedAt);
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

/** The client's own connection dropped: its uploads wait for it, at no speed. */
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

/** The upload speed to show now, bytes/s: 0 unless bytes are moving (as for a sum over uploads). */
export function liveRate(view: UploadView): number {
  return !isDone(view) && !view.cancelling && !view.paused && !isWaiting(view) && isReceiving(view) && view.phase === 'upload' ? view.bytesPerSecond : 0;
}
