/**
 * The upload page (`/`): pick or drop files; each gets one bar that moves from 0 to 100 through
 * the upload and the processing stages, its facts (phase, stage, queue position, speed, ETA),
 * its log lines, a Cancel button and, at the end, the result.
 *
 * Every element an upload owns carries `data-state` and `data-phase`, so tests and styles
 * follow the same truth the user sees.
 */
import { UploadClient, UploadHubError, type UploadHandle, type UploadProgress, type UploadResult } from '../index.js';
import type { HubEvent, LogLevel } from '../../shared/messages.js';
import { appendLine, byId, clientOptionsFromLocation, clock, h, uniqueId } from './dom.js';
import { describeProgress, formatBytes, formatEta, formatPercent, formatRate, isFinished, type ProgressView } from './format.js';

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
  private view: ProgressView = { state: 'starting', phase: 'upload', percent: 0 };

  constructor(private readonly file: File, onCancel: () => void) {
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
  }

  created(uploadId: string): void {
    this.element.dataset.uploadId = uploadId;
    this.line('info', `Created upload ${uploadId} (${formatBytes(this.file.size)})`);
    this.setState('uploading');
  }

  progress(progress: UploadProgress): void {
    this.view = { ...this.view, phase: progress.phase, percent: progress.percent, stage: progress.stage, stagePercent: progress.stagePercent, queuePosition: progress.queuePosition };
    this.bar.value = progress.percent;
    this.percentText.textContent = formatPercent(progress.percent);
    this.element.dataset.phase = progress.phase;
    this.facts.phase.textContent = progress.phase;
    this.facts.stage.textContent = progress.stage === undefined ? '—' : `${progress.stage} ${Math.floor(progress.stagePercent ?? 0)}%`;
    this.facts.queue.textContent = progress.queuePosition === undefined ? '—' : `#${progress.queuePosition}`;
    this.facts.rate.textContent = progress.phase === 'upload' ? formatRate(progress.bytesPerSecond) : '—';
    this.facts.eta.textContent = formatEta(progress.etaSeconds);
    this.render();
  }

  /** State changes the hub announces (uploading, uploaded, queued, processing). */
  event(event: HubEvent): void {
    switch (event.type) {
      case 'uploaded':
        this.line('info', `All ${formatBytes(event.bytes)} received; sha256 ${event.sha256}`);
        // The upload's speed and ETA are over; processing reports its own ETA.
        this.facts.rate.textContent = '—';
        this.facts.eta.textContent = '—';
        this.setState('uploaded');
        return;
      case 'queued':
        this.view = { ...this.view, queuePosition: event.position };
        this.facts.queue.textContent = `#${event.position}`;
        this.setState('queued');
        return;
      case 'processing':
        this.view = { ...this.view, phase: 'processing', queuePosition: undefined };
        this.facts.queue.textContent = '—';
        this.element.dataset.phase = 'processing';
        this.setState('processing');
        return;
      case 'stage':
        this.view = { ...this.view, stage: event.stage, stagePercent: 0 };
        this.line('info', `Stage ${event.stage} started (${event.index + 1} of ${event.count})`);
        this.render();
        return;
      default:
    }
  }

  line(level: LogLevel, text: string, stage?: string): void {
    const prefix = stage === undefined ? '' : `[${stage}] `;
    appendLine(this.log, h('li', { class: `level-${level}` }, h('time', {}, clock()), ` ${prefix}${text}`));
  }

  cancelling(): void {
    if (isFinished(this.view.state)) return;
    this.cancelButton.disabled = true;
    this.setState('cancelling');
    this.line('info', 'Cancelling…');
  }

  completed(result: UploadResult): void {
    this.bar.value = 100;
    this.percentText.textContent = '100%';
    this.view = { ...this.view, percent: 100 };
    this.facts.eta.textContent = formatEta(0);
    this.setState('completed');
    this.line('info', 'Completed');
    this.result.replaceChildren(
      h('p', {}, 'sha256 ', h('code', { class: 'sha256' }, result.sha256 ?? 'unknown')),
      ...(result.result === undefined ? [] : [h('pre', { class: 'result-json' }, JSON.stringify(result.result, null, 2))]),
    );
    this.result.hidden = false;
  }

  ended(error: unknown): void {
    const hubError = error instanceof UploadHubError ? error : new UploadHubError('ERR_INTERNAL', String(error));
    if (hubError.code === 'ERR_CANCELLED') {
      this.setState('cancelled');
      this.line('warn', hubError.stage === undefined ? 'Cancelled' : `Cancelled during stage ${hubError.stage}`);
      return;
    }
    this.setState(hubError.code === 'ERR_EXPIRED' ? 'expired' : 'failed');
    this.line('error', `${hubError.code}: ${hubError.message}${hubError.stage === undefined ? '' : ` (stage ${hubError.stage})`}`);
    this.result.replaceChildren(h('p', { class: 'error' }, h('code', {}, hubError.code), ` ${hubError.message}`));
    this.result.hidden = false;
  }

  private setState(state: ProgressView['state']): void {
    // A late progress or state event never takes a finished (or cancelling) upload back.
    if (isFinished(this.view.state) || (this.view.state === 'cancelling' && !isFinished(state))) return;
    this.view = { ...this.view, state };
    this.element.dataset.state = state;
    if (isFinished(state)) this.cancelButton.disabled = true;
    this.render();
  }

  private render(): void {
    this.stateBadge.textContent = describeProgress(this.view);
  }
}

const client = new UploadClient(clientOptionsFromLocation());
const list = byId('uploads', HTMLOListElement);
const empty = byId('empty', HTMLElement);
const input = byId('files', HTMLInputElement);
const drop = byId('drop', HTMLElement);
const connection = byId('connection', HTMLElement);
const active = new Set<UploadHandle>();

function setConnection(state: 'live' | 'reconnecting' | 'down', text: string): void {
  connection.dataset.connection = state;
  connection.textContent = text;
}

function start(file: File): void {
  empty.hidden = true;
  let handle: UploadHandle;
  const item = new UploadItem(file, () => {
    item.cancelling();
    void handle.cancel();
  });
  list.prepend(item.element);
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
  handle.on('progress', (progress) => item.progress(progress));
  handle.on('event', (event) => item.event(event));
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

client.on('disconnected', () => setConnection('reconnecting', 'Connection lost, reconnecting…'));
client.on('reconnecting', (attempt) => setConnection('reconnecting', `Reconnecting (attempt ${attempt})…`));
client.on('reconnected', () => setConnection('live', 'Connected'));
client.ping().then(
  (rtt) => setConnection('live', `Connected · ping ${Math.max(1, Math.round(rtt))} ms`),
  (error: unknown) => setConnection('down', `Hub unreachable: ${error instanceof Error ? error.message : String(error)}`),
);
document.body.dataset.ready = 'true';
