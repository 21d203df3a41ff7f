/**
 * One upload on the client: creates it, sends chunks within the hub's window, follows acks,
 * rewinds on gaps, resumes from the committed offset after a reconnect, and turns the hub's
 * events into progress and the `done` promise.
 */
import { UploadHubError, toHubError } from '../shared/errors.js';
import { MIN_CHUNK_BYTES } from '../shared/frame.js';
import type { ChunkReply, ErrorMessage, HubEvent } from '../shared/messages.js';
import type { ClientConnection } from './connection/ClientConnection.js';
import { Emitter } from './Emitter.js';
import type { ChunkSource } from './sources.js';
import {
  isRetryable,
  settleFromStatus,
  type UploadClient,
  type UploadEvents,
  type UploadHandle,
  type UploadOptions,
  type UploadProgress,
  type UploadResult,
} from './UploadClient.js';

export class UploadTask extends Emitter<UploadEvents> implements UploadHandle {
  id: string | undefined;
  readonly done: Promise<UploadResult>;
  progress: UploadProgress = { bytes: 0, total: 0, percent: 0, phase: 'upload', bytesPerSecond: 0, etaSeconds: null };

  private source: ChunkSource | undefined;
  private connection: ClientConnection | undefined;
  private resolveDone!: (result: UploadResult) => void;
  private rejectDone!: (error: UploadHubError) => void;
  private finished = false;
  private cancelRequested = false;
  private sha256: string | undefined;
  /** Committed offset as last acknowledged. */
  private acked = 0;
  /** End of what was sent. */
  private sent = 0;
  private window = 0;
  /** Bumped on every rewind and reconnect; replies to chunks of an older epoch change nothing. */
  private epoch = 0;
  private pumping = false;
  /** The connection a create or resume is under way on. */
  private attachingOn: ClientConnection | undefined;
  private readonly chunkSize: number | undefined;

  constructor(private readonly client: UploadClient, private readonly options: UploadOptions) {
    super();
    this.chunkSize = options.chunkSize;
    this.done = new Promise<UploadResult>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // The caller may never await `done` (fire and forget with events); don't report that as unhandled.
    this.done.catch(() => undefined);
    if (options.signal) {
      if (options.signal.aborted) void this.cancel();
      else options.signal.addEventListener('abort', () => void this.cancel(), { once: true });
    }
  }

  async start(source: ChunkSource): Promise<void> {
    this.source = source;
    this.progress = { ...this.progress, total: source.size };
    if (this.finished) return void this.closeSource();
    let connection: ClientConnection;
    try {
      connection = await this.client.connect();
    } catch (error) {
      // A connection that may open later is the client's reconnect loop's: it resumes this
      // upload when it connects, or fails it when it gives up.
      const hubError = toHubError(error, 'ERR_CONNECTION_LOST');
      if (!isRetryable(hubError)) this.fail(hubError);
      return;
    }
    await this.attachOn(connection);
  }

  async cancel(): Promise<void> {
    if (this.finished) return this.done.then(() => undefined, () => undefined);
    this.cancelRequested = true;
    if (this.id !== undefined && this.connection) {
      await this.connection.request({ type: 'cancel', uploadId: this.id }).catch(() => undefined);
    } else if (this.id === undefined && !this.source) {
      // Nothing reached the hub yet.
      this.fail(new UploadHubError('ERR_CANCELLED'));
    }
    return this.done.then(() => undefined, () => undefined);
  }

  /** The connection dropped: stop sending until resume(). */
  disconnected(): void {
    this.connection = undefined;
    this.epoch++;
  }

  /** After a reconnect: continue from the hub's committed offset. */
  async resume(connection: ClientConnection): Promise<void> {
    // Started on this very connection already (it opened while the reconnect loop waited on it).
    if (this.connection === connection || this.attachingOn === connection) return;
    await this.attachOn(connection);
  }

  fail(error: UploadHubError): void {
    if (this.finished) return;
    this.finished = true;
    this.connection = undefined;
    this.rejectDone(error);
    void this.closeSource();
  }

  onEvent(event: HubEvent): void {
    if (this.finished) return;
    this.emit('event', event);
    switch (event.type) {
      case 'progress': {
        const { bytes, total, phase, bytesPerSecond, etaSeconds } = event;
        const next: UploadProgress = { bytes, total, percent: Math.max(this.progress.percent, event.percent), phase, bytesPerSecond, etaSeconds };
        if (event.stage !== undefined) next.stage = event.stage;
        if (event.stagePercent !== undefined) next.stagePercent = event.stagePercent;
        this.setProgress(next);
        return;
      }
      case 'queued':
        this.setProgress({ ...this.progress, queuePosition: event.position });
        return;
      case 'processing': {
        const { queuePosition: _gone, ...rest } = this.progress;
        this.setProgress({ ...rest, phase: 'processing' });
        return;
      }
      case 'stage':
        this.emit('stage', event.stage, event.index, event.count);
        return;
      case 'log': {
        const line = event.stage === undefined ? { level: event.level, text: event.text } : { level: event.level, text: event.text, stage: event.stage };
        this.emit('log', line);
        this.options.onLog?.(line);
        return;
      }
      case 'uploaded':
        this.sha256 = event.sha256;
        return;
      case 'completed':
        this.setProgress({ ...this.progress, bytes: this.progress.total, percent: 100, etaSeconds: 0 });
        this.finish({ id: event.uploadId, name: this.options.name ?? this.source?.name ?? '', size: this.progress.total, sha256: this.sha256, result: event.result });
        return;
      case 'failed':
        this.fail(new UploadHubError(event.error.code, event.error.message, event.error.stage === undefined ? undefined : { stage: event.error.stage }));
        return;
      case 'cancelled':
        this.fail(new UploadHubError('ERR_CANCELLED', undefined, event.stage === undefined ? undefined : { stage: event.stage }));
        return;
      case 'expired':
        this.fail(new UploadHubError('ERR_EXPIRED'));
        return;
      default:
    }
  }

  /** An error about this upload outside any request (e.g. the hub detached it after idling). */
  onUploadError(message: ErrorMessage): void {
    if (this.finished) return;
    if (message.code === 'ERR_IDLE_TIMEOUT' && this.connection) void this.attachOn(this.connection);
  }

  // ------------------------------------------------------------------------------------------

  /** Creates or resumes the upload on `connection`; one attach per connection at a time, so a create is never sent twice. */
  private async attachOn(connection: ClientConnection): Promise<void> {
    if (this.finished || !this.source || this.attachingOn === connection) return;
    this.attachingOn = connection;
    try {
      await this.attach(connection);
    } catch (error) {
      this.onAttachFailure(connection, error);
    } finally {
      if (this.attachingOn === connection) this.attachingOn = undefined;
    }
  }

  private async attach(connection: ClientConnection): Promise<void> {
    const source = this.source as ChunkSource;
    const attached = this.id === undefined
      ? await connection.request({ type: 'create', ...this.createFields(source) })
      : await connection.request({ type: 'resume', uploadId: this.id });
    if (this.finished) return;
    if (this.id === undefined) {
      this.id = attached.upload.id;
      this.emit('created', this.id);
    }
    const settled = settleFromStatus(attached.upload);
    if (settled instanceof UploadHubError) return this.fail(settled);
    if (settled) return this.finish(settled);
    this.connection = connection;
    this.epoch++;
    this.acked = Math.max(this.acked, attached.offset);
    this.sent = attached.offset;
    this.window = attached.window;
    if (attached.upload.sha256) this.sha256 = attached.upload.sha256;
    if (this.cancelRequested) {
      await connection.request({ type: 'cancel', uploadId: this.id });
      return;
    }
    void this.pump();
  }

  private createFields(source: ChunkSource) {
    const fields: { name: string; size: number; mimeType?: string; metadata?: Record<string, string>; sha256?: string } = {
      name: this.options.name ?? source.name ?? 'upload.bin',
      size: source.size,
    };
    const type = this.options.type ?? source.type;
    if (type) fields.mimeType = type;
    if (this.options.metadata) fields.metadata = this.options.metadata;
    if (this.options.sha256) fields.sha256 = this.options.sha256;
    return fields;
  }

  private onAttachFailure(connection: ClientConnection, error: unknown): void {
    const hubError = error instanceof UploadHubError ? error : new UploadHubError('ERR_SOURCE', String(error));
    // A lost connection is the reconnect loop's business, and so is one that stopped
    // answering; anything else ends the upload.
    if (hubError.code === 'ERR_TIMEOUT') this.client.abandon(connection, hubError);
    else if (hubError.code !== 'ERR_CONNECTION_LOST') this.fail(hubError);
  }

  /**
   * Sends while the window allows and the socket's send buffer is nearly empty; each reply
   * calls back in. Nothing more is sent once a cancel is asked for.
   */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const source = this.source as ChunkSource;
      const preferred = this.chunkSize ?? this.client.hubChunkSize;
      while (!this.finished && !this.cancelRequested && this.connection && this.sent < source.size) {
        let length = this.nextChunk(preferred, source);
        if (length === 0) break;
        const connection = this.connection;
        // At most one chunk waits in the socket while the next is read: a cancel sent now
        // queues behind that little, not behind the whole window.
        await connection.drained(length);
        if (this.finished || this.cancelRequested || this.connection !== connection) break;
        // A reply may have moved the window or rewound while this waited.
        length = this.nextChunk(preferred, source);
        if (length === 0) break;
        const epoch = this.epoch;
        const offset = this.sent;
        let data: Uint8Array;
        try {
          data = await source.read(offset, length);
        } catch (error) {
          this.fail(error instanceof UploadHubError ? error : new UploadHubError('ERR_SOURCE', (error as Error).message, { cause: error }));
          return;
        }
        if (epoch !== this.epoch || this.connection !== connection) continue;
        this.sent = offset + length;
        connection.sendChunk(this.id as string, offset, data).then(
          (reply) => this.onReply(reply, epoch),
          () => undefined, // connection lost: the reconnect resumes from the committed offset
        );
      }
    } finally {
      this.pumping = false;
    }
  }

  private onReply(reply: ChunkReply, epoch: number): void {
    if (this.finished) return;
    if (reply.type === 'ack') {
      if (reply.offset > this.acked) {
        this.acked = reply.offset;
        this.source?.release?.(this.acked);
      }
      if (epoch === this.epoch) {
        this.window = reply.window;
        if (reply.status === 'gap') this.rewind(reply.offset);
      }
      void this.pump();
      return;
    }
    if (epoch !== this.epoch) return;
    switch (reply.code) {
      case 'ERR_FLOW_CONTROL':
        this.rewind(reply.offset ?? this.acked);
        void this.pump();
        return;
      case 'ERR_NOT_ATTACHED':
        if (this.connection) void this.resume(this.connection);
        return;
      case 'ERR_CANCELLED':
      case 'ERR_UPLOAD_STATE':
        return; // the terminal event settles the upload
      default:
        this.fail(new UploadHubError(reply.code, reply.message));
    }
  }

  private nextChunk(preferred: number, source: ChunkSource): number {
    // Chunks never straddle a multiple of the preferred size, however the window cuts them:
    // a source that stalls at such a multiple still gets everything before it sent.
    const toBoundary = preferred - (this.sent % preferred);
    return chunkLength(preferred, this.window, this.acked + this.window - this.sent, Math.min(source.size - this.sent, toBoundary));
  }

  private rewind(offset: number): void {
    this.epoch++;
    this.sent = offset;
  }

  private setProgress(progress: UploadProgress): void {
    this.progress = progress;
    this.emit('progress', progress);
    this.options.onProgress?.(progress);
  }

  private finish(result: UploadResult): void {
    if (this.finished) return;
    this.finished = true;
    this.connection = undefined;
    this.resolveDone(result);
    void this.closeSource();
  }

  private async closeSource(): Promise<void> {
    await this.source?.close?.().catch(() => undefined);
  }
}

/**
 * The next chunk's length, or 0 when nothing may be sent now. Chunks shrink with the window
 * so that two fit in it (one in flight while the next is sent), but not below MIN_CHUNK_BYTES
 * unless the window itself is smaller. What is left of the window (`room`) is sent as a
 * shorter chunk rather than left idle, so the whole window is in use.
 */
export function chunkLength(preferred: number, window: number, room: number, remaining: number): number {
  const fitsTwice = Math.max(Math.ceil(window / 2), Math.min(MIN_CHUNK_BYTES, window), 1);
  const wanted = Math.min(preferred, fitsTwice, remaining);
  if (wanted <= room) return wanted;
  return room >= Math.min(MIN_CHUNK_BYTES, wanted) ? room : 0;
}
