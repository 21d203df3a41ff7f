/**
 * The dashboard (`/dashboard`): every upload this principal may see, live, one row each, from
 * the hub's event stream (client.watch(): a snapshot, then throttled events), with a Cancel
 * button per row. Rows of finished uploads stay (marked) until "Clear finished".
 *
 * Each row carries `data-upload-id` and `data-state`.
 */
import { UploadClient, type UploadHubError } from '../index.js';
import { isTerminalState, type HubEvent, type UploadStatus } from '../../shared/messages.js';
import { byId, clientOptionsFromLocation, clock, h, uniqueId } from './dom.js';
import { describeProgress, formatBytes, formatEta, formatPercent, formatRate, isFinished, type ProgressView } from './format.js';

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
  view: ProgressView = { state: 'created', phase: 'upload', percent: 0 };

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

  /** Everything the hub knows, from a snapshot or a `created` event. */
  status(status: UploadStatus): void {
    this.name.textContent = status.name;
    this.size.textContent = formatBytes(status.size);
    this.owner.textContent = status.owner;
    this.cancelButton.setAttribute('aria-label', `Cancel upload of ${status.name}`);
    this.view = {
      state: this.view.state === 'cancelling' && !isFinished(status.state) ? 'cancelling' : status.state,
      phase: status.phase,
      percent: Math.max(this.view.percent, status.percent),
      stage: status.stage,
      stagePercent: status.stagePercent,
      queuePosition: status.queuePosition,
    };
    this.render();
  }

  event(event: HubEvent): void {
    switch (event.type) {
      case 'created':
        this.status(event.upload);
        return;
      case 'progress':
        this.view = { ...this.view, phase: event.phase, percent: Math.max(this.view.percent, event.percent), stage: event.stage, stagePercent: event.stagePercent };
        if (this.size.textContent === '') this.size.textContent = formatBytes(event.total);
        this.rate.textContent = event.phase === 'upload' ? formatRate(event.bytesPerSecond) : '—';
        this.eta.textContent = formatEta(event.etaSeconds);
        break;
      case 'stage':
        this.view = { ...this.view, stage: event.stage, stagePercent: 0 };
        break;
      case 'log':
        this.lastLog.textContent = `${clock(event.at)} ${event.stage === undefined ? '' : `[${event.stage}] `}${event.text}`;
        this.lastLog.className = `last-log level-${event.level}`;
        break;
      case 'queued':
        this.setState('queued');
        this.view = { ...this.view, queuePosition: event.position };
        break;
      case 'processing':
        this.view = { ...this.view, phase: 'processing', queuePosition: undefined };
        this.setState('processing');
        break;
      case 'completed':
        this.view = { ...this.view, percent: 100 };
        this.eta.textContent = formatEta(0);
        this.setState('completed');
        break;
      case 'failed':
        this.lastLog.textContent = `${event.error.code}: ${event.error.message}`;
        this.lastLog.className = 'last-log level-error';
        this.setState('failed');
        break;
      case 'cancelled':
        if (event.stage !== undefined) this.view = { ...this.view, stage: event.stage };
        this.setState('cancelled');
        break;
      case 'uploaded':
        this.rate.textContent = '—';
        this.eta.textContent = '—';
        this.setState('uploaded');
        break;
      default:
        // uploading, expired: the event's type is the state.
        this.setState(event.type);
    }
    this.render();
  }

  cancelling(): void {
    this.setState('cancelling');
    this.cancelButton.disabled = true;
    this.render();
  }

  cancelFailed(error: UploadHubError): void {
    if (this.view.state === 'cancelling') this.view = { ...this.view, state: 'uploading' };
    this.cancelButton.disabled = false;
    this.lastLog.textContent = `Cancel refused: ${error.code}`;
    this.lastLog.className = 'last-log level-error';
    this.render();
  }

  /** The hub no longer lists it as active and we missed how it ended (we were disconnected). */
  vanished(): void {
    if (isFinished(this.view.state)) return;
    this.view = { ...this.view, state: 'expired' };
    this.lastLog.textContent = 'Ended while the dashboard was disconnected';
    this.render();
  }

  get finished(): boolean {
    return isFinished(this.view.state);
  }

  private setState(state: ProgressView['state']): void {
    if (isFinished(this.view.state)) return;
    if (this.view.state === 'cancelling' && !isFinished(state)) return;
    this.view = { ...this.view, state };
  }

  private render(): void {
    const { state, phase, percent } = this.view;
    this.element.dataset.state = state;
    this.element.dataset.phase = phase;
    this.stateBadge.textContent = describeProgress(this.view);
    this.bar.value = percent;
    this.percentText.textContent = formatPercent(percent);
    this.cancelButton.disabled = isFinished(state) || state === 'cancelling';
  }
}

const client = new UploadClient({ ...clientOptionsFromLocation(), maxReconnectAttempts: Number.POSITIVE_INFINITY });
const tbody = byId('rows', HTMLTableSectionElement);
const empty = byId('empty', HTMLElement);
const summary = byId('summary', HTMLElement);
const connection = byId('connection', HTMLElement);
const clear = byId('clear', HTMLButtonElement);
const rows = new Map<string, Row>();

function setConnection(state: 'live' | 'reconnecting' | 'down', text: string): void {
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

const watcher = client.watch();
watcher.on('snapshot', (uploads) => {
  setConnection('live', 'Live');
  const listed = new Set(uploads.map((upload) => upload.id));
  for (const [id, row] of rows) if (!listed.has(id)) row.vanished();
  for (const upload of uploads) rowFor(upload.id).status(upload);
  updateSummary();
});
watcher.on('event', (event) => {
  // Events of uploads that ended before this page saw them start are of no interest.
  if (!rows.has(event.uploadId) && isTerminalState(event.type)) return;
  rowFor(event.uploadId).event(event);
  updateSummary();
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
