/**
 * The registry of one hub node: records live in the store (one file each), and an index of
 * three fields per upload (created, owner, state) answers lists and counts without reading
 * them. Leases are never contended: this node is the only writer.
 */
import { isTerminalState, UPLOAD_STATES, type UploadState } from '../../shared/messages.js';
import type { UploadRecord, UploadStore } from '../store/UploadStore.js';
import type { Acquired, Lease, NodeRequest, RegistryQuery, StoredUpload, UploadRegistry } from './Registry.js';

interface IndexEntry {
  createdAt: number;
  updatedAt: number;
  owner: string;
  state: UploadState;
}

/** The one lease of a single node: always held, never fenced out. */
function localLease(uploadId: string): Lease {
  return { uploadId, fence: 1, valid: true, whenValid: () => Promise.resolve() };
}

export function compareListPosition(a: { createdAt: number; id: string }, b: { createdAt: number; id: string }): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export class LocalRegistry implements UploadRegistry {
  readonly clustered = false;
  readonly health = 'ok';
  private readonly index = new Map<string, IndexEntry>();

  constructor(private readonly store: UploadStore, readonly nodeId: string) {}

  async init(): Promise<UploadRecord[]> {
    const records = await this.store.init();
    for (const record of records) this.indexRecord(record);
    return records;
  }

  async insert(record: UploadRecord): Promise<void> {
    await this.store.save(record);
    this.indexRecord(record);
  }

  async load(id: string): Promise<StoredUpload | undefined> {
    if (!this.index.has(id)) return undefined;
    const record = await this.store.load(id);
    return record && { record, committed: undefined };
  }

  async save(record: UploadRecord): Promise<void> {
    await this.store.save(record);
    // A record removed meanwhile (swept) is not brought back into the index.
    const entry = this.index.get(record.id);
    if (entry) {
      entry.state = record.state;
      entry.updatedAt = record.updatedAt;
    }
  }

  async commit(): Promise<void> {
    // One node: the bytes in the store are the committed offset (see UploadHub.start).
  }

  async list(query: RegistryQuery): Promise<string[]> {
    const direction = query.order === 'desc' ? -1 : 1;
    const matching: Array<{ id: string; createdAt: number }> = [];
    for (const [id, entry] of this.index) {
      if (!query.visible(entry.owner)) continue;
      if (query.states && !query.states.has(query.stateOf?.(id) ?? entry.state)) continue;
      const position = { createdAt: entry.createdAt, id };
      if (query.after && direction * compareListPosition(position, query.after) <= 0) continue;
      matching.push(position);
    }
    matching.sort((a, b) => direction * compareListPosition(a, b));
    const page = query.limit === undefined ? matching : matching.slice(0, Math.max(0, query.limit));
    return page.map((entry) => entry.id);
  }

  async counts(stateOf?: (id: string) => UploadState | undefined): Promise<Record<UploadState, number>> {
    const counts = Object.fromEntries(UPLOAD_STATES.map((state) => [state, 0])) as Record<UploadState, number>;
    for (const [id, entry] of this.index) counts[stateOf?.(id) ?? entry.state]++;
    return counts;
  }

  async remove(id: string): Promise<void> {
    this.index.delete(id);
    await this.store.remove(id);
  }

  async acquire(id: string): Promise<Acquired | undefined> {
    return this.index.has(id) ? { lease: localLease(id) } : undefined;
  }

  async release(): Promise<void> {
    // Nothing to give back: nobody else could take it.
  }

  async request(_nodeId: string, _request: NodeRequest): Promise<boolean> {
    return false;
  }

  onRequest(): void {
    // No other node to hear from.
  }

  async once(_chore: string, _intervalMs: number, work: () => Promise<void>): Promise<void> {
    await work();
  }

  async orphans(): Promise<string[]> {
    // A single node restores its own uploads at start (UploadHub.start).
    return [];
  }

  async finishedBefore(time: number): Promise<string[]> {
    const ids: string[] = [];
    for (const [id, entry] of this.index) if (isTerminalState(entry.state) && entry.updatedAt < time) ids.push(id);
    return ids;
  }

  async close(): Promise<void> {
    await this.store.flush();
    await this.store.close?.();
  }

  private indexRecord(record: UploadRecord): void {
    this.index.set(record.id, { createdAt: record.createdAt, updatedAt: record.updatedAt, owner: record.owner, state: record.state });
  }
}
