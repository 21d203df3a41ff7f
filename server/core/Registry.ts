/**
 * Where the hub keeps track of uploads: their records, their committed offsets and who may
 * write them. One node keeps this in-process over the store (LocalRegistry); several nodes keep
 * it in Redis (store/redis/RedisRegistry.ts), where a lease per upload lets exactly one node
 * write it and every write carries the lease's fencing token.
 *
 * The core holds only the uploads it is writing or processing (it holds their lease); any other
 * upload, finished or held by another node, is read from here when asked.
 */
import type { UploadState } from '../../shared/messages.js';
import type { UploadRecord } from '../store/UploadStore.js';

/**
 * The right to write one upload. `fence` grows with every grant of the upload's lease, so a
 * write carrying an older one is refused (ERR_LEASE_LOST) however late it arrives.
 */
export interface Lease {
  readonly uploadId: string;
  readonly fence: number;
  /** False once this node cannot be sure it still holds the lease (lost, released, not renewed in time). */
  readonly valid: boolean;
  /**
   * Resolves at once while valid; when renewal fell behind (Redis unreachable), once it is
   * renewed again. Rejects with ERR_LEASE_LOST when the lease turns out lost.
   */
  whenValid(): Promise<void>;
}

/** A stored upload and the offset its bytes are committed to. */
export interface StoredUpload {
  record: UploadRecord;
  /** Undefined when the registry does not track offsets (one node: the store's bytes are the truth). */
  committed: number | undefined;
}

export type Acquired =
  | { lease: Lease }
  /** Another node holds the lease; it can be asked to release it. */
  | { heldBy: string };

/** The order uploads are listed in: createdAt, then id. */
export interface ListPosition {
  createdAt: number;
  id: string;
}

export type ListOrder = 'asc' | 'desc';

export interface RegistryQuery {
  /** Whether an upload of this owner may be listed. */
  visible: (owner: string) => boolean;
  states?: ReadonlySet<UploadState>;
  limit?: number;
  after?: ListPosition;
  order?: ListOrder;
  /** The state of an upload this node holds, fresher than the registry's (states on the way are saved lazily). */
  stateOf?: (id: string) => UploadState | undefined;
}

/** Sent between nodes that share a registry. */
export type NodeRequest =
  /** Another node wants to write this upload (a client resumed there): stop, commit, release. */
  | { type: 'release'; uploadId: string }
  /** A cancel arrived at another node: cancel where the upload is received or processed. */
  | { type: 'cancel'; uploadId: string }
  /** A node released uploads it did not finish (draining): whoever sweeps should take them over now. */
  | { type: 'orphans' };

export interface UploadRegistry {
  /** True when other nodes share it: leases are contended and requests travel between nodes. */
  readonly clustered: boolean;
  /** This node's name, in leases and logs. */
  readonly nodeId: string;
  /** Records this node restores at start: one node, every stored upload; clustered, none (uploads are taken over by lease). */
  init(): Promise<UploadRecord[]>;
  /** Stores a new upload, unleased. */
  insert(record: UploadRecord): Promise<void>;
  load(id: string): Promise<StoredUpload | undefined>;
  /** Persists a record; clustered, refused with ERR_LEASE_LOST unless `lease` is the upload's current one. */
  save(record: UploadRecord, lease: Lease | undefined): Promise<void>;
  /** Records how far the bytes are committed, fenced like save. */
  commit(lease: Lease, committed: number, percent: number, updatedAt: number): Promise<void>;
  /** Ids of the uploads matching the query, in its order. */
  list(query: RegistryQuery): Promise<string[]>;
  /** How many uploads are in each state (metrics); `stateOf` as in RegistryQuery. */
  counts(stateOf?: (id: string) => UploadState | undefined): Promise<Record<UploadState, number>>;
  /** Several nodes: `owner`'s unfinished uploads across the cluster (maxOpenUploadsPerPrincipal). */
  openUploads?(owner: string): Promise<number>;
  /** Forgets the upload's record (its bytes are the store's business). */
  remove(id: string): Promise<void>;
  /** The lease of an upload, or who holds it; undefined when there is no such upload. */
  acquire(id: string): Promise<Acquired | undefined>;
  release(lease: Lease): Promise<void>;
  /** Asks a node (`*`: every node) to do something; false when nobody could be asked. */
  request(nodeId: string, request: NodeRequest): Promise<boolean>;
  /** Requests from other nodes to this one. */
  onRequest(handler: (request: NodeRequest) => void): void;
  /**
   * Runs `work` if no other node ran it within `intervalMs` (cluster-wide chores: the expiry
   * sweep, taking over dead nodes' uploads). One node: always runs it.
   */
  once(chore: string, intervalMs: number, work: () => Promise<void>): Promise<void>;
  /** Uploads not finished and not leased by anyone: a dead node's, to take over. */
  orphans(): Promise<string[]>;
  /** Finished uploads last updated before `time` (ms since epoch): past finishedRetentionMs. */
  finishedBefore(time: number): Promise<string[]>;
  /** A lease this node held was lost (another node took it, or it could not be renewed in time). */
  onLeaseLost?(handler: (uploadId: string) => void): void;
  /** 'ok', or 'unavailable' while the shared state cannot be reached. */
  readonly health: 'ok' | 'unavailable';
  close(): Promise<void>;
}
