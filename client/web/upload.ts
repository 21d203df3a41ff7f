/**
 * The upload page (`/`): drop files on the drop zone (a button: Enter or Space opens the file
 * picker); each gets one bar that moves from 0 to 100 through the upload and the processing
 * stages, its facts (bytes sent, phase, stage, queue position, speed, ETA), its last log lines
 * with warnings and errors pinned, the result summarized, and Pause / Resume / Cancel / Retry.
 * A bar for all files sums them up. Uploads are remembered in the client's fingerprint store
 * (localStorage), so after a reload the unfinished ones are listed, and picking the same file
 * again continues from the hub's committed offset.
 *
 * What each item shows comes from the mapping both pages share (view.ts). After a reconnect,
 * each unfinished item's status is asked for, so one that ended meanwhile shows how.
 *
 * Every element an upload owns carries `data-state`, `data-phase` and `data-waiting`, so tests
 * and styles follow the same truth the user sees.
 */
import {
  localStorageFingerprints, UploadClient, UploadHubError, type FingerprintEntry, type FingerprintStore, type UploadHandle, type UploadOptions,
  type UploadResult,
} from '../index.js';
import { settleFromStatus } from '../handle.js';
import type { HubEvent, LogLevel, UploadStatus } from '../../shared/messages.js';
import { isTerminalState } from '../../shared/messages.js';
import { cancelUpload, type HubAddress } from './api.js';
import { appendLine, byId, clientOptionsFromLocation, clock, h, uniqueId } from './dom.js';
import { formatBytes, formatPercent, summarizeResult } from './format.js';
import { StatusQueue, Ticker } from './refresh.js';
import {
  aggregate, isCountingDown, isDone, present, presentAggregate, startingView, withCancelling, withConnectionLost, withEnd, withEvent, withPaused,
  withStatus, type UploadView,
} from './view.js';

// ---------------------------------------------------------------------------------------------
// The client API this page needs beyond upload() and cancel() — pause/resume, resumeUpload and
// the fingerprint store — in one adapter, so the rest of the page never calls it directly.

const resumable = {
  /** The client remembers uploads here, by file fingerprint, so picking a file again continues it. */
  store(): FingerprintStore {
    return localStorageFingerprints();
  },
  pause(handle: UploadHandle): void {
    handle.pause();
  },
  resume(handle: UploadHandle): void {
    handle.resume();
  },
  /** Calls `listener` with the committed offset the hub continues from, each time it takes the upload. */
  onAttached(handle: UploadHandle, listener: (offset: number) => void): void {
    handle.on('attached', listener);
  },
  /** Calls `listener` whenever the client pauses or resumes it, with whether it is paused now. */
  onPause(handle: UploadHandle, listener: (paused: boolean) => void): void {
    handle.on('paused', () => listener(true));
    handle.on('resumed', () => listener(false));
  },
  /** Continues upload `id` from the hub's committed offset. */
  continueUpload(target: UploadClient, id: string, file: File, options: UploadOptions): UploadHandle {
    return target.resumeUpload(id, file, options);
  },
};

// ---------------------------------------------------------------------------------------------

/** This page is the uploads' client: when they wait, they wait for its connection. */
const WAITING_TEXT = 'waiting for connection';
/** Lines kept per item: the box shows the last few, "Full log" all of them. */
const MAX_LOG_LINES = 1000;
/** Lines the log box shows before it scrolls (its CSS height), so the toggle is only offered beyond. */
const TAIL_LINES = 4;
/** Warnings and errors pinned above the log, so none scrolls out of sight. */
const MAX_ALERTS = 3;
/** Unfinished uploads listed after a reload, newest first. */
const MAX_UNFINISHED = 50;

type Action = 'pause' | 'resume' | 'cancel' | 'retry';

/** One file on the page, across its attempts (a retry reuses the item). */
class UploadItem {
  readonly element: HTMLLIElement;
  readonly name: string;
  private readonly bar: HTMLProgressElement;
  private readonly percentText: HTMLElement;
  private readonly stateBadge: HTMLElement;
  private readonly facts: Record<'sent' | 'phase' | 'stage' | 'queue' | 'rate' | 'eta', HTMLElement>;
  private readonly alerts: HTMLOListElement;
  private readonly log: HTMLOListElement;
  private readonly logToggle: HTMLButtonElement;
  private readonly result: HTMLElement;
  private readonly buttons: Record<Action, HTMLButtonElement>;
  private view: UploadView;
  private counting = false;
  /** `done` (or a status after a reconnect) told how it ended; the end is shown once. */
  private settled = false;
  /** What was last announced, so only changes of state are read out. */
  private announced = '';
  id: string | undefined;
  /** The attempt under way; events of an earlier one are ignored. */
  handle: UploadHandle | undefined;
  /** How the last attempt failed, for Retry. */
  lastError: UploadHubError | undefined;

  constructor(readonly file: File, private readonly onAction: (item: UploadItem, action: Action) => void) {
    this.view = startingView(Date.now(), file.size);
    this.name = file.name || 'unnamed';
    const id = uniqueId('upload');
    const name = h('h3', { class: 'name', id: `${id}-name` }, this.name);
    this.bar = h('progress', { class: 'bar', id: `${id}-bar`, max: 100, value: 0, 'aria-labelledby': `${id}-name`, 'aria-describedby': `${id}-facts` });
    this.percentText = h('span', { class: 'percent', 'aria-hidden': 'true' }, '0%');
    this.stateBadge = h('span', { class: 'badge state' }, 'starting');
    const button = (action: Action, label: string, className: string) => {
      const element = h('button', { type: 'button', class: className, 'aria-label': `${label} upload of ${this.name}` }, label);
      element.addEventListener('click', () => this.onAction(this, action));
      return element;
    };
    this.buttons = {
      pause: button('pause', 'Pause', `pause secondary`),
      resume: button('resume', 'Resume', `resume secondary`),
      retry: button('retry', 'Retry', `retry secondary`),
      cancel: button('cancel', 'Cancel', 'cancel'),
    };
    this.buttons.pause.hidden = true;
    this.buttons.resume.hidden = true;
    this.buttons.retry.hidden = true;
    const fact = (key: string, label: string) => {
      const dd = h('dd', { class: key }, '—');
      return { dd, pair: h('div', {}, h('dt', {}, label), dd) };
    };
    const sent = fact('sent', 'Sent');
    const phase = fact('phase', 'Phase');
    const stage = fact('stage', 'Stage');
    const queue = fact('queue', 'Queue');
    const rate = fact('rate', 'Speed');
    const eta = fact('eta', 'ETA');
    this.facts = { sent: sent.dd, phase: phase.dd, stage: stage.dd, queue: queue.dd, rate: rate.dd, eta: eta.dd };
    this.alerts = h('ol', { class: 'alerts', 'aria-label': `Warnings and errors of ${this.name}` });
    this.log = h('ol', { class: 'log', id: `${id}-log`, role: 'log', tabindex: 0, 'aria-label': `Log of ${this.name}`, 'data-expanded': 'false' });
    this.logToggle = h('button', { type: 'button', class: 'log-toggle link', 'aria-controls': `${id}-log`, 'aria-expanded': 'false', hidden: true }, 'Full log');
    this.logToggle.addEventListener('click', () => this.toggleLog());
    this.result = h('div', { class: 'result', hidden: true });
    this.element = h(
      'li',
      { class: 'upload', id, 'data-state': 'starting', 'data-phase': 'upload', 'aria-labelledby': `${id}-name` },
      h(
        'div',
        { class: 'upload-head' },
        name,
        h('span', { class: 'size' }, formatBytes(file.size)),
        this.stateBadge,
        h('span', { class: 'actions' }, this.buttons.pause, this.buttons.resume, this.buttons.retry, this.buttons.cancel),
      ),
      h('div', { class: 'bar-row' }, this.bar, this.percentText),
      h('dl', { class: 'facts', id: `${id}-facts` }, sent.pair, phase.pair, stage.pair, queue.pair, rate.pair, eta.pair),
      this.alerts,
      this.log,
      this.logToggle,
      this.result,
    );
    this.render(Date.now());
  }

  get current(): UploadView {
    return this.view;
  }

  /** The hub named this attempt's upload (created, or continued from the fingerprint store). */
  named(uploadId: string): void {
    if (this.id === uploadId) return;
    this.id = uploadId;
    this.element.dataset.uploadId = uploadId;
  }

  /** Every hub event about this upload: the same mapping the dashboard uses. */
  event(event: HubEvent): void {
    const wasDone = isDone(this.view);
    this.view = withEvent(this.view, event, Date.now());
    if (!wasDone) {
      if (event.type === 'uploaded') this.line('info', `All ${formatBytes(event.bytes)} received; sha256 ${event.sha256}`);
      if (event.type === 'stage') this.line('info', `Stage ${event.stage} started (${event.index + 1} of ${event.count})`);
    }
    this.render(Date.now());
  }

  /** The hub's status, asked for at `askedAt` (after a reconnect). */
  status(status: UploadStatus, askedAt: number): void {
    this.view = withStatus(this.view, status, Date.now(), askedAt);
    this.render(Date.now());
    // It ended while the page was not listening; `done` may settle the same way later.
    const end = settleFromStatus(status);
    if (end instanceof UploadHubError) this.ended(end);
    else if (end) this.completed(end);
  }

  connectionLost(): void {
    this.view = withConnectionLost(this.view);
    this.render(Date.now());
  }

  /**
   * Pause or Resume was pressed (`asked`), or the client says the pause took effect or ended.
   * The page shows it paused at once: nothing new is sent from the press on.
   */
  paused(paused: boolean, asked: boolean): void {
    if (isDone(this.view)) return;
    this.view = withPaused(this.view, paused);
    if (asked) this.line('info', paused ? 'Pausing: the chunks in flight finish first' : 'Resuming…');
    else this.line('info', paused ? 'Paused: nothing in flight, the hub keeps what it has' : 'Resumed');
    this.render(Date.now());
  }

  /** The hub took the upload on a connection; sending goes on from its committed `offset`. */
  attached(offset: number): void {
    // A new upload starts at 0: nothing worth saying.
    if (offset > 0 && !isDone(this.view)) this.line('info', `Sending from ${formatBytes(offset)} of ${formatBytes(this.file.size)} (byte ${offset}): the hub has the rest`);
  }

  line(level: LogLevel, text: string, stage?: string): void {
    const prefix = stage === undefined ? '' : `[${stage}] `;
    const entry = () => h('li', { class: `level-${level}` }, h('time', {}, clock()), ` ${prefix}${text}`);
    appendLine(this.log, entry(), MAX_LOG_LINES);
    if (level === 'warn' || level === 'error') appendLine(this.alerts, entry(), MAX_ALERTS);
    const lines = this.log.childElementCount;
    this.logToggle.hidden = lines <= TAIL_LINES;
    this.logToggle.textContent = this.log.dataset.expanded === 'true' ? 'Fewer lines' : `Full log (${lines} lines)`;
  }

  cancelling(): void {
    if (isDone(this.view)) return;
    this.view = withCancelling(this.view);
    this.line('info', 'Cancelling…');
    this.render(Date.now());
  }

  /** A new attempt on the same item: the bar starts over, the log goes on. */
  restart(text: string): void {
    this.settled = false;
    this.lastError = undefined;
    this.view = startingView(Date.now(), this.file.size);
    this.alerts.replaceChildren();
    this.result.replaceChildren();
    this.result.hidden = true;
    this.line('info', text);
    this.render(Date.now());
  }

  completed(result: UploadResult): void {
    if (this.settled) return;
    this.settled = true;
    this.named(result.id);
    this.view = withEnd(this.view, 'completed', Date.now());
    this.render(Date.now());
    this.line('info', 'Completed');
    const summary = summarizeResult(result.result);
    this.result.replaceChildren(
      h('p', {}, 'sha256 ', h('code', { class: 'sha256' }, result.sha256 ?? 'unknown')),
      ...(summary.length === 0 ? [] : [h('ul', { class: 'result-summary', 'aria-label': `Result of ${this.name}` }, ...summary.map((text) => h('li', {}, text)))]),
      // The whole JSON on demand: it can be long.
      ...(result.result === undefined
        ? []
        : [h('details', { class: 'result-details' }, h('summary', {}, 'Result JSON'), h('pre', { class: 'result-json' }, JSON.stringify(result.result, null, 2)))]),
    );
    this.result.hidden = false;
  }

  ended(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    const hubError = error instanceof UploadHubError ? error : new UploadHubError('ERR_INTERNAL', String(error));
    this.lastError = hubError;
    if (hubError.code === 'ERR_CANCELLED') {
      this.view = withEnd(this.view, 'cancelled', Date.now(), hubError.stage);
      this.render(Date.now());
      this.line('warn', hubError.stage === undefined ? 'Cancelled' : `Cancelled during stage ${hubError.stage}`);
      return;
    }
    this.view = withEnd(this.view, hubError.code === 'ERR_EXPIRED' ? 'expired' : 'failed', Date.now(), hubError.stage);
    this.render(Date.now());
    this.line('error', `${hubError.code}: ${hubError.message}${hubError.stage === undefined ? '' : ` (stage ${hubError.stage})`}`);
    this.result.replaceChildren(h('p', { class: 'error' }, h('code', {}, hubError.code), ` ${hubError.message}`));
    this.result.hidden = false;
  }

  get finished(): boolean {
    return isDone(this.view);
  }

  countingDown(now: number): boolean {
    return isCountingDown(this.view, now);
  }

  /** Re-renders what time changes (the ETA); says whether it will change again. */
  tick(now: number): boolean {
    const counting = isCountingDown(this.view, now);
    // One more render after the countdown ends, so its last value is not left standing.
    if (counting || this.counting) this.render(now);
    this.counting = counting;
    return counting;
  }

  /** After a button's action hid it: keeps the keyboard on the item. */
  focusAfter(action: Action): void {
    const next = action === 'pause' ? this.buttons.resume : action === 'resume' ? this.buttons.pause : this.buttons.cancel;
    const target = next.hidden || next.disabled ? this.buttons.cancel : next;
    if (!target.hidden && !target.disabled) target.focus();
    else this.bar.focus();
  }

  private toggleLog(): void {
    const expanded = this.log.dataset.expanded !== 'true';
    this.log.dataset.expanded = String(expanded);
    this.logToggle.setAttribute('aria-expanded', String(expanded));
    this.logToggle.textContent = expanded ? 'Fewer lines' : `Full log (${this.log.childElementCount} lines)`;
    this.log.scrollTop = this.log.scrollHeight;
  }

  private render(now: number): void {
    const view = this.view;
    const shown = present(view, now, WAITING_TEXT);
    this.element.dataset.state = shown.state;
    this.element.dataset.phase = view.phase;
    this.element.dataset.waiting = String(shown.waiting);
    this.stateBadge.textContent = shown.badge;
    this.bar.value = shown.percent;
    this.percentText.textContent = shown.percentText;
    this.facts.sent.textContent = `${formatBytes(Math.min(view.bytes, view.total))} of ${formatBytes(view.total)}`;
    this.facts.phase.textContent = shown.phase;
    this.facts.stage.textContent = shown.stage;
    this.facts.queue.textContent = shown.queue;
    this.facts.rate.textContent = shown.rate;
    this.facts.eta.textContent = shown.eta;
    const done = isDone(view);
    const running = !done && !view.cancelling;
    // Processing, once started, runs to its end: only the upload phase pauses.
    const uploading = view.phase === 'upload' && (view.state === 'created' || view.state === 'uploading');
    this.buttons.pause.hidden = !(running && !view.paused && uploading && this.handle !== undefined);
    this.buttons.resume.hidden = !(running && view.paused);
    this.buttons.retry.hidden = !(done && view.state !== 'completed');
    this.buttons.cancel.disabled = !running;
    const news = `${shown.state}${shown.waiting ? ' waiting' : ''}`;
    if (news !== this.announced) {
      this.announced = news;
      announce(`${this.name}: ${shown.badge}`);
    }
    changed();
  }
}

const options = clientOptionsFromLocation();
const hubAddress: HubAddress = { base: location.origin, token: options.token };
const fingerprints = resumable.store();
const client = new UploadClient({ ...options, fingerprints });
const list = byId('uploads', HTMLOListElement);
const empty = byId('empty', HTMLElement);
const input = byId('files', HTMLInputElement);
const drop = byId('drop', HTMLButtonElement);
const connection = byId('connection', HTMLElement);
const announcer = byId('announcer', HTMLElement);
const total = {
  box: byId('total', HTMLElement),
  bar: byId('total-bar', HTMLProgressElement),
  percent: byId('total-percent', HTMLElement),
  summary: byId('total-summary', HTMLElement),
  bytes: byId('total-bytes', HTMLElement),
  rate: byId('total-rate', HTMLElement),
  eta: byId('total-eta', HTMLElement),
};
const unfinished = { section: byId('unfinished', HTMLElement), list: byId('unfinished-list', HTMLUListElement) };
const items = new Set<UploadItem>();
const active = new Set<UploadHandle>();

function setConnection(state: 'live' | 'reconnecting' | 'down', text: string): void {
  connection.dataset.connection = state;
  connection.textContent = text;
}

/** Keeps the last few announcements, so quick successive changes are all read out. */
function announce(text: string): void {
  announcer.append(h('span', {}, `${text}. `));
  while (announcer.childElementCount > 5) announcer.firstElementChild?.remove();
}

let totalDone = false;
let totalQueued = false;

/** An item changed: the bar for all files follows, once per task however many items changed. */
function changed(): void {
  if (totalQueued) return;
  totalQueued = true;
  queueMicrotask(() => {
    totalQueued = false;
    renderTotal(Date.now());
  });
}

function renderTotal(now: number): void {
  const sum = aggregate([...items].map((item) => item.current), now);
  const shown = presentAggregate(sum);
  total.box.hidden = items.size === 0;
  total.box.dataset.state = shown.done ? 'completed' : sum.files === 0 ? 'idle' : 'running';
  total.bar.value = shown.percent;
  total.percent.textContent = shown.percentText;
  total.summary.textContent = shown.summary;
  total.bytes.textContent = shown.bytes;
  total.rate.textContent = shown.rate;
  total.eta.textContent = shown.eta;
  if (shown.done && !totalDone) announce(`All files done: ${shown.summary}`);
  totalDone = shown.done;
}

/** Once a second while an ETA counts down and the page is visible. */
const ticker = new Ticker(() => {
  const now = Date.now();
  let needed = false;
  for (const item of items) if (item.tick(now)) needed = true;
  renderTotal(now);
  return needed;
}, () => document.visibilityState === 'visible');

/** After a change to `item`: starts the ticker if its ETA counts down (the ticker stops itself). */
function wake(item: UploadItem): void {
  if (item.countingDown(Date.now())) ticker.update(true);
}

document.addEventListener('visibilitychange', () => {
  // Hidden, the ticker stops; visible again, every item is brought up to now at once.
  const now = Date.now();
  let needed = false;
  for (const item of items) if (item.tick(now)) needed = true;
  renderTotal(now);
  ticker.update(needed);
});

// After a reconnect the client resumes its uploads; the hub's status says at once where each
// one is, including how it ended if it ended while the page was away.
const statuses = new StatusQueue({
  base: location.origin,
  token: options.token,
  onStatus(id, status, askedAt) {
    for (const item of items) {
      if (item.id !== id) continue;
      if (status !== 'gone') item.status(status, askedAt);
      wake(item);
    }
  },
});

function uploadOptions(file: File): UploadOptions {
  return { name: file.name || 'upload.bin' };
}

/** Follows one attempt of `item`; `fallback` starts a fresh upload when continuing turns out impossible. */
function follow(item: UploadItem, handle: UploadHandle, fallback?: () => void): void {
  item.handle = handle;
  active.add(handle);
  const mine = () => item.handle === handle;
  const name = (id: string) => {
    if (!mine() || item.id === id) return;
    item.named(id);
    claimUnfinished(item, id);
    setConnection('live', 'Connected');
  };
  handle.on('created', (id) => {
    if (!mine()) return;
    name(id);
    item.line('info', `Upload ${id} (${formatBytes(item.file.size)})`);
  });
  handle.on('event', (event) => {
    if (!mine()) return;
    // A continued upload may be heard of before (or without) `created`.
    name(event.uploadId);
    item.event(event);
    wake(item);
  });
  handle.on('log', (line) => {
    if (mine()) item.line(line.level, line.text, line.stage);
  });
  resumable.onAttached(handle, (offset) => {
    if (mine()) item.attached(offset);
  });
  resumable.onPause(handle, (paused) => {
    if (mine()) item.paused(paused, false);
  });
  handle.done.then(
    (result) => {
      if (mine()) item.completed(result);
    },
    (error: unknown) => {
      if (!mine()) return;
      const code = error instanceof UploadHubError ? error.code : undefined;
      if (fallback && (code === 'ERR_NOT_FOUND' || code === 'ERR_UPLOAD_STATE')) {
        item.restart(`The hub cannot continue it (${code}): starting over`);
        fallback();
        return;
      }
      item.ended(error);
    },
  ).finally(() => {
    active.delete(handle);
    changed();
  });
}

/** A new upload of the item's file (the client continues a remembered one by itself). */
function send(item: UploadItem): void {
  let handle: UploadHandle;
  try {
    handle = client.upload(item.file, uploadOptions(item.file));
  } catch (error) {
    item.ended(error);
    return;
  }
  follow(item, handle);
}

function act(item: UploadItem, action: Action): void {
  const handle = item.handle;
  switch (action) {
    case 'pause':
      if (!handle) return;
      resumable.pause(handle);
      item.paused(true, true);
      break;
    case 'resume':
      if (!handle) return;
      resumable.resume(handle);
      item.paused(false, true);
      break;
    case 'cancel':
      if (!handle) return;
      item.cancelling();
      void handle.cancel();
      break;
    case 'retry': {
      const error = item.lastError;
      const id = item.id;
      // Given up by this client (its connection), the upload may still wait on the hub: continue it.
      const continued = error?.code === 'ERR_CONNECTION_LOST' && id !== undefined
        ? resumable.continueUpload(client, id, item.file, uploadOptions(item.file))
        : undefined;
      item.restart(continued ? `Retrying: continuing upload ${id}` : 'Retrying as a new upload');
      if (continued) follow(item, continued, () => send(item));
      else send(item);
      break;
    }
  }
  item.focusAfter(action);
}

function start(file: File): void {
  empty.hidden = true;
  const item = new UploadItem(file, act);
  list.prepend(item.element);
  items.add(item);
  send(item);
}

function startAll(files: FileList | null): void {
  for (const file of Array.from(files ?? [])) start(file);
}

// ---------------------------------------------------------------------------------------------
// Unfinished uploads from an earlier visit, as the fingerprint store remembers them.

const unfinishedRows = new Map<string, { entry: FingerprintEntry; element: HTMLLIElement }>();

function dropUnfinished(uploadId: string): void {
  unfinishedRows.get(uploadId)?.element.remove();
  unfinishedRows.delete(uploadId);
  unfinished.section.hidden = unfinishedRows.size === 0;
}

/** The item continues an upload listed as unfinished: it leaves the list. */
function claimUnfinished(item: UploadItem, uploadId: string): void {
  if (!unfinishedRows.has(uploadId)) return;
  dropUnfinished(uploadId);
  item.line('info', `Continuing upload ${uploadId} from the hub's offset`);
}

const unfinishedStatuses = new StatusQueue({
  base: location.origin,
  token: options.token,
  onStatus(id, status) {
    const row = unfinishedRows.get(id);
    if (!row) return;
    // The hub no longer has it, or it ended: nothing to continue.
    if (status === 'gone' || isTerminalState(status.state)) return dropUnfinished(id);
    row.element.dataset.bytes = String(status.bytes);
    const where = row.element.querySelector('.where');
    if (where) where.textContent = `${formatBytes(status.bytes)} of ${formatBytes(status.size)} on the hub (${formatPercent((status.bytes / Math.max(1, status.size)) * 100)})`;
  },
  onError(id) {
    const where = unfinishedRows.get(id)?.element.querySelector('.where');
    if (where) where.textContent = 'the hub cannot be asked now';
  },
});

function listUnfinished(entry: FingerprintEntry, store: FingerprintStore): void {
  const id = uniqueId('unfinished');
  const discard = h('button', { type: 'button', class: 'discard secondary', 'aria-label': `Discard unfinished upload of ${entry.name}` }, 'Discard');
  const pick = h('button', { type: 'button', class: 'pick', 'aria-label': `Pick ${entry.name} again to continue` }, 'Pick file…');
  const problem = h('span', { class: 'problem', role: 'alert' });
  const element = h(
    'li',
    { class: 'unfinished-item', id, 'data-upload-id': entry.uploadId, 'aria-labelledby': `${id}-name` },
    h('span', { class: 'name', id: `${id}-name` }, entry.name),
    h('span', { class: 'size' }, formatBytes(entry.size)),
    h('span', { class: 'where' }, `started ${new Date(entry.createdAt).toLocaleString()}`),
    problem,
    h('span', { class: 'actions' }, pick, discard),
  );
  pick.addEventListener('click', () => input.click());
  discard.addEventListener('click', () => {
    discard.disabled = true;
    cancelUpload(hubAddress, entry.uploadId).then(
      () => undefined,
      (error: unknown) => {
        // Already gone is what discarding wants; anything else and the hub still holds it.
        if (!(error instanceof UploadHubError && error.code === 'ERR_NOT_FOUND')) throw error;
      },
    ).then(
      () => store.remove(entry.fingerprint),
    ).then(
      () => {
        dropUnfinished(entry.uploadId);
        announce(`Discarded ${entry.name}`);
      },
      (error: unknown) => {
        discard.disabled = false;
        problem.textContent = `Could not discard: ${error instanceof UploadHubError ? error.code : String(error)}`;
      },
    );
  });
  unfinishedRows.set(entry.uploadId, { entry, element });
  unfinished.list.append(element);
  unfinished.section.hidden = false;
  unfinishedStatuses.check(entry.uploadId);
}

async function showUnfinished(store: FingerprintStore): Promise<void> {
  let entries: FingerprintEntry[];
  try {
    entries = await store.list();
  } catch {
    return;
  }
  const here = options.url.replace(/\/+$/, '');
  entries
    .filter((entry) => entry.url.replace(/\/+$/, '') === here)
    .sort((a, b) => b.createdAt - a.createdAt)
    .slice(0, MAX_UNFINISHED)
    // Picked again already in this visit (before the list was read).
    .filter((entry) => ![...items].some((item) => item.id === entry.uploadId))
    .forEach((entry) => listUnfinished(entry, store));
}

// ---------------------------------------------------------------------------------------------

input.addEventListener('change', () => {
  startAll(input.files);
  // Lets the same file be picked again.
  input.value = '';
});
drop.addEventListener('click', () => input.click());
drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
  drop.classList.add('dragging');
});
drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('dragging');
  startAll(event.dataTransfer?.files ?? null);
});
// A file dropped beside the zone would otherwise replace the page (and its uploads).
window.addEventListener('dragover', (event) => event.preventDefault());
window.addEventListener('drop', (event) => event.preventDefault());
window.addEventListener('beforeunload', (event) => {
  if (active.size > 0) event.preventDefault();
});

client.on('disconnected', () => {
  setConnection('reconnecting', 'Connection lost, reconnecting…');
  for (const item of items) item.connectionLost();
});
client.on('reconnecting', (attempt) => setConnection('reconnecting', `Reconnecting (attempt ${attempt})…`));
client.on('reconnected', () => {
  setConnection('live', 'Connected');
  for (const item of items) if (item.id !== undefined && !item.finished) statuses.check(item.id);
});
client.ping().then(
  (rtt) => setConnection('live', `Connected · ping ${Math.max(1, Math.round(rtt))} ms`),
  (error: unknown) => setConnection('down', `Hub unreachable: ${error instanceof Error ? error.message : String(error)}`),
);
void showUnfinished(fingerprints).finally(() => (document.body.dataset.unfinished = 'listed'));
document.body.dataset.ready = 'true';
