/**
 * The dashboard (`/dashboard`): every upload this principal may see, live, one row each, from
 * the hub's event stream (client.watch(): a snapshot, then throttled events), with a Cancel
 * button per row. Rows of finished uploads stay (marked) until "Clear finished".
 *
 * Events cannot say everything, so the hub's status (`GET /api/uploads/:id`) fills the gaps:
 * after a reconnect, for rows the new snapshot no longer lists (they ended meanwhile), and for
 * uploads silent for a few seconds (is their client still there?).
 *
 * Each row carries `data-upload-id`, `data-state` and `data-waiting` (its client went away).
 */
import { UploadClient, type UploadHubError } from '../index.js';
import { isTerminalState, type HubEvent, type UploadStatus } from '../../shared/messages.js';
import { byId, clientOptionsFromLocation, clock, h, uniqueId } from './dom.js';
import { formatBytes } from './format.js';
import { StatusQueue, Ticker } from './refresh.js';
import {
  createdView, isCountingDown, isDone, isQuiet, mayGoQuiet, present, withCancelling, withCancelRefused, withEnd, withEvent, withStatus, type UploadView,
} from './view.js';

const WAITING_TEXT = 'waiting for client';

class Row {
  readonly element: HTMLTableRowElement;
  private readonly name: HTMLElement;
  private readonly size: HTMLElement;
  private readonly owner: HTMLElement;
  private readonly stateBadge: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly percentText: HTMLElement;
  private readonly rate: HTMLElement;
  private readonly eta: HTMLElement;
  private readonly lastLog: HTMLElement;
  private readonly cancelButton: HTMLButtonElement;
  view: UploadView = createdView(Date.now());
  private counting = false;

  constructor(readonly uploadId: string, onCancel: (row: Row) => void) {
    const id = uniqueId('row');
    this.name = h('span', { class: 'name', id: `${id}-name` }, uploadId);
    this.size = h('span', { class: 'size' });
    this.owner = h('td', { class: 'owner' });
    this.stateBadge = h('span', { class: 'badge state' }, 'created');
    this.bar = h('progress', { class: 'bar', max: 100, value: 0, 'aria-labelledby': `${id}-name` });
    this.percentText = h('span', { class: 'percent', 'aria-hidden': 'true' }, '0%');
    this.rate = h('td', { class: 'rate' }, '—');
    this.eta = h('td', { class: 'eta' }, '—');
    this.lastLog = h('td', { class: 'last-log' });
    this.cancelButton = h('button', { type: 'button', class: 'cancel' }, 'Cancel');
    this.cancelButton.addEventListener('click', () => onCancel(this));
    this.element = h(
      'tr',
      { class: 'upload-row', 'data-upload-id': uploadId, 'data-state': 'created', 'data-phase': 'upload' },
      h('td', { class: 'file' }, this.name, h('br'), this.size),
      this.owner,
      h('td', {}, this.stateBadge),
      h('td', { class: 'col-progress' }, h('div', { class: 'bar-row' }, this.bar, this.percentText)),
      this.rate,
      this.eta,
      this.lastLog,
      h('td', {}, this.cancelButton),
    );
  }

  /** Everything the hub knows, from a snapshot, a `created` event or a status request sent at `askedAt`. */
  status(status: UploadStatus, askedAt?: number): void {
    this.describe(status);
    const now = Date.now();
    const wasDone = isDone(this.view);
    this.view = withStatus(this.view, status, now, askedAt ?? now);
    if (!wasDone && isDone(this.view)) this.endedUnseen(status);
    this.render(now);
  }

  event(event: HubEvent): void {
    const now = Date.now();
    if (event.type === 'created') this.describe(event.upload);
    if (event.type === 'progress' && this.size.textContent === '') this.size.textContent = formatBytes(event.total);
    const wasDone = isDone(this.view);
    this.view = withEvent(this.view, event, now);
    if (event.type === 'log' && !wasDone) {
      this.lastLog.textContent = `${clock(event.at)} ${event.stage === undefined ? '' : `[${event.stage}] `}${event.text}`;
      this.lastLog.className = `last-log level-${event.level}`;
    }
    if (event.type === 'failed' && !wasDone) this.logLine('error', `${event.error.code}: ${event.error.message}`);
    this.render(now);
  }

  cancelling(): void {
    this.view = withCancelling(this.view);
    this.render(Date.now());
  }

  cancelFailed(error: UploadHubError): void {
    this.view = withCancelRefused(this.view);
    this.logLine('error', `Cancel refused: ${error.code}`);
    this.render(Date.now());
  }

  /** The hub no longer knows this upload (it answered 404), so how it ended cannot be told. */
  gone(): void {
    if (isDone(this.view)) return;
    this.view = withEnd(this.view, 'gone', Date.now());
    this.logLine('warn', 'The hub no longer knows this upload');
    this.render(Date.now());
  }

  get finished(): boolean {
    return isDone(this.view);
  }

  /** Re-renders what time changes (the ETA); says whether time still matters to this row. */
  tick(now: number): boolean {
    const counting = isCountingDown(this.view, now);
    // One more render after the countdown ends, so its last value is not left standing.
    if (counting || this.counting) this.render(now);
    this.counting = counting;
    return this.needsTime(now);
  }

  needsTime(now: number): boolean {
    return isCountingDown(this.view, now) || mayGoQuiet(this.view);
  }

  quiet(now: number): boolean {
    return isQuiet(this.view, now);
  }

  private describe(status: UploadStatus): void {
    this.name.textContent = status.name;
    this.size.textContent = formatBytes(status.size);
    this.owner.textContent = status.owner;
    this.cancelButton.setAttribute('aria-label', `Cancel upload of ${status.name}`);
  }

  /** A status request, not an event, told how it ended: the page was not listening then. */
  private endedUnseen(status: UploadStatus): void {
    if (status.error) this.logLine('error', `${status.error.code}: ${status.error.message}`);
    else this.logLine('info', `${status.state} while the dashboard was away`);
  }

  private logLine(level: 'info' | 'warn' | 'error', text: string): void {
    this.lastLog.textContent = text;
    this.lastLog.className = `last-log level-${level}`;
  }

  private render(now: number): void {
    const shown = present(this.view, now, WAITING_TEXT);
    this.element.dataset.state = shown.state;
    this.element.dataset.phase = this.view.phase;
    this.element.dataset.waiting = String(shown.waiting);
    this.stateBadge.textContent = shown.badge;
    this.bar.value = shown.percent;
    this.percentText.textContent = shown.percentText;
    this.rate.textContent = shown.rate;
    this.eta.textContent = shown.eta;
    this.cancelButton.disabled = isDone(this.view) || this.view.cancelling;
  }
}

const options = clientOptionsFromLocation();
const client = new UploadClient({ ...options, maxReconnectAttempts: Number.POSITIVE_INFINITY });
const tbody = byId('rows', HTMLTableSectionElement);
const empty = byId('empty', HTMLElement);
const summary = byId('summary', HTMLElement);
const connection = byId('connection', HTMLElement);
const clear = byId('clear', HTMLButtonElement);
const rows = new Map<string, Row>();
let live = false;

function setConnection(state: 'live' | 'reconnecting' | 'down', text: string): void {
  live = state === 'live';
  connection.dataset.connection = state;
  connection.textContent = text;
}

function rowFor(uploadId: string): Row {
  let row = rows.get(uploadId);
  if (!row) {
    row = new Row(uploadId, (target) => {
      target.cancelling();
      watcher.cancel(target.uploadId).catch((error: UploadHubError) => target.cancelFailed(error));
    });
    rows.set(uploadId, row);
    tbody.prepend(row.element);
  }
  return row;
}

function updateSummary(): void {
  let activeCount = 0;
  for (const row of rows.values()) if (!row.finished) activeCount++;
  summary.textContent = `${activeCount} active${rows.size > activeCount ? `, ${rows.size - activeCount} finished` : ''}`;
  empty.hidden = rows.size > 0;
  clear.disabled = rows.size === activeCount;
}

// Events say nothing when an uploader goes away or while the page is disconnected: the hub's
// status fills those gaps.
const statuses = new StatusQueue({
  base: location.origin,
  token: options.token,
  onStatus(id, status, askedAt) {
    const row = rows.get(id);
    if (!row) return;
    if (status === 'gone') row.gone();
    else row.status(status, askedAt);
    updateSummary();
    wake(row);
  },
});

/** Once a second while anything counts down or may fall silent: ETAs tick, silent rows are asked about. */
const ticker = new Ticker(() => {
  const now = Date.now();
  let needed = false;
  for (const [id, row] of rows) {
    if (row.tick(now)) needed = true;
    if (live && row.quiet(now)) statuses.check(id);
  }
  return needed;
}, () => document.visibilityState === 'visible');

/** After a change to `row`: starts the ticker if time matters to it (the ticker stops itself). */
function wake(row: Row): void {
  if (row.needsTime(Date.now())) ticker.update(true);
}

document.addEventListener('visibilitychange', () => {
  // Hidden, the ticker stops; visible again, every row is brought up to now at once.
  const now = Date.now();
  let needed = false;
  for (const row of rows.values()) if (row.tick(now)) needed = true;
  ticker.update(needed);
});

const watcher = client.watch();
watcher.on('snapshot', (uploads) => {
  setConnection('live', 'Live');
  const listed = new Set(uploads.map((upload) => upload.id));
  for (const upload of uploads) {
    const row = rowFor(upload.id);
    row.status(upload);
    wake(row);
  }
  // The snapshot lists active uploads only: the rest ended (or vanished) while the page was away.
  for (const [id, row] of rows) if (!listed.has(id) && !row.finished) statuses.check(id);
  updateSummary();
});
watcher.on('event', (event) => {
  // Events of uploads that ended before this page saw them start are of no interest.
  if (!rows.has(event.uploadId) && isTerminalState(event.type)) return;
  const row = rowFor(event.uploadId);
  row.event(event);
  updateSummary();
  wake(row);
});
watcher.on('error', (error) => setConnection('down', `${error.code}: ${error.message}`));
client.on('disconnected', () => setConnection('reconnecting', 'Connection lost, reconnecting…'));
client.on('reconnecting', (attempt) => setConnection('reconnecting', `Reconnecting (attempt ${attempt})…`));

clear.addEventListener('click', () => {
  for (const [id, row] of rows) {
    if (!row.finished) continue;
    row.element.remove();
    rows.delete(id);
  }
  updateSummary();
});
updateSummary();
document.body.dataset.ready = 'true';
