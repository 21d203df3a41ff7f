/**
 * UploadClient: chunked, resumable uploads over one socket, for browsers and Node alike. The
 * socket is injected (a ConnectionFactory), and so is the source resolver, so one code path
 * serves both platforms; `upload-hub/client` picks the right ones by package.json conditions.
 *
 * @example
 * const client = new UploadClient({ url: 'http://127.0.0.1:3000' });
 * const upload = client.upload(file, { onProgress: (p) => (bar.value = p.percent) });
 * const { sha256, result } = await upload.done;
 */
import { UploadHubError, toHubError } from '../shared/errors.js';
import { isTerminalState, type ErrorMessage, type HubEvent, type JsonValue, type LogLevel, type Phase, type UploadStatus } from '../shared/messages.js';
import { Emitter } from './Emitter.js';
import type { ClientConnection, ConnectionFactory } from './connection/ClientConnection.js';
import { portableSource, unsupportedSource, type ChunkSource } from './sources.js';
import { UploadTask } from './UploadTask.js';
import { Watcher } from './Watcher.js';

export type TransportName = 'ws' | 'socket.io';

export interface UploadClientOptions {
  /** The hub's http(s) base URL, e.g. http://127.0.0.1:3000. */
  url: string;
  /** Default 'ws'. */
  transport?: TransportName;
  /** Sent in hello (ws) or the handshake (Socket.IO) to the hub's authenticate hook. */
  token?: string;
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
}

export interface UploadOptions {
  /** Default: the file's name, else 'upload.bin'. */
  name?: string;
  /** MIME type. Default: the Blob's type, else application/octet-stream. */
  type?: string;
  metadata?: Record<string, string>;
  /** Lowercase hex sha256 of the whole file; the hub fails the upload with ERR_CHECKSUM_MISMATCH if it differs. */
  sha256?: string;
  /** Bytes per chunk. Default: what the hub announces (1 MiB by default). */
  chunkSize?: number;
  /** Required for stream sources: the stream's length in bytes. */
  size?: number;
  /** Aborting cancels the upload (on the hub too). */
  signal?: AbortSignal;
  onProgress?: (progress: UploadProgress) => void;
  onLog?: (line: UploadLogLine) => void;
}

/** One moment of the bar: what progress events and `handle.progress` carry. */
export interface UploadProgress {
  /** Bytes the hub has committed. */
  bytes: number;
  total: number;
  /** Overall percent across upload and processing; never goes back. */
  percent: number;
  phase: Phase;
  stage?: string;
  stagePercent?: number;
  /** Position in the processing queue while waiting. */
  queuePosition?: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
}

export interface UploadLogLine {
  level: LogLevel;
  text: string;
  stage?: string;
}

export interface UploadResult {
  id: string;
  name: string;
  size: number;
  sha256: string | undefined;
  /** What the processing stages returned, by stage name. */
  result: JsonValue | undefined;
}

export type UploadEvents = {
  /** The hub assigned the upload its id. */
  created: (id: string) => void;
  progress: (progress: UploadProgress) => void;
  stage: (stage: string, index: number, count: number) => void;
  log: (line: UploadLogLine) => void;
  /** Every hub event about this upload, unfiltered. */
  event: (event: HubEvent) => void;
};

/** What `upload()` returns. */
export interface UploadHandle {
  /** The upload's id once created (see the `created` event). */
  readonly id: string | undefined;
  readonly progress: UploadProgress;
  readonly done: Promise<UploadResult>;
  on<K extends keyof UploadEvents>(name: K, listener: UploadEvents[K]): () => void;
  /** Cancels on the hub too; resolves once the upload has ended. */
  cancel(): Promise<void>;
}

/** How a platform turns what the caller passed into a ChunkSource. */
export type SourceResolver = (source: unknown, options: UploadOptions) => Promise<ChunkSource>;

export interface ClientPlatform {
  connections: Partial<Record<TransportName, ConnectionFactory>>;
  resolveSource: SourceResolver;
}

export const portableResolver: SourceResolver = async (source) => portableSource(source) ?? unsupportedSource();

const DEFAULTS = { transport: 'ws', maxReconnectAttempts: 10, reconnectDelayMs: 100, maxReconnectDelayMs: 5000, requestTimeoutMs: 30_000 } as const;

/**
 * Whether connecting again may help. A refused token or protocol version will be refused again;
 * anything else (nothing listening, a name that does not resolve, a server that is not the hub,
 * a hub shutting down, no answer in time) may be gone on the next attempt.
 */
export function isRetryable(error: UploadHubError): boolean {
  return error.code !== 'ERR_UNAUTHORIZED' && error.code !== 'ERR_UNSUPPORTED_VERSION';
}

type ClientEvents = {
  /** The connection dropped; reconnecting (attempt numbers follow in `reconnecting`). */
  disconnected: (reason: UploadHubError) => void;
  reconnecting: (attempt: number) => void;
  reconnected: () => void;
};

export class UploadClient extends Emitter<ClientEvents> {
  readonly options: Required<Omit<UploadClientOptions, 'token'>> & { token: string | undefined };
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
    this.options = { ...DEFAULTS, ...options, token: options.token };
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
    const task = new UploadTask(this, options);
    this.tasks.add(task);
    void task.done.then(
      () => this.tasks.delete(task),
      () => this.tasks.delete(task),
    );
    void this.platform.resolveSource(source, options).then(
      (resolved) => task.start(resolved),
      (error: unknown) => task.fail(toHubError(error, 'ERR_SOURCE')),
    );
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

  private onError(message: ErrorMessage): void {
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
    const connection = factory({
      url: this.options.url,
      ...(this.options.token === undefined ? {} : { token: this.options.token }),
      requestTimeoutMs: this.options.requestTimeoutMs,
      handlers: {
        event: (event) => this.dispatch(event),
        error: (message) => this.onError(message),
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
          for (const task of [...this.tasks]) void task.resume(connection);
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

function attempts(count: number): string {
  return count === 1 ? '1 attempt' : `${count} attempts`;
}

/** Maps a terminal status to what `done` settles with. */
export function settleFromStatus(status: UploadStatus): UploadResult | UploadHubError | undefined {
  if (!isTerminalState(status.state)) return undefined;
  if (status.state === 'completed') {
    return { id: status.id, name: status.name, size: status.size, sha256: status.sha256, result: status.result };
  }
  if (status.state === 'cancelled') return new UploadHubError('ERR_CANCELLED', undefined, status.stage === undefined ? undefined : { stage: status.stage });
  if (status.state === 'expired') return new UploadHubError('ERR_EXPIRED');
  const error = status.error;
  return error ? new UploadHubError(error.code, error.message, error.stage === undefined ? undefined : { stage: error.stage }) : new UploadHubError('ERR_INTERNAL', 'Upload failed');
}
