/**
 * The upload page (`/`): pick or drop files; each gets one bar that moves from 0 to 100 through
 * the upload and the processing stages, its facts (phase, stage, queue position, speed, ETA),
 * its log lines, a Cancel button and, at the end, the result.
 *
 * What each item shows comes from the mapping both pages share (view.ts). After a reconnect,
 * each unfinished item's status is asked for, so one that ended meanwhile shows how.
 *
 * Every element an upload owns carries `data-state`, `data-phase` and `data-waiting`, so tests
 * and styles follow the same truth the user sees.
 */
import { UploadClient, UploadHubError, type UploadHandle, type UploadResult } from '../index.js';
import { settleFromStatus } from '../UploadClient.js';
import type { HubEvent, LogLevel, UploadStatus } from '../../shared/messages.js';
import { appendLine, byId, clientOptionsFromLocation, clock, h, uniqueId } from './dom.js';
import { formatBytes } from './format.js';
import { StatusQueue, Ticker } from './refresh.js';
import {
  isCountingDown, isDone, present, startingView, withCancelling, withConnectionLost, withEnd, withEvent, withStatus, type UploadView,
} from './view.js';

/** This page is the uploads' client: when they wait, they wait for its connection. */
const WAITING_TEXT = 'waiting for connection';

/** One file on the page. */
class UploadItem {
  readonly element: HTMLLIElement;
  private readonly bar: HTMLProgressElement;
  private readonly percentText: HTMLElement;
  private readonly stateBadge: HTMLElement;
  private readonly facts: Record<'phase' | 'stage' | 'queue' | 'rate' | 'eta', HTMLElement>;
  private readonly log: HTMLOListElement;
  private readonly result: HTMLElement;
  private readonly cancelButton: HTMLButtonElement;
  private view: UploadView;
  private counting = false;
  /** `done` (or a status after a reconnect) told how it ended; the end is shown once. */
  private settled = false;
  id: string | undefined;

  constructor(private readonly file: File, onCancel: () => void) {
    this.view = startingView(Date.now(), file.size);
    const id = uniqueId('upload');
    const name = h('h3', { class: 'name', id: `${id}-name` }, file.name || 'unnamed');
    this.bar = h('progress', { class: 'bar', id: `${id}-bar`, max: 100, value: 0, 'aria-labelledby': `${id}-name`, 'aria-describedby': `${id}-facts` });
    this.percentText = h('span', { class: 'percent', 'aria-hidden': 'true' }, '0%');
    this.stateBadge = h('span', { class: 'badge state' }, 'starting');
    this.cancelButton = h('button', { type: 'button', class: 'cancel', 'aria-label': `Cancel upload of ${file.name}` }, 'Cancel');
    this.cancelButton.addEventListener('click', onCancel);
    const fact = (key: string, label: string) => {
      const dd = h('dd', { class: key }, '—');
      return { dd, pair: h('div', {}, h('dt', {}, label), dd) };
    };
    const phase = fact('phase', 'Phase');
    const stage = fact('stage', 'Stage');
    const queue = fact('queue', 'Queue');
    const rate = fact('rate', 'Speed');
    const eta = fact('eta', 'ETA');
    this.facts = { phase: phase.dd, stage: stage.dd, queue: queue.dd, rate: rate.dd, eta: eta.dd };
    this.log = h('ol', { class: 'log', role: 'log', 'aria-label': `Log of ${file.name}` });
    this.result = h('div', { class: 'result', hidden: true });
    this.element = h(
      'li',
      { class: 'upload', id, 'data-state': 'starting', 'data-phase': 'upload' },
      h('div', { class: 'upload-head' }, name, h('span', { class: 'size' }, formatBytes(file.size)), this.stateBadge, this.cancelButton),
      h('div', { class: 'bar-row' }, this.bar, this.percentText),
      h('dl', { class: 'facts', id: `${id}-facts` }, phase.pair, stage.pair, queue.pair, rate.pair, eta.pair),
      this.log,
      this.result,
    );
    this.render(Date.now());
  }

  created(uploadId: string): void {
    this.id = uploadId;
    this.element.dataset.uploadId = uploadId;
    this.line('info', `Created upload ${uploadId} (${formatBytes(this.file.size)})`);
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

  line(level: LogLevel, text: string, stage?: string): void {
    const prefix = stage === undefined ? '' : `[${stage}] `;
    appendLine(this.log, h('li', { class: `level-${level}` }, h('time', {}, clock()), ` ${prefix}${text}`));
  }

  cancelling(): void {
    if (isDone(this.view)) return;
    this.view = withCancelling(this.view);
    this.line('info', 'Cancelling…');
    this.render(Date.now());
  }

  completed(result: UploadResult): void {
    if (this.settled) return;
    this.settled = true;
    this.view = withEnd(this.view, 'completed', Date.now());
    this.render(Date.now());
    this.line('info', 'Completed');
    this.result.replaceChildren(
      h('p', {}, 'sha256 ', h('code', { class: 'sha256' }, result.sha256 ?? 'unknown')),
      ...(result.result === undefined ? [] : [h('pre', { class: 'result-json' }, JSON.stringify(result.result, null, 2))]),
    );
    this.result.hidden = false;
  }

  ended(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    const hubError = error instanceof UploadHubError ? error : new UploadHubError('ERR_INTERNAL', String(error));
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

  private render(now: number): void {
    const shown = present(this.view, now, WAITING_TEXT);
    this.element.dataset.state = shown.state;
    this.element.dataset.phase = this.view.phase;
    this.element.dataset.waiting = String(shown.waiting);
    this.stateBadge.textContent = shown.badge;
    this.bar.value = shown.percent;
    this.percentText.textContent = shown.percentText;
    this.facts.phase.textContent = shown.phase;
    this.facts.stage.textContent = shown.stage;
    this.facts.queue.textContent = shown.queue;
    this.facts.rate.textContent = shown.rate;
    this.facts.eta.textContent = shown.eta;
    this.cancelButton.disabled = isDone(this.view) || this.view.cancelling;
  }
}

const options = clientOptionsFromLocation();
const client = new UploadClient(options);
const list = byId('uploads', HTMLOListElement);
const empty = byId('empty', HTMLElement);
const input = byId('files', HTMLInputElement);
const drop = byId('drop', HTMLElement);
const connection = byId('connection', HTMLElement);
const active = new Set<UploadHandle>();
const items = new Set<UploadItem>();

function setConnection(state: 'live' | 'reconnecting' | 'down', text: string): void {
  connection.dataset.connection = state;
  connection.textContent = text;
}

/** Once a second while an ETA counts down and the page is visible. */
const ticker = new Ticker(() => {
  const now = Date.now();
  let needed = false;
  for (const item of items) if (item.tick(now)) needed = true;
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

function start(file: File): void {
  empty.hidden = true;
  let handle: UploadHandle;
  const item = new UploadItem(file, () => {
    item.cancelling();
    void handle.cancel();
  });
  list.prepend(item.element);
  items.add(item);
  try {
    handle = client.upload(file, { name: file.name || 'upload.bin' });
  } catch (error) {
    item.ended(error);
    return;
  }
  active.add(handle);
  handle.on('created', (id) => {
    setConnection('live', 'Connected');
    item.created(id);
  });
  handle.on('event', (event) => {
    item.event(event);
    wake(item);
  });
  handle.on('log', (line) => item.line(line.level, line.text, line.stage));
  handle.done.then(
    (result) => item.completed(result),
    (error: unknown) => item.ended(error),
  ).finally(() => active.delete(handle));
}

function startAll(files: FileList | null): void {
  for (const file of Array.from(files ?? [])) start(file);
}

input.addEventListener('change', () => {
  startAll(input.files);
  // Lets the same file be picked again.
  input.value = '';
});
drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('dragging');
});
drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('dragging');
  startAll(event.dataTransfer?.files ?? null);
});
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
document.body.dataset.ready = 'true';
