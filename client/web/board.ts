/**
 * The dashboard's table, as data: what each column sorts by, the state and owner filters, the
 * timeline of an upload's steps (upload, queue, each stage) with their durations, and the tally
 * of uploads that ended in the last hour. Pure and clock-free (time comes in as `now`, in ms),
 * unit-tested in test/unit/web-dashboard.test.ts.
 */
import { TERMINAL_STATES, UPLOAD_STATES, type UploadState } from '../../shared/messages.js';
import type { ViewState } from './view.js';

/** The sortable columns, in table order. */
export const COLUMNS = ['file', 'owner', 'size', 'state', 'stage', 'percent', 'bytes', 'speed', 'eta', 'created', 'duration', 'error'] as const;
export type Column = (typeof COLUMNS)[number];

/** The values of `aria-sort`, so the header says what the table does. */
export type SortDirection = 'ascending' | 'descending';

export interface Sort {
  column: Column;
  direction: SortDirection;
}

/** Newest first, as the list API is asked for it. */
export const DEFAULT_SORT: Readonly<Sort> = Object.freeze({ column: 'created', direction: 'descending' });

/** One row, as sorting and filtering see it. Unknown values are undefined and sort last. */
export interface BoardEntry {
  id: string;
  name: string;
  owner: string;
  size: number | undefined;
  state: ViewState;
  stage: string | undefined;
  percent: number;
  bytes: number;
  /** Bytes/s while bytes move, else 0. */
  speed: number;
  /** Seconds left of the whole bar; null when unknown or over. */
  eta: number | null;
  createdAt: number | undefined;
  durationMs: number | undefined;
  errorCode: string | undefined;
  errorMessage: string | undefined;
}

/** The order states are sorted in: the way an upload goes, then how it ended. */
const STATE_ORDER: readonly ViewState[] = ['starting', ...UPLOAD_STATES, 'gone'];

function sortValue(entry: BoardEntry, column: Column): string | number | undefined {
  switch (column) {
    case 'file':
      return entry.name;
    case 'owner':
      return entry.owner;
    case 'size':
      return entry.size;
    case 'state':
      return STATE_ORDER.indexOf(entry.state);
    case 'stage':
      return entry.stage;
    case 'percent':
      return entry.percent;
    case 'bytes':
      return entry.bytes;
    case 'speed':
      return entry.speed > 0 ? entry.speed : undefined;
    case 'eta':
      return entry.eta ?? undefined;
    case 'created':
      return entry.createdAt;
    case 'duration':
      return entry.durationMs;
    case 'error':
      return entry.errorCode === undefined ? undefined : `${entry.errorCode} ${entry.errorMessage ?? ''}`;
  }
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/**
 * Orders two rows by `sort`; rows without a value (no error, no ETA) come last either way, and
 * ties fall back to newest first, then id, so the order never flickers between renders.
 */
export function compareEntries(a: BoardEntry, b: BoardEntry, sort: Sort): number {
  const x = sortValue(a, sort.column);
  const y = sortValue(b, sort.column);
  if (x === undefined || y === undefined) {
    if (x !== y) return x === undefined ? 1 : -1;
  } else {
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : collator.compare(String(x), String(y));
    if (order !== 0) return sort.direction === 'ascending' ? order : -order;
  }
  const created = (b.createdAt ?? 0) - (a.createdAt ?? 0);
  if (created !== 0) return created;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function sortEntries<T extends BoardEntry>(entries: readonly T[], sort: Sort): T[] {
  return [...entries].sort((a, b) => compareEntries(a, b, sort));
}

/** A click on a column's header: the same column turns around, another starts ascending. */
export function nextSort(current: Sort, column: Column): Sort {
  if (current.column === column) return { column, direction: current.direction === 'ascending' ? 'descending' : 'ascending' };
  return { column, direction: 'ascending' };
}

/** `active` and `finished` group the states; `gone`: the hub no longer knows the upload. */
export type StateFilter = 'all' | 'active' | 'finished' | UploadState | 'gone';

export const STATE_FILTERS: readonly StateFilter[] = ['all', 'active', 'finished', ...UPLOAD_STATES, 'gone'];

export interface Filter {
  state: StateFilter;
  /** Only this owner's uploads; undefined: everyone's. */
  owner: string | undefined;
}

export const NO_FILTER: Readonly<Filter> = Object.freeze({ state: 'all', owner: undefined });

const ENDED: ReadonlySet<ViewState> = new Set<ViewState>([...TERMINAL_STATES, 'gone']);

export function isFilterState(value: string): value is StateFilter {
  return (STATE_FILTERS as readonly string[]).includes(value);
}

export function matchesFilter(entry: Pick<BoardEntry, 'state' | 'owner'>, filter: Filter): boolean {
  if (filter.owner !== undefined && entry.owner !== filter.owner) return false;
  switch (filter.state) {
    case 'all':
      return true;
    case 'active':
      return !ENDED.has(entry.state);
    case 'finished':
      return ENDED.has(entry.state);
    default:
      return entry.state === filter.state;
  }
}

/** How long an upload has taken: to its end, or to now while it goes on; undefined when its start is unknown. */
export function durationOf(createdAt: number | undefined, endedAt: number | undefined, now: number): number | undefined {
  if (createdAt === undefined) return undefined;
  return Math.max(0, (endedAt ?? now) - createdAt);
}

/** What the page learnt of when an upload moved on (hub times, ms): from its status and the events it heard. */
export interface Journal {
  createdAt: number | undefined;
  /** Its bytes are all in (its state, or phase, is past the upload), whether or not the moment was seen. */
  uploaded: boolean;
  uploadedAt?: number | undefined;
  queuedAt?: number | undefined;
  processingAt?: number | undefined;
  /** Each `stage` event, in order. */
  stages: ReadonlyArray<{ name: string; at: number }>;
  /** Set once it ended (its terminal event, or its status's updatedAt). */
  endedAt?: number | undefined;
  ended: boolean;
}

export interface Step {
  name: string;
  kind: 'upload' | 'queue' | 'stage';
  startedAt: number | undefined;
  endedAt: number | undefined;
  /** To its end, or to now while running; undefined when the start or the end was not seen. */
  durationMs: number | undefined;
  running: boolean;
}

function step(name: string, kind: Step['kind'], startedAt: number | undefined, endedAt: number | undefined, running: boolean, now: number): Step {
  const end = endedAt ?? (running ? now : undefined);
  return { name, kind, startedAt, endedAt, durationMs: startedAt === undefined || end === undefined ? undefined : Math.max(0, end - startedAt), running };
}

/**
 * The steps an upload went through, each ending where the next began: the upload (created to
 * uploaded), the queue (queued to processing), each stage (its `stage` event to the next, or to
 * the end). A step whose start or end the page did not see has no duration rather than a wrong one.
 */
export function timeline(journal: Journal, now: number): Step[] {
  const { stages, ended } = journal;
  const next = journal.uploadedAt ?? journal.queuedAt ?? journal.processingAt ?? stages[0]?.at;
  // An upload that ended before its bytes were all in ended in its upload step.
  const uploadEnd = next ?? (ended && !journal.uploaded ? journal.endedAt : undefined);
  const steps = [step('upload', 'upload', journal.createdAt, uploadEnd, !ended && !journal.uploaded && uploadEnd === undefined, now)];
  if (journal.queuedAt !== undefined) {
    const queueEnd = journal.processingAt ?? stages[0]?.at ?? journal.endedAt;
    steps.push(step('queue', 'queue', journal.queuedAt, queueEnd, !ended && queueEnd === undefined, now));
  }
  stages.forEach((stage, index) => {
    const stageEnd = stages[index + 1]?.at ?? journal.endedAt;
    steps.push(step(stage.name, 'stage', stage.at, stageEnd, !ended && stageEnd === undefined, now));
  });
  return steps;
}

export const HOUR_MS = 3_600_000;

export type Outcome = 'completed' | 'failed' | 'cancelled';

const OUTCOMES: ReadonlySet<string> = new Set<Outcome>(['completed', 'failed', 'cancelled']);

/** Uploads that ended in the last `spanMs` (default an hour), by how they ended; each upload once. */
export class OutcomeTally {
  private readonly ended = new Map<string, { outcome: Outcome; at: number }>();

  constructor(readonly spanMs = HOUR_MS) {}

  /** An upload's end (hub time `at`); states other than the three outcomes are left out. */
  note(uploadId: string, state: string, at: number): void {
    if (OUTCOMES.has(state)) this.ended.set(uploadId, { outcome: state as Outcome, at });
  }

  counts(now: number): Record<Outcome, number> {
    const counts: Record<Outcome, number> = { completed: 0, failed: 0, cancelled: 0 };
    for (const [id, { outcome, at }] of this.ended) {
      if (at < now - this.spanMs) this.ended.delete(id);
      else counts[outcome]++;
    }
    return counts;
  }

  /** When the oldest counted end leaves the span, so the tiles can be recounted then; undefined when none is counted. */
  nextExpiry(): number | undefined {
    let oldest: number | undefined;
    for (const { at } of this.ended.values()) if (oldest === undefined || at < oldest) oldest = at;
    return oldest === undefined ? undefined : oldest + this.spanMs;
  }
}
