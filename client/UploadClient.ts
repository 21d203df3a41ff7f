/**
 * UploadClient: chunked, resumable uploads over one socket, for browsers and Node alike. The
 * socket is injected (a ConnectionFactory), and so is the source resolver, so one code path
 * serves both platforms; `upload-hub/client` picks the right ones by package.json conditions.
 *
 * @example
 * const client = new UploadClient({ url: 'http://127.0.0.1:3000' });
 * const upload = client.upload(file, { onProgress: (p) => (bar.value = p.percent) });
 * pauseButton.onclick = () => upload.pause();
 * const { sha256, result } = await upload.done;
 */
import { UploadHubError, toHubError } from '../shared/errors.js';
import type { ErrorMessage, HubEvent } from '../shared/messages.js';
import { isRetryable, type ClientHost } from './ClientHost.js';
import { Emitter } from './Emitter.js';
import type { ClientConnection, ConnectionFactory } from './connection/ClientConnection.js';
import { fingerprintOfSource, type FingerprintStore } from './fingerprint.js';
import type { UploadHandle, UploadOptions } from './handle.js';
import { portableSource, unsupportedSource, type ChunkSource } from './sources.js';
import { UploadTask, type StartPlan, type TaskHooks } from './UploadTask.js';
import { Watcher } from './Watcher.js';

export type { UploadEvents, UploadHandle, UploadLogLine, UploadOptions, UploadProgress, UploadResult } from './handle.js';
export { settleFromStatus } from './handle.js';
export { isRetryable } from './ClientHost.js';

export type TransportName = 'ws' | 'socket.io';

/**
 * A token, or a function that returns the current one: it is called on every connect and
 * reconnect, so a token that expires mid-upload is replaced by a fresh one. A function that
 * throws is retried like a connection that did not open (up to maxReconnectAttempts); one that
 * throws an UploadHubError('ERR_UNAUTHORIZED') fails the uploads at once.
 */
export type TokenOption = string | (() => string | Promise<string>);

export interface UploadClientOptions {
  /** The hub's http(s) base URL, e.g. http://127.0.0.1:3000. */
  url: string;
  /** Default 'ws'. */
  transport?: TransportName;
  /**
   * Sent in hello (ws) or the handshake (Socket.IO) to the hub's authenticate hook. A function
   * is asked again on every (re)connect. The hub refusing it on a reconnect fails the pending
   * uploads with ERR_UNAUTHORIZED (no retry).
   */
  token?: TokenOption;
  /**
   * Attempts to (re)connect, after a dropped connection or a first one that never opened, before
   * uploads fail with ERR_CONNECTION_LOST. Default 10. 0 never.
   */
  maxReconnectAttempts?: number;
  /** First reconnect delay, doubled each attempt with jitter, in ms. Default 100. */
  reconnectDelayMs?: number;
  /** Cap of the reconnect delay, in ms. Default 5000. */
  maxReconnectDelayMs?: number;
  /** How long opening a connection, or a request (create, resume, watch), may wait for its reply, in ms. Default 30000. */
  requestTimeoutMs?: number;
  /**
   * Opt-in: remembers unfinished uploads by file fingerprint (name, size, last-modified, sha256
   * of the first 64 KiB), so uploading the same file again to the same hub resumes it.
   * localStorageFingerprints() in browsers, fileFingerprints() in Node. Default: none.
   */
  fingerprints?: FingerprintStore;
}

/** How a platform turns what the caller passed into a ChunkSource. */
export type SourceResolver = (source: unknown, options: UploadOptions) => Promise<ChunkSource>;

export interface ClientPlatform {
  connections: Partial<Record<TransportName, ConnectionFactory>>;
  resolveSource: SourceResolver;
}

export const portableResolver: SourceResolver = async (source) => portableSource(source) ?? unsupportedSource();

const DEFAULTS = { transport: 'ws', maxReconnectAttempts: 10, reconnectDelayMs: 100, maxReconnectDelayMs: 5000, requestTimeoutMs: 30_000 } as const;

type ClientEvents = {
  /** The connection dropped; reconnecting (attempt numbers follow in `reconnecting`). */
  disconnected: (reason: UploadHubError) => void;
  reconnecting: (attempt: number) => void;
  reconnected: () => void;
};

export class UploadClient extends Emitter<ClientEvents> implements ClientHost {
  readonly options: Required<Omit<UploadClientOptions, 'token' | 'fingerprints'>> & { token: TokenOption | undefined; fingerprints: FingerprintStore | undefined };
  /** Uploads and watchers that need the connection, to be resumed after a reconnect. */
  private readonly tasks = new Set<UploadTask>();
  private readonly watchers = new Set<Watcher>();
  private connection: ClientConnection | undefined;
  private connecting: Promise<ClientConnection> | undefined;
  private reconnecting = false;
  private closed = false;
  /** Chunk size the hub recommends (from welcome). */
  hubChunkSize = 1024 * 1024;

  constructor(options: UploadClientOptions, private readonly platform: ClientPlatform) {
    super();
    this.options = { ...DEFAULTS, ...options, token: options.token, fingerprints: options.fingerprints };
    if (!platform.connections[this.options.transport]) {
      throw new UploadHubError('ERR_SOURCE', `Transport ${this.options.transport} is not available on this platform`);
    }
  }

  /**
   * Starts an upload. `source`: a File/Blob, Uint8Array/Buffer or ArrayBuffer anywhere; in Node
   * also a file path or a readable stream (with options.size).
   */
  upload(source: unknown, options: UploadOptions = {}): UploadHandle {
    this.assertOpen();
    const remembered = new Remembered(this.options.fingerprints, hubKey(this.options.url));
    const task = this.track(new UploadTask(this, options, remembered.hooks));
    void this.begin(task, source, options, async (resolved) => {
      if (!(await remembered.fingerprint(resolved, options.name)) || options.resume === false) return {};
      const entry = await remembered.lookup();
      // One upload is written by one task: the same file twice at once gets two uploads.
      if (!entry || [...this.tasks].some((other) => other.id === entry.uploadId)) return {};
      return { uploadId: entry.uploadId, orCreate: true };
    });
    return task;
  }

  /**
   * Continues upload `id`, created earlier by this or another process (another tab, a run
   * that was killed), from the hub's committed offset. `source` must be the same file.
   * `done` rejects with ERR_NOT_FOUND when the hub does not have the upload (or it is another
   * principal's), ERR_UPLOAD_STATE when it has ended, ERR_SIZE_MISMATCH (before any byte is
   * sent) when the source is of another size.
   *
   * @example const handle = client.resumeUpload(entry.uploadId, file);
   */
  resumeUpload(id: string, source: unknown, options: UploadOptions = {}): UploadHandle {
    this.assertOpen();
    const remembered = new Remembered(this.options.fingerprints, hubKey(this.options.url));
    const task = this.track(new UploadTask(this, options, remembered.hooks, id));
    void this.begin(task, source, options, async (resolved) => {
      await remembered.fingerprint(resolved, options.name);
      return { uploadId: id };
    });
    return task;
  }

  /**
   * Follows uploads without sending: every upload the principal may see (no ids), or the
   * listed ones. Survives reconnects like uploads do.
   */
  watch(uploadIds?: string[]): Watcher {
    this.assertOpen();
    const watcher = new Watcher(this, uploadIds);
    this.watchers.add(watcher);
    void watcher.start();
    return watcher;
  }

  /** One ping round trip over the current connection, in ms. */
  async ping(): Promise<number> {
    return (await this.connect()).ping();
  }

  /** Closes the connection; uploads still running fail with ERR_CONNECTION_LOST. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const error = new UploadHubError('ERR_CONNECTION_LOST', 'Client closed');
    for (const task of [...this.tasks]) task.fail(error);
    for (const watcher of [...this.watchers]) watcher.stop();
    this.connection?.close();
    this.connection = undefined;
  }

  // ------------------------------------------------------------------------------------------
  // For UploadTask and Watcher

  private track(task: UploadTask): UploadTask {
    this.tasks.add(task);
    void task.done.then(
      () => this.tasks.delete(task),
      () => this.tasks.delete(task),
    );
    return task;
  }

  /** Resolves the source, decides how the task starts, and starts it. */
  private async begin(task: UploadTask, source: unknown, options: UploadOptions, plan: (resolved: ChunkSource) => Promise<StartPlan>): Promise<void> {
    let resolved: ChunkSource;
    try {
      resolved = await this.platform.resolveSource(source, options);
    } catch (error) {
      return task.fail(toHubError(error, 'ERR_SOURCE'));
    }
    let how: StartPlan;
    try {
      how = await plan(resolved);
    } catch (error) {
      return task.fail(toHubError(error, 'ERR_SOURCE'));
    }
    await task.start(resolved, how);
  }

  /**
   * The open connection, opening one if needed. One attempt: when it fails and may succeed
   * later (isRetryable), the client's reconnect loop takes over and resumes every upload and
   * watcher when it connects, or fails them all once it gives up.
   */
  connect(): Promise<ClientConnection> {
    if (this.connection) return Promise.resolve(this.connection);
    if (this.closed) return Promise.reject(new UploadHubError('ERR_CONNECTION_LOST', 'Client closed'));
    this.connecting ??= this.openConnection().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** @internal */
  forgetWatcher(watcher: Watcher): void {
    this.watchers.delete(watcher);
  }

  /**
   * @internal A connection that stopped answering (a request timed out) is treated as dropped:
   * closed, and the reconnect loop resumes everything on a new one.
   */
  abandon(connection: ClientConnection, reason: UploadHubError): void {
    if (this.connection !== connection) return;
    connection.close();
    this.onClosed(connection, reason);
  }

  /** @internal Routes a hub event to the tasks and watchers it concerns. */
  private dispatch(event: HubEvent): void {
    for (const task of this.tasks) if (task.id === event.uploadId) task.onEvent(event);
    for (const watcher of this.watchers) watcher.onEvent(event);
  }

  private onError(connection: ClientConnection, message: ErrorMessage): void {
    // The node is going (it drains): every upload and watcher on this connection continues on a
    // new one, to another node, without waiting for the close that follows.
    if (message.code === 'ERR_SHUTTING_DOWN') return this.abandon(connection, new UploadHubError(message.code, message.message));
    for (const task of this.tasks) if (task.id === message.uploadId) task.onUploadError(message);
  }

  private async openConnection(): Promise<ClientConnection> {
    try {
      return await this.openOnce();
    } catch (error) {
      const hubError = toHubError(error, 'ERR_CONNECTION_LOST');
      // A first connection that never opened gets the same backoff as a dropped one.
      if (!this.closed && isRetryable(hubError) && (this.tasks.size > 0 || this.watchers.size > 0)) void this.reconnect(hubError);
      throw hubError;
    }
  }

  private async openOnce(): Promise<ClientConnection> {
    const factory = this.platform.connections[this.options.transport] as ConnectionFactory;
    const token = await this.currentToken();
    if (this.closed) throw new UploadHubError('ERR_CONNECTION_LOST', 'Client closed');
    const connection = factory({
      url: this.options.url,
      ...(token === undefined ? {} : { token }),
      requestTimeoutMs: this.options.requestTimeoutMs,
      handlers: {
        event: (event) => this.dispatch(event),
        error: (message) => this.onError(connection, message),
        closed: (reason) => this.onClosed(connection, reason),
      },
    });
    const welcome = await connection.open();
    this.hubChunkSize = welcome.limits.chunkSize;
    if (this.closed) {
      connection.close();
      throw new UploadHubError('ERR_CONNECTION_LOST', 'Client closed');
    }
    this.connection = connection;
    return connection;
  }

  /** The token for the next connection: the option, or what its function answers now. */
  private async currentToken(): Promise<string | undefined> {
    const option = this.options.token;
    if (typeof option !== 'function') return option;
    let token: unknown;
    try {
      token = await option();
    } catch (error) {
      if (error instanceof UploadHubError) throw error;
      throw new UploadHubError('ERR_CONNECTION_LOST', `Could not get a token: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    if (typeof token !== 'string') throw new UploadHubError('ERR_UNAUTHORIZED', `The token function returned ${typeof token}, not a string`);
    return token;
  }

  private onClosed(connection: ClientConnection, reason: UploadHubError): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    for (const task of this.tasks) task.disconnected();
    if (this.closed) return;
    this.emit('disconnected', reason);
    if (this.tasks.size > 0 || this.watchers.size > 0) void this.reconnect(reason);
  }

  private async reconnect(firstReason: UploadHubError): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    let lastError = firstReason;
    try {
      for (let attempt = 1; attempt <= this.options.maxReconnectAttempts && !this.closed; attempt++) {
        const base = Math.min(this.options.maxReconnectDelayMs, this.options.reconnectDelayMs * 2 ** (attempt - 1));
        await new Promise((resolve) => setTimeout(resolve, base / 2 + Math.random() * (base / 2)));
        if (this.closed) return;
        this.emit('reconnecting', attempt);
        try {
          const connection = await this.connect();
          this.emit('reconnected');
          for (const task of [...this.tasks]) void task.reconnected(connection);
          for (const watcher of [...this.watchers]) void watcher.start();
          return;
        } catch (error) {
          lastError = toHubError(error, 'ERR_CONNECTION_LOST');
          if (!isRetryable(lastError)) break;
        }
      }
      const error = isRetryable(lastError)
        ? new UploadHubError('ERR_CONNECTION_LOST', `Gave up after ${attempts(this.options.maxReconnectAttempts)} to reach ${this.options.url}: ${lastError.message}`, { cause: lastError })
        : lastError;
      for (const task of [...this.tasks]) task.fail(error);
      for (const watcher of [...this.watchers]) watcher.fail(error);
    } finally {
      this.reconnecting = false;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new UploadHubError('ERR_CONNECTION_LOST', 'Client closed');
  }
}

/** How long `done` waits for the fingerprint store to record an upload's end, in ms. */
const STORE_WAIT_MS = 5000;

/** A hub URL as entries compare it (http://host:3000/ and http://host:3000 are one hub). */
function hubKey(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/**
 * One task's part in the fingerprint store: computes the file's fingerprint, finds its
 * unfinished upload, records the upload the task ends up on, and forgets it once it has ended
 * on the hub (completed, failed, cancelled, gone) — not when only this client stopped (closed,
 * gave up reconnecting), since then it is still resumable. A store that fails is ignored: the
 * upload goes on as if there were none. Its writes run one after another, in order.
 */
class Remembered {
  private key: string | undefined;
  private name = '';
  private size = 0;
  private entryCreatedAt: number | undefined;
  private writes: Promise<void> = Promise.resolve();
  readonly hooks: TaskHooks;

  constructor(private readonly store: FingerprintStore | undefined, private readonly url: string) {
    this.hooks = {
      adopted: (id) => this.write(async (store, key) => {
        await store.set({ fingerprint: key, uploadId: id, name: this.name, size: this.size, url: this.url, createdAt: this.entryCreatedAt ?? Date.now() });
      }),
      stale: (id) => this.forget(id),
      ended: (id, onHub) => {
        if (onHub && id !== undefined) this.forget(id);
        return this.settled();
      },
    };
  }

  /**
   * Resolves once every write asked for so far is done, or after STORE_WAIT_MS: `done` waits
   * for it, so a process that exits when its uploads end leaves the store right.
   */
  private settled(): Promise<void> | undefined {
    if (!this.store || this.key === undefined) return undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, STORE_WAIT_MS)));
    return Promise.race([this.writes, late]).finally(() => clearTimeout(timer));
  }

  /** The fingerprint, when there is a store and the source can be fingerprinted. */
  async fingerprint(source: ChunkSource, name: string | undefined): Promise<string | undefined> {
    if (!this.store) return undefined;
    this.name = name ?? source.name ?? 'upload.bin';
    this.size = source.size;
    this.key = await fingerprintOfSource(source, name).catch(() => undefined);
    return this.key;
  }

  /** The unfinished upload of this file on this hub, if one is remembered. */
  async lookup(): Promise<{ uploadId: string } | undefined> {
    const { store, key } = this;
    if (!store || key === undefined) return undefined;
    const entry = await store.get(key).catch(() => undefined);
    if (!entry || entry.url !== this.url || entry.size !== this.size) return undefined;
    this.entryCreatedAt = entry.createdAt;
    return entry;
  }

  /** Removes the entry if it still names `uploadId` (another run may have replaced it). */
  private forget(uploadId: string): void {
    this.entryCreatedAt = undefined;
    this.write(async (store, key) => {
      const entry = await store.get(key);
      if (entry === undefined || entry.uploadId === uploadId) await store.remove(key);
    });
  }

  private write(change: (store: FingerprintStore, key: string) => Promise<void>): void {
    const { store, key } = this;
    if (!store || key === undefined) return;
    this.writes = this.writes.then(() => change(store, key)).catch(() => undefined);
  }
}

function attempts(count: number): string {
  return count === 1 ? '1 attempt' : `${count} attempts`;
}
