/**
 * The dashboard (`/dashboard`): every upload this token may see — those that ended before the
 * page opened too — with summary tiles, a live chart of aggregate throughput, a sortable and
 * filterable table, a detail view per upload, and Cancel.
 *
 * Sources, all merged by upload id into one row each:
 * - ONE event stream, `GET /api/events` (SSE): a snapshot of the active uploads, then their events;
 *   EventSource reconnects by itself (client/web/feed.ts);
 * - the list, `GET /api/uploads?order=desc`, page by page ("Load older uploads"), fetched again
 *   after every reconnect so nothing that happened meanwhile is missed;
 * - statuses (`GET /api/uploads/:id`) where events cannot tell: an upload silent for a few
 *   seconds (is its client still there?), one that ended while the page was away.
 *
 * Each row carries `data-upload-id`, `data-state` and `data-waiting` (its client went away).
 */
import { UploadHubError } from '../../shared/errors.js';
import { isTerminalState, type ErrorInfo, type HubEvent, type JsonValue, type UploadStatus } from '../../shared/messages.js';
import { cancelUpload, fetchUploadPage, type HubAddress } from './api.js';
import {
  COLUMNS, DEFAULT_SORT, durationOf, HOUR_MS, isFilterState, matchesFilter, nextSort, NO_FILTER, OutcomeTally, sortEntries, STATE_FILTERS, timeline,
  type BoardEntry, type Column, type Filter, type Journal, type Sort,
} from './board.js';
import { ThroughputChart } from './chart.js';
import { appendLine, byId, clientOptionsFromLocation, clock, h, uniqueId } from './dom.js';
import { EventFeed } from './feed.js';
import { formatBytes, formatDuration, formatMebibytesPerSecond, formatPercent } from './format.js';
import { StatusQueue, Ticker } from './refresh.js';
import { ThroughputSeries } from './throughput.js';
import {
  createdView, isCountingDown, isDone, isQuiet, liveRate, mayGoQuiet, present, remainingSeconds, withCancelling, withCancelRefused, withEnd, withEvent, withStatus,
  type UploadView,
} from './view.js';

const WAITING_TEXT = 'waiting for client';
/** Rows per list page. */
const PAGE_SIZE = 50;
/** Log lines kept per upload. */
const MAX_LOG_LINES = 200;
/** The chart's width in time. */
const CHART_WINDOW_MS = 5 * 60_000;
/** How deep the hour's tally looks into the list of ended uploads, at most. */
const TALLY_PAGES = 10;
const TALLY_PAGE_SIZE = 500;

const COLUMN_LABELS: Record<Column, string> = {
  file: 'File', owner: 'Owner', size: 'Size', state: 'State', stage: 'Stage', percent: 'Progress', bytes: 'Bytes', speed: 'Speed', eta: 'ETA',
  created: 'Created', duration: 'Duration', error: 'Error',
};

const STATE_FILTER_LABELS: Partial<Record<string, string>> = { all: 'all', active: 'active', finished: 'finished' };

interface LogLine {
  seq: number;
  at: number;
  level: 'info' | 'warn' | 'error';
  text: string;
  stage: string | undefined;
}

/** One upload: what the hub said about it, what the page heard, and its table row. */
class Row {
  readonly element: HTMLTableRowElement;
  readonly nameButton: HTMLButtonElement;
  private readonly cells: Record<'owner' | 'size' | 'stage' | 'bytes' | 'rate' | 'eta' | 'created' | 'duration', HTMLElement>;
  private readonly stateBadge: HTMLElement;
  private readonly bar: HTMLProgressElement;
  private readonly percentText: HTMLElement;
  private readonly lastLog: HTMLElement;
  private readonly errorCode: HTMLElement;
  private readonly errorMessage: HTMLElement;
  private readonly cancelButton: HTMLButtonElement;
  view: UploadView = createdView(Date.now());
  /** The last status the hub gave (a snapshot, the list, a status request, a `created` event). */
  status: UploadStatus | undefined;
  name: string;
  error: ErrorInfo | undefined;
  result: JsonValue | undefined;
  /** Hub times of the steps the page heard. */
  readonly marks: { uploadedAt?: number; queuedAt?: number; processingAt?: number; endedAt?: number } = {};
  readonly stages: Array<{ name: string; at: number }> = [];
  readonly log: LogLine[] = [];
  private logSeq = 0;
  /** The page heard its `created` event, so every step it took was heard. */
  sawStart = false;
  /** When the page first heard of it (page time). */
  readonly firstHeardAt = Date.now();
  /** Something said how it stood before; a row's first word is not news to announce. */
  private heard = false;
  private counting = false;

  constructor(readonly uploadId: string, private readonly hooks: { cancel(row: Row): void; open(row: Row): void; ended(row: Row, announce: boolean): void }) {
    const id = uniqueId('row');
    this.name = uploadId;
    this.nameButton = h('button', { type: 'button', class: 'name link', id: `${id}-name`, 'aria-controls': 'detail', 'aria-expanded': 'false' }, uploadId);
    this.nameButton.addEventListener('click', () => hooks.open(this));
    this.lastLog = h('div', { class: 'last-log' });
    this.cells = {
      owner: h('td', { class: 'owner' }),
      size: h('td', { class: 'size num' }),
      stage: h('td', { class: 'stage' }, '—'),
      bytes: h('td', { class: 'bytes num' }),
      rate: h('td', { class: 'rate num' }, '—'),
      eta: h('td', { class: 'eta num' }, '—'),
      created: h('td', { class: 'created num' }),
      duration: h('td', { class: 'duration num' }),
    };
    this.stateBadge = h('span', { class: 'badge state' }, 'created');
    this.bar = h('progress', { class: 'bar', max: 100, value: 0, 'aria-labelledby': `${id}-name` });
    this.percentText = h('span', { class: 'percent', 'aria-hidden': 'true' }, '0%');
    this.errorCode = h('code', { class: 'error-code' });
    this.errorMessage = h('span', { class: 'error-message' });
    this.cancelButton = h('button', { type: 'button', class: 'cancel', 'aria-label': `Cancel upload ${uploadId}` }, 'Cancel');
    this.cancelButton.addEventListener('click', () => hooks.cancel(this));
    this.element = h(
      'tr',
      { class: 'upload-row', 'data-upload-id': uploadId, 'data-state': 'created', 'data-phase': 'upload' },
      h('td', { class: 'file' }, this.nameButton, this.lastLog),
      this.cells.owner,
      this.cells.size,
      h('td', {}, this.stateBadge),
      this.cells.stage,
      h('td', { class: 'col-progress' }, h('div', { class: 'bar-row' }, this.bar, this.percentText)),
      this.cells.bytes,
      this.cells.rate,
      this.cells.eta,
      this.cells.created,
      this.cells.duration,
      h('td', { class: 'error-cell' }, this.errorCode, h('br'), this.errorMessage),
      h('td', {}, this.cancelButton),
    );
  }

  /** Everything the hub knows, asked for at `askedAt`; `cancel`: the answer to this page's own cancel. */
  applyStatus(status: UploadStatus, askedAt?: number, source: 'status' | 'cancel' = 'status'): void {
    const now = Date.now();
    this.describe(status);
    this.update(() => withStatus(this.view, status, now, askedAt ?? now), status.updatedAt, source);
  }

  event(event: HubEvent): void {
    const now = Date.now();
    if (event.type === 'created') {
      this.sawStart = true;
      this.describe(event.upload);
    }
    const wasDone = isDone(this.view);
    if (!wasDone) this.note(event);
    this.update(() => withEvent(this.view, event, now), event.at, 'event');
  }

  cancelling(): void {
    this.view = withCancelling(this.view);
    this.render(Date.now());
  }

  cancelFailed(error: UploadHubError): void {
    this.view = withCancelRefused(this.view);
    this.logLine('error', `Cancel failed: ${error.code}: ${error.message}`, Date.now());
    this.render(Date.now());
  }

  /** The hub no longer knows this upload (it answered 404), so how it ended cannot be told. */
  gone(): void {
    if (isDone(this.view)) return;
    this.update(() => withEnd(this.view, 'gone', Date.now()), undefined, 'status');
    this.logLine('warn', 'The hub no longer knows this upload', Date.now());
  }

  get finished(): boolean {
    return isDone(this.view);
  }

  get owner(): string {
    return this.status?.owner ?? '';
  }

  /** Re-renders what time changes (ETA, duration); says whether time still matters to this row. */
  tick(now: number): boolean {
    const counting = isCountingDown(this.view, now);
    // One more render after the countdown ends, so its last value is not left standing.
    if (counting || this.counting || !this.finished) this.render(now);
    this.counting = counting;
    return this.needsTime(now);
  }

  needsTime(now: number): boolean {
    return !this.finished || isCountingDown(this.view, now) || mayGoQuiet(this.view);
  }

  quiet(now: number): boolean {
    return isQuiet(this.view, now);
  }

  entry(now: number): BoardEntry {
    const { view, status } = this;
    return {
      id: this.uploadId,
      name: this.name,
      owner: this.owner,
      size: status?.size ?? (view.total > 0 ? view.total : undefined),
      state: view.state,
      stage: view.stage,
      percent: view.percent,
      bytes: view.bytes,
      speed: liveRate(view),
      eta: remainingSeconds(view, now),
      createdAt: status?.createdAt,
      durationMs: durationOf(status?.createdAt, this.marks.endedAt, now),
      errorCode: this.error?.code,
      errorMessage: this.error?.message,
    };
  }

  journal(): Journal {
    const { view } = this;
    const uploaded = view.phase === 'processing' || view.stage !== undefined || ['uploaded', 'queued', 'processing', 'completed'].includes(view.state);
    return { createdAt: this.status?.createdAt, uploaded, ...this.marks, stages: this.stages, ended: this.finished };
  }

  /** Log lines after `seq`. */
  linesAfter(seq: number): LogLine[] {
    return this.log.filter((line) => line.seq > seq);
  }

  get lastSeq(): number {
    return this.logSeq;
  }

  setExpanded(open: boolean): void {
    this.nameButton.setAttribute('aria-expanded', String(open));
  }

  /** Applies a change; an upload that ends here is reported once, announced only if the page saw it going. */
  private update(change: () => UploadView, endedAt: number | undefined, source: 'status' | 'event' | 'cancel'): void {
    const wasDone = isDone(this.view);
    const wasHeard = this.heard;
    this.view = change();
    this.heard = true;
    if (!wasDone && isDone(this.view)) {
      this.marks.endedAt ??= endedAt;
      if (source === 'status' && wasHeard) this.endedUnseen();
      if (source === 'cancel') this.logLine('warn', 'Cancelled from this page', endedAt ?? Date.now());
      this.hooks.ended(this, wasHeard);
    }
    this.render(Date.now());
  }

  /** Remembers when each step began, and the log. */
  private note(event: HubEvent): void {
    switch (event.type) {
      case 'uploaded':
        this.marks.uploadedAt ??= event.at;
        break;
      case 'queued':
        this.marks.queuedAt ??= event.at;
        break;
      case 'processing':
        this.marks.processingAt ??= event.at;
        break;
      case 'stage':
        this.stages.push({ name: event.stage, at: event.at });
        break;
      case 'log':
        this.logLine(event.level, event.text, event.at, event.stage);
        break;
      case 'completed':
        if (event.result !== undefined) this.result = event.result;
        break;
      case 'failed':
        this.error = event.error;
        this.logLine('error', `${event.error.code}: ${event.error.message}`, event.at, event.error.stage);
        break;
      case 'cancelled':
        this.logLine('warn', 'Cancelled', event.at, event.stage);
        break;
      case 'expired':
        this.logLine('warn', 'Expired: its client did not come back in time', event.at);
        break;
      default:
        break;
    }
  }

  private describe(status: UploadStatus): void {
    this.status = status;
    this.name = status.name;
    if (status.error) this.error = status.error;
    if (status.result !== undefined) this.result = status.result;
    this.nameButton.textContent = status.name;
    this.cells.owner.textContent = status.owner;
    this.cells.size.textContent = formatBytes(status.size);
    this.cells.created.textContent = clock(status.createdAt);
    this.cells.created.title = new Date(status.createdAt).toLocaleString();
    this.cancelButton.setAttribute('aria-label', `Cancel upload of ${status.name}`);
  }

  /** A status request, not an event, told how it ended: the page was not listening then. */
  private endedUnseen(): void {
    const status = this.status;
    if (status?.error) this.logLine('error', `${status.error.code}: ${status.error.message}`, status.updatedAt);
    else this.logLine('info', `${this.view.state} while the dashboard was away`, Date.now());
  }

  private logLine(level: LogLine['level'], text: string, at: number, stage?: string): void {
    this.logSeq += 1;
    this.log.push({ seq: this.logSeq, at, level, text, stage });
    if (this.log.length > MAX_LOG_LINES) this.log.shift();
    this.lastLog.textContent = `${clock(at)} ${stage === undefined ? '' : `[${stage}] `}${text}`;
    // Cut to one line in the table; the whole line on hover, and in the detail's log.
    this.lastLog.title = this.lastLog.textContent;
    this.lastLog.className = `last-log level-${level}`;
  }

  render(now: number): void {
    const shown = present(this.view, now, WAITING_TEXT);
    this.element.dataset.state = shown.state;
    this.element.dataset.phase = this.view.phase;
    this.element.dataset.waiting = String(shown.waiting);
    this.stateBadge.textContent = shown.badge;
    this.cells.stage.textContent = shown.stage;
    this.bar.value = shown.percent;
    this.percentText.textContent = shown.percentText;
    this.cells.bytes.textContent = formatBytes(this.view.bytes);
    this.cells.rate.textContent = shown.rate;
    this.cells.eta.textContent = shown.eta;
    this.cells.duration.textContent = formatDuration(durationOf(this.status?.createdAt, this.marks.endedAt, now));
    this.errorCode.textContent = this.error?.code ?? '';
    this.errorMessage.textContent = this.error?.message ?? '';
    // Any principal that may see an upload may cancel it (the hub's one rule): offered while it runs.
    this.cancelButton.disabled = isDone(this.view) || this.view.cancelling;
  }
}

/** The detail panel: one upload's facts, steps with their durations, log, error and result. */
class Detail {
  private readonly panel = byId('detail', HTMLElement);
  private readonly title = byId('detail-title', HTMLHeadingElement);
  private readonly facts = byId('detail-facts', HTMLElement);
  private readonly error = byId('detail-error', HTMLElement);
  private readonly steps = byId('detail-steps', HTMLTableElement);
  private readonly note = byId('detail-note', HTMLElement);
  private readonly log = byId('detail-log', HTMLOListElement);
  private readonly logEmpty = byId('detail-log-empty', HTMLElement);
  private readonly result = byId('detail-result', HTMLPreElement);
  row: Row | undefined;
  private shownSeq = 0;

  constructor() {
    byId('detail-close', HTMLButtonElement).addEventListener('click', () => this.close());
    this.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.close();
    });
  }

  open(row: Row): void {
    this.row?.setExpanded(false);
    this.row = row;
    row.setExpanded(true);
    this.log.replaceChildren();
    this.shownSeq = 0;
    this.panel.hidden = false;
    this.panel.dataset.uploadId = row.uploadId;
    this.render(Date.now());
    this.title.focus();
  }

  close(): void {
    const row = this.row;
    if (!row) return;
    row.setExpanded(false);
    this.row = undefined;
    this.panel.hidden = true;
    delete this.panel.dataset.uploadId;
    // Back where the reader came from.
    if (row.element.isConnected) row.nameButton.focus();
  }

  render(now: number): void {
    const row = this.row;
    if (!row) return;
    const { status, view } = row;
    const shown = present(view, now, WAITING_TEXT);
    this.panel.dataset.state = shown.state;
    this.title.textContent = row.name;
    const facts: Array<[string, string]> = [
      ['Upload id', row.uploadId],
      ['Owner', row.owner || '—'],
      ['Size', status ? formatBytes(status.size) : '—'],
      ['Type', status?.mimeType ?? '—'],
      ['State', shown.badge],
      ['Progress', `${formatPercent(view.percent)} · ${formatBytes(view.bytes)}`],
      ['Created', status ? new Date(status.createdAt).toLocaleString() : '—'],
      ['Duration', formatDuration(durationOf(status?.createdAt, row.marks.endedAt, now))],
    ];
    if (status?.sha256) facts.push(['SHA-256', status.sha256]);
    for (const [key, value] of Object.entries(status?.metadata ?? {})) facts.push([`metadata.${key}`, value]);
    this.facts.replaceChildren(...facts.map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value))));

    this.error.hidden = row.error === undefined;
    if (row.error) {
      this.error.replaceChildren(h('code', {}, row.error.code), ` ${row.error.message}`, row.error.stage === undefined ? '' : ` (stage ${row.error.stage})`);
    }

    const tbody = this.steps.tBodies[0] as HTMLTableSectionElement;
    tbody.replaceChildren(
      ...timeline(row.journal(), now).map((step) => h(
        'tr',
        { class: 'step-row', 'data-step': step.name, 'data-kind': step.kind, 'data-running': String(step.running) },
        h('th', { scope: 'row' }, step.kind === 'stage' ? step.name : step.kind),
        h('td', {}, step.startedAt === undefined ? '—' : clock(step.startedAt)),
        h('td', { class: 'step-duration' }, `${formatDuration(step.durationMs)}${step.running ? ' (running)' : ''}`),
      )),
    );
    const unseen = !row.sawStart;
    this.note.hidden = !unseen;
    if (unseen) {
      this.note.textContent = row.finished && row.stages.length === 0
        ? 'It ended before this page opened: its steps, log and durations were not heard, only its status is known.'
        : `This page first heard of it at ${clock(row.firstHeardAt)}: steps and log lines before that were not heard.`;
    }

    for (const line of row.linesAfter(this.shownSeq)) {
      appendLine(this.log, h(
        'li',
        { class: `level-${line.level}` },
        h('time', { datetime: new Date(line.at).toISOString() }, clock(line.at)),
        ` ${line.stage === undefined ? '' : `[${line.stage}] `}${line.text}`,
      ), MAX_LOG_LINES);
    }
    this.shownSeq = row.lastSeq;
    this.logEmpty.hidden = this.log.childElementCount > 0;
    this.result.textContent = row.result === undefined ? '—' : JSON.stringify(row.result, null, 2);
  }
}

// ---------------------------------------------------------------------------------------------

const options = clientOptionsFromLocation();
const hub: HubAddress = { base: location.origin, token: options.token };
const tbody = byId('rows', HTMLTableSectionElement);
const empty = byId('empty', HTMLElement);
const summary = byId('summary', HTMLElement);
const connection = byId('connection', HTMLElement);
const listError = byId('list-error', HTMLElement);
const more = byId('more', HTMLButtonElement);
const stateSelect = byId('filter-state', HTMLSelectElement);
const ownerSelect = byId('filter-owner', HTMLSelectElement);
const announcer = byId('announcer', HTMLElement);
const tiles = {
  active: byId('tile-active', HTMLElement).querySelector('dd') as HTMLElement,
  rate: byId('tile-rate', HTMLElement).querySelector('dd') as HTMLElement,
  completed: byId('tile-completed', HTMLElement).querySelector('dd') as HTMLElement,
  failed: byId('tile-failed', HTMLElement).querySelector('dd') as HTMLElement,
  cancelled: byId('tile-cancelled', HTMLElement).querySelector('dd') as HTMLElement,
};
const chart = new ThroughputChart(byId('throughput', HTMLElement), byId('chart-scale', HTMLElement), byId('chart-caption', HTMLElement), CHART_WINDOW_MS);
const series = new ThroughputSeries(Date.now(), { windowMs: CHART_WINDOW_MS });
const tally = new OutcomeTally(HOUR_MS);
const detail = new Detail();
const rows = new Map<string, Row>();
const owners = new Set<string>();
let sort: Sort = { ...DEFAULT_SORT };
let filter: Filter = { ...NO_FILTER };
/** The list's next page: undefined before the first page, null once every page is in. */
let nextCursor: string | null | undefined;
let pagesLoaded = 0;
/** The last list request failed: the next connection fetches it again. */
let listFailed = false;

function setConnection(state: 'live' | 'reconnecting' | 'down', text: string): void {
  connection.dataset.connection = state;
  connection.textContent = text;
}

function announce(text: string): void {
  announcer.textContent = text;
}

function setValue(element: HTMLElement, value: number, text: string): void {
  element.dataset.value = String(value);
  element.textContent = text;
}

// --- the table -------------------------------------------------------------------------------

const headers = new Map<Column, HTMLTableCellElement>();
{
  const headRow = byId('columns', HTMLTableRowElement);
  for (const column of COLUMNS) {
    const button = h('button', { type: 'button', class: 'sort' }, COLUMN_LABELS[column]);
    const th = h('th', { scope: 'col', 'data-column': column, class: column === 'percent' ? 'col-progress' : undefined }, button);
    button.addEventListener('click', () => {
      sort = nextSort(sort, column);
      layout();
    });
    headers.set(column, th);
    headRow.append(th);
  }
  headRow.append(h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')));
  for (const value of STATE_FILTERS) stateSelect.append(h('option', { value }, STATE_FILTER_LABELS[value] ?? value));
}

stateSelect.addEventListener('change', () => {
  const value = stateSelect.value;
  filter = { ...filter, state: isFilterState(value) ? value : 'all' };
  layout();
});
ownerSelect.addEventListener('change', () => {
  filter = { ...filter, owner: ownerSelect.value === '' ? undefined : ownerSelect.value };
  layout();
});

function cancel(row: Row): void {
  row.cancelling();
  const askedAt = Date.now();
  cancelUpload(hub, row.uploadId).then(
    (status) => row.applyStatus(status, askedAt, 'cancel'),
    (error: UploadHubError) => {
      row.cancelFailed(error);
      announce(`Cancel of ${row.name} failed: ${error.code}`);
    },
  ).finally(changed);
}

function ended(row: Row, seen: boolean): void {
  series.forget(row.uploadId);
  tally.note(row.uploadId, row.view.state, row.marks.endedAt ?? Date.now());
  if (seen) announce(`${row.name}: ${row.view.state}`);
}

function rowFor(uploadId: string): Row {
  let row = rows.get(uploadId);
  if (!row) {
    row = new Row(uploadId, { cancel, open: (target) => detail.open(target), ended });
    rows.set(uploadId, row);
    tbody.append(row.element);
  }
  return row;
}

function applyStatus(status: UploadStatus, askedAt: number): Row {
  const row = rowFor(status.id);
  row.applyStatus(status, askedAt);
  if (!isTerminalState(status.state)) series.baseline(status.id, status.bytes);
  wake(row);
  return row;
}

let laidOut = false;
/** After any change: the table's order and filter, the counts, the tiles and the detail follow (once per task). */
function changed(): void {
  if (laidOut) return;
  laidOut = true;
  setTimeout(layout, 0);
}

function layout(): void {
  laidOut = false;
  const now = Date.now();
  // Order and filter.
  const entries = sortEntries([...rows.values()].map((row) => Object.assign(row.entry(now), { row })), sort);
  let child = tbody.firstElementChild;
  let shown = 0;
  for (const entry of entries) {
    const { element } = entry.row;
    element.hidden = !matchesFilter(entry, filter);
    if (!element.hidden) shown++;
    // Only rows out of place move, so a focused button stays put where it can.
    if (child === element) child = child.nextElementSibling;
    else tbody.insertBefore(element, child);
  }
  for (const [column, th] of headers) {
    if (column === sort.column) th.setAttribute('aria-sort', sort.direction);
    else th.removeAttribute('aria-sort');
  }
  // Owners seen, for the filter.
  let newOwner = false;
  for (const row of rows.values()) {
    if (row.owner !== '' && !owners.has(row.owner)) {
      owners.add(row.owner);
      newOwner = true;
    }
  }
  if (newOwner) {
    const selected = ownerSelect.value;
    ownerSelect.replaceChildren(h('option', { value: '' }, 'everyone'), ...[...owners].sort().map((owner) => h('option', { value: owner }, owner)));
    ownerSelect.value = selected;
  }
  let active = 0;
  for (const row of rows.values()) if (!row.finished) active++;
  const finished = rows.size - active;
  summary.textContent = `${active} active${finished > 0 ? `, ${finished} finished` : ''}${shown < rows.size ? ` · ${shown} shown` : ''}`;
  empty.hidden = shown > 0;
  empty.textContent = rows.size === 0 ? 'No uploads yet. Send one from the upload page or with upload-hub send FILE.' : 'No upload matches the filter.';
  more.hidden = typeof nextCursor !== 'string';
  updateTiles(now);
  detail.render(now);
}

let tallyTimer: ReturnType<typeof setTimeout> | undefined;
function updateTiles(now: number): void {
  let active = 0;
  let rate = 0;
  for (const row of rows.values()) {
    if (row.finished) continue;
    active++;
    rate += liveRate(row.view);
  }
  setValue(tiles.active, active, String(active));
  setValue(tiles.rate, Math.round(rate), formatMebibytesPerSecond(rate));
  const counts = tally.counts(now);
  setValue(tiles.completed, counts.completed, String(counts.completed));
  setValue(tiles.failed, counts.failed, String(counts.failed));
  setValue(tiles.cancelled, counts.cancelled, String(counts.cancelled));
  // Recount when the oldest end leaves the hour, even if nothing else happens by then.
  clearTimeout(tallyTimer);
  const expiry = tally.nextExpiry();
  if (expiry !== undefined) tallyTimer = setTimeout(() => updateTiles(Date.now()), Math.max(1000, expiry - now + 1000));
}

function drawChart(now: number): void {
  let rate = 0;
  for (const row of rows.values()) rate += liveRate(row.view);
  chart.draw(series.points(now), rate);
}

// --- the list --------------------------------------------------------------------------------

/** List requests one after another, so a reload and a "load more" never interleave their cursors. */
let listing: Promise<void> = Promise.resolve();
function queueListing(task: () => Promise<void>): Promise<void> {
  listing = listing.then(task).catch((error: unknown) => {
    const hubError = error instanceof UploadHubError ? error : new UploadHubError('ERR_INTERNAL', String(error));
    listFailed = true;
    listError.hidden = false;
    listError.textContent = `Could not list uploads: ${hubError.code}: ${hubError.message}`;
    if (hubError.code === 'ERR_UNAUTHORIZED') setConnection('down', `${hubError.code}: ${hubError.message}`);
  }).finally(changed);
  return listing;
}

function listed(): void {
  listFailed = false;
  listError.hidden = true;
  listError.textContent = '';
}

/** The next (older) page of the list. */
function loadMore(): Promise<void> {
  return queueListing(async () => {
    if (nextCursor === null) return;
    more.disabled = true;
    try {
      const askedAt = Date.now();
      const page = await fetchUploadPage(hub, { limit: PAGE_SIZE, cursor: nextCursor });
      for (const status of page.uploads) applyStatus(status, askedAt);
      nextCursor = page.nextCursor;
      pagesLoaded++;
      listed();
    } finally {
      more.disabled = false;
    }
  });
}

/** After a reconnect: the pages shown, again from the newest, so what changed meanwhile is shown. */
function reloadList(): Promise<void> {
  return queueListing(async () => {
    const pages = Math.max(1, pagesLoaded);
    let cursor: string | null = null;
    for (let index = 0; index < pages; index++) {
      const askedAt = Date.now();
      const page = await fetchUploadPage(hub, { limit: PAGE_SIZE, cursor });
      for (const status of page.uploads) applyStatus(status, askedAt);
      cursor = page.nextCursor;
      if (cursor === null) break;
    }
    nextCursor = cursor;
    pagesLoaded = Math.max(pagesLoaded, 1);
    listed();
  });
}

/** The last hour's ends, for the tiles, from as far down the list as they may reach. */
function loadTally(): Promise<void> {
  return queueListing(async () => {
    const since = Date.now() - HOUR_MS;
    let cursor: string | null = null;
    for (let index = 0; index < TALLY_PAGES; index++) {
      const page = await fetchUploadPage(hub, { limit: TALLY_PAGE_SIZE, cursor, state: ['completed', 'failed', 'cancelled'] });
      for (const status of page.uploads) tally.note(status.id, status.state, status.updatedAt);
      cursor = page.nextCursor;
      // Newest first by creation: below an hour's creations, ends within the hour are rare (long
      // uploads); those the table holds are counted all the same.
      if (cursor === null || (page.uploads.at(-1)?.createdAt ?? 0) < since) break;
    }
  });
}

more.addEventListener('click', () => void loadMore());

// --- time and silence ------------------------------------------------------------------------

// Events say nothing when an uploader goes away or while the page is disconnected: the hub's
// status fills those gaps.
const statuses = new StatusQueue({
  base: location.origin,
  token: options.token,
  onStatus(id, status, askedAt) {
    const row = rows.get(id);
    if (!row) return;
    if (status === 'gone') row.gone();
    else applyStatus(status, askedAt);
    changed();
  },
});

let live = false;

/** Once a second while anything moves or may fall silent and the page is visible: ETAs, durations, the chart, the tiles. */
const ticker = new Ticker(() => {
  const now = Date.now();
  let needed = series.hasData(now);
  for (const [id, row] of rows) {
    if (row.tick(now)) needed = true;
    if (live && row.quiet(now)) statuses.check(id);
  }
  drawChart(now);
  updateTiles(now);
  detail.render(now);
  return needed;
}, () => document.visibilityState === 'visible');

/** After a change to `row`: starts the ticker if time matters to it (the ticker stops itself). */
function wake(row: Row): void {
  if (row.needsTime(Date.now())) ticker.update(true);
}

document.addEventListener('visibilitychange', () => {
  // Hidden, the ticker stops; visible again, everything is brought up to now at once.
  const now = Date.now();
  let needed = series.hasData(now);
  for (const row of rows.values()) if (row.tick(now)) needed = true;
  drawChart(now);
  ticker.update(needed);
  changed();
});

// --- the one event stream --------------------------------------------------------------------

const eventsUrl = new URL('/api/events', location.origin);
// EventSource cannot send headers: the token goes in the query (see the README's caveat).
if (options.token !== undefined) eventsUrl.searchParams.set('token', options.token);

new EventFeed(eventsUrl, {
  open(reconnected) {
    live = true;
    setConnection('live', 'Live');
    void loadTally();
    if (reconnected || listFailed) void reloadList();
  },
  snapshot(uploads) {
    const askedAt = Date.now();
    const listedIds = new Set(uploads.map((upload) => upload.id));
    for (const upload of uploads) applyStatus(upload, askedAt);
    // The snapshot lists active uploads only: the rest ended (or vanished) while the page was away.
    for (const [id, row] of rows) if (!listedIds.has(id) && !row.finished) statuses.check(id);
    changed();
  },
  event(event) {
    const known = rows.has(event.uploadId);
    const row = rowFor(event.uploadId);
    // Heard of first through a later event: its name and owner come from its status.
    if (!known && event.type !== 'created') statuses.check(event.uploadId);
    if (event.type === 'created' && !isTerminalState(event.upload.state)) series.baseline(event.uploadId, event.upload.bytes);
    // Committed bytes, as progress reports them (and the last of them, as `uploaded` does).
    const committed = (event.type === 'progress' && event.phase === 'upload') || event.type === 'uploading' || event.type === 'uploaded' ? event.bytes : undefined;
    if (committed !== undefined && !row.finished && series.record(event.uploadId, committed, Date.now()) > 0) ticker.update(true);
    row.event(event);
    wake(row);
    changed();
  },
  lost(refused) {
    live = false;
    if (refused) {
      setConnection('down', 'The hub refused the event stream; retrying…');
      // The list answers with the reason (a refused token, say).
      void reloadList();
    } else {
      setConnection('reconnecting', 'Connection lost, reconnecting…');
    }
  },
});

void loadMore();
changed();
document.body.dataset.ready = 'true';
