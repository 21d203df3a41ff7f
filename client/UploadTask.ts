/**
 * One upload on the client: creates it (or resumes one the hub has), sends chunks within the
 * hub's window, follows acks, rewinds on gaps, pauses and resumes on request, resumes from the
 * committed offset after a reconnect, and turns the hub's events into progress and the `done`
 * promise.
 *
 * Pausing only stops sending: the upload stays attached until the hub's idle timeout detaches
 * it (it stays resumable), and resume() attaches it again with `resume`, which answers the
 * committed offset. So a pause of any length loses nothing and needs no protocol of its own.
 */
import { UploadHubError, toHubError } from '../shared/errors.js';
import { MIN_CHUNK_BYTES } from '../shared/frame.js';
import { isTerminalState, type AttachedMessage, type ChunkReply, type ErrorMessage, type HubEvent, type UploadStatus } from '../shared/messages.js';
import { isDone, reduce, startingView, type UploadView } from '../shared/view.js';
import { isRetryable, meansReconnect, type ClientHost } from './ClientHost.js';
import type { ClientConnection } from './connection/ClientConnection.js';
import { Emitter } from './Emitter.js';
import { settleFromStatus, type UploadEvents, type UploadHandle, type UploadOptions, type UploadProgress, type UploadResult } from './handle.js';
import type { ChunkSource } from './sources.js';

/** How a task starts: a new upload, or one the hub has. */
export interface StartPlan {
  /** Resume this upload instead of creating one. */
  uploadId?: string;
  /**
   * The upload to resume is a guess (a fingerprint store's): when the hub does not have it, it
   * has ended, or it is of another size, create a new upload instead of failing.
   */
  orCreate?: boolean;
}

/** What the client learns of a task's upload, for its fingerprint store. */
export interface TaskHooks {
  /** The hub took the upload the first time: created, or found and resumed. */
  adopted?(id: string): void;
  /** A guessed upload (StartPlan.orCreate) could not be resumed; a new one is created. */
  stale?(id: string): void;
  /**
   * The task ended, on the hub (`onHub`: not resumable any more) or only here. `done` settles
   * once the promise returned, if any, has.
   */
  ended?(id: string | undefined, onHub: boolean): Promise<void> | undefined;
}

export class UploadTask extends Emitter<UploadEvents> implements UploadHandle {
  id: string | undefined;
  readonly done: Promise<UploadResult>;
  /** Where the bar is: what the hub said, through the reducer the pages run too (shared/view.ts). */
  private view: UploadView = startingView(Date.now(), 0);
  /** The hub's own estimate to the end of its current phase, as its last progress event gave it. */
  private hubEta: number | null = null;
  progress: UploadProgress = progressOf(this.view, this.hubEta);

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
  /** An upload id to try resuming before creating one (StartPlan.orCreate). */
  private guess: string | undefined;
  /** The hub has taken the upload once (created, or resumed and checked). */
  private adopted = false;
  /** The upload's name on the hub. */
  private hubName: string | undefined;
  /** Chunks sent and not yet answered (or failed with their connection). */
  private inFlight = 0;
  private pauseRequested = false;
  /** `paused` was emitted for the pause in force, so resume() owes a `resumed`. */
  private pauseAnnounced = false;
  /** Bumped on every pause, so a late announcement of an earlier one is dropped. */
  private pauseGeneration = 0;
  private hubEnded = false;

  constructor(private readonly client: ClientHost, private readonly options: UploadOptions, private readonly hooks: TaskHooks = {}, uploadId?: string) {
    super();
    this.id = uploadId;
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

  get paused(): boolean {
    return this.pauseRequested && !this.finished;
  }

  /**
   * Whether the upload ended on the hub (completed, failed, cancelled, expired, or the hub no
   * longer has it), rather than here (the client closed, the connection was given up, the
   * source failed): then it is not resumable any more.
   */
  get endedOnHub(): boolean {
    return this.hubEnded;
  }

  async start(source: ChunkSource, plan: StartPlan = {}): Promise<void> {
    this.source = source;
    this.view = startingView(Date.now(), source.size);
    this.progress = progressOf(this.view, this.hubEta);
    if (plan.uploadId !== undefined) {
      if (plan.orCreate) this.guess = plan.uploadId;
      else this.id = plan.uploadId;
    }
    if (this.finished) return void this.closeSource();
    // Paused before it reached the hub: resume() attaches it.
    if (this.pauseRequested && !this.cancelRequested) return;
    const connection = await this.connectOrDefer();
    if (connection) await this.attachOn(connection);
  }

  async cancel(): Promise<void> {
    const ended = () => this.done.then(() => undefined, () => undefined);
    if (this.finished) return ended();
    this.cancelRequested = true;
    const id = this.id;
    if (id === undefined) {
      // Not created yet: a create under way cancels the upload once it is answered (attach());
      // with none under way, nothing reached the hub.
      if (!this.attachingOn) this.fail(new UploadHubError('ERR_CANCELLED'));
      return ended();
    }
    try {
      // A paused or not yet attached upload is cancelled too: the hub needs no writer for it.
      const connection = this.connection ?? (await this.client.connect());
      await connection.request({ type: 'cancel', uploadId: id });
    } catch (error) {
      const hubError = toHubError(error, 'ERR_CONNECTION_LOST');
      // A lost connection (or a node shutting down): the reconnect attaches again and cancels
      // then. A refusal while this task holds no connection means no terminal event is coming:
      // the refusal is the end.
      if (!meansReconnect(hubError) && !this.connection) {
        if (hubError.code === 'ERR_NOT_FOUND') this.hubEnded = true;
        this.fail(hubError);
      }
    }
    return ended();
  }

  /**
   * Stops sending once the chunks in flight are answered; `paused` is emitted then. The upload
   * stays resumable on the hub however long the pause. Processing that has started is not
   * paused. Idempotent.
   */
  pause(): void {
    if (this.finished || this.pauseRequested) return;
    this.pauseRequested = true;
    this.pauseGeneration++;
    this.announcePaused();
  }

  /** Continues from the hub's committed offset (sends `resume`). Idempotent. */
  resume(): void {
    if (this.finished || !this.pauseRequested) return;
    this.pauseRequested = false;
    this.pauseGeneration++;
    if (this.pauseAnnounced) {
      this.pauseAnnounced = false;
      this.emit('resumed');
    }
    // Not resolved yet, or cancelling: start() or the cancel carries on.
    if (!this.source || this.cancelRequested) return;
    void this.continueAfterPause();
  }

  /** The connection dropped: stop sending until it is back. */
  disconnected(): void {
    this.connection = undefined;
    this.epoch++;
  }

  /** After a reconnect: continue from the hub's committed offset (unless paused). */
  async reconnected(connection: ClientConnection): Promise<void> {
    // Started on this very connection already (it opened while the reconnect loop waited on it).
    if (this.connection === connection || this.attachingOn === connection) return;
    if (this.pauseRequested && !this.cancelRequested) return;
    await this.attachOn(connection);
  }

  fail(error: UploadHubError): void {
    if (this.finished) return;
    this.finished = true;
    this.pauseRequested = false;
    this.connection = undefined;
    this.settle(() => this.rejectDone(error));
    void this.closeSource();
  }

  onEvent(event: HubEvent): void {
    if (this.finished) return;
    this.emit('event', event);
    this.see(event);
    switch (event.type) {
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
        this.finish({ id: event.uploadId, name: this.hubName ?? this.options.name ?? this.source?.name ?? '', size: this.view.total, sha256: this.sha256, result: event.result });
        return;
      case 'failed':
        this.hubEnded = true;
        this.fail(new UploadHubError(event.error.code, event.error.message, event.error.stage === undefined ? undefined : { stage: event.error.stage }));
        return;
      case 'cancelled':
        this.hubEnded = true;
        this.fail(new UploadHubError('ERR_CANCELLED', undefined, event.stage === undefined ? undefined : { stage: event.stage }));
        return;
      case 'expired':
        this.hubEnded = true;
        this.fail(new UploadHubError('ERR_EXPIRED'));
        return;
      default:
    }
  }

  /** An error about this upload outside any request (e.g. the hub detached it after idling). */
  onUploadError(message: ErrorMessage): void {
    if (this.finished) return;
    // Paused: the hub let go of it as expected; resume() attaches it again.
    if (message.code === 'ERR_IDLE_TIMEOUT' && this.connection && !this.pauseRequested) void this.attachOn(this.connection);
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
    const resuming = this.id ?? this.guess;
    let attached: AttachedMessage;
    if (resuming === undefined) attached = await connection.request({ type: 'create', ...this.createFields(source) });
    else {
      try {
        attached = await connection.request({ type: 'resume', uploadId: resuming });
      } catch (error) {
        if (this.id === undefined && toHubError(error).code === 'ERR_NOT_FOUND') return this.dropGuess(connection);
        throw error;
      }
    }
    if (this.finished) return;
    if (!this.adopted) {
      const problem = resuming === undefined ? undefined : adoptionProblem(attached.upload, source);
      if (problem) {
        if (this.id === undefined) return this.dropGuess(connection);
        this.hubEnded = problem.code === 'ERR_UPLOAD_STATE';
        return this.fail(problem);
      }
      this.adopted = true;
      this.guess = undefined;
      this.id = attached.upload.id;
      this.hubName = attached.upload.name;
      this.hooks.adopted?.(this.id);
      this.emit('created', this.id);
    }
    // The hub's word on attach is newer than anything heard before it (a reconnect, a resume).
    this.see(attached.upload);
    const settled = settleFromStatus(attached.upload);
    if (settled instanceof UploadHubError) {
      this.hubEnded = true;
      return this.fail(settled);
    }
    if (settled) return this.finish(settled);
    this.connection = connection;
    this.epoch++;
    this.acked = Math.max(this.acked, attached.offset);
    this.sent = attached.offset;
    this.window = attached.window;
    // What the hub has is never read again (a stream source skips it rather than keep it).
    if (this.acked > 0) source.release?.(this.acked);
    if (attached.upload.sha256) this.sha256 = attached.upload.sha256;
    this.emit('attached', attached.offset);
    if (this.cancelRequested) {
      await connection.request({ type: 'cancel', uploadId: attached.upload.id });
      return;
    }
    void this.pump();
  }

  /** The guessed upload cannot be resumed: forget it and create a new one. */
  private async dropGuess(connection: ClientConnection): Promise<void> {
    const stale = this.guess as string;
    this.guess = undefined;
    this.hooks.stale?.(stale);
    if (this.finished) return;
    await this.attach(connection);
  }

  /** Resumes after a pause on the current connection (opening one if needed). */
  private async continueAfterPause(): Promise<void> {
    const connection = await this.connectOrDefer();
    if (!connection || this.pauseRequested || this.finished) return;
    await this.attachOn(connection);
  }

  /**
   * The client's connection, or undefined when there is none now. One that may open later is
   * the client's reconnect loop's: it resumes this upload when it connects, or fails it when it
   * gives up; one that never will (a refused token) fails the upload here.
   */
  private async connectOrDefer(): Promise<ClientConnection | undefined> {
    try {
      return await this.client.connect();
    } catch (error) {
      const hubError = toHubError(error, 'ERR_CONNECTION_LOST');
      if (!isRetryable(hubError)) this.fail(hubError);
      return undefined;
    }
  }

  /** Emits `paused` once nothing is in flight any more (at once if nothing is), once per pause. */
  private announcePaused(): void {
    if (!this.pauseRequested || this.pauseAnnounced || this.inFlight > 0 || this.finished) return;
    this.pauseAnnounced = true;
    const generation = this.pauseGeneration;
    // Later than pause() itself, so a listener added right after the call hears it.
    queueMicrotask(() => {
      if (generation === this.pauseGeneration && !this.finished) this.emit('paused');
    });
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
    // A lost connection is the reconnect loop's business, and so is one that stopped answering
    // or whose node is shutting down (a no-op for one already gone); anything else ends the upload.
    if (meansReconnect(hubError)) this.client.abandon(connection, hubError);
    else {
      if (hubError.code === 'ERR_NOT_FOUND') this.hubEnded = true;
      this.fail(hubError);
    }
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
      while (!this.finished && !this.cancelRequested && !this.pauseRequested && this.connection && this.sent < source.size) {
        let length = this.nextChunk(preferred, source);
        if (length === 0) break;
        const connection = this.connection;
        // At most one chunk waits in the socket while the next is read: a cancel sent now
        // queues behind that little, not behind the whole window.
        await connection.drained(length);
        if (this.finished || this.cancelRequested || this.pauseRequested || this.connection !== connection) break;
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
        // Paused while the chunk was read: it is read again on resume.
        if (this.pauseRequested || this.cancelRequested) break;
        this.sent = offset + length;
        this.inFlight++;
        connection.sendChunk(this.id as string, offset, data).then(
          (reply) => {
            this.inFlight--;
            this.onReply(reply, epoch);
            this.announcePaused();
          },
          () => {
            // Connection lost: the reconnect resumes from the committed offset.
            this.inFlight--;
            this.announcePaused();
          },
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
    const refusal = new UploadHubError(reply.code, reply.message);
    if (meansReconnect(refusal)) {
      // The node is going, cannot reach its shared state, or another node holds the upload now:
      // continue on another connection (through the balancer) from the committed offset.
      if (this.connection) this.client.abandon(this.connection, refusal);
      return;
    }
    switch (reply.code) {
      case 'ERR_FLOW_CONTROL':
        this.rewind(reply.offset ?? this.acked);
        void this.pump();
        return;
      case 'ERR_NOT_ATTACHED':
        if (this.connection) void this.reconnected(this.connection);
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

  /**
   * Runs an event or a status through the reducer and announces the bar when it moved. A bar
   * that ends other than completed says so through `done`, not through one more progress.
   */
  private see(input: HubEvent | UploadStatus): void {
    this.view = reduce(this.view, input, Date.now());
    if ('type' in input && input.type === 'progress') this.hubEta = input.etaSeconds;
    if (isDone(this.view) && this.view.state !== 'completed') return;
    const next = progressOf(this.view, this.hubEta);
    if (!sameProgress(next, this.progress)) this.setProgress(next);
  }

  private setProgress(progress: UploadProgress): void {
    this.progress = progress;
    this.emit('progress', progress);
    this.options.onProgress?.(progress);
  }

  private finish(result: UploadResult): void {
    if (this.finished) return;
    this.finished = true;
    this.hubEnded = true;
    this.pauseRequested = false;
    this.connection = undefined;
    this.settle(() => this.resolveDone(result));
    void this.closeSource();
  }

  private settle(settleDone: () => void): void {
    const recorded = this.hooks.ended?.(this.id, this.hubEnded);
    if (recorded) void recorded.then(settleDone, settleDone);
    else settleDone();
  }

  private async closeSource(): Promise<void> {
    await this.source?.close?.().catch(() => undefined);
  }
}

/** What `handle.progress` says of a view; `etaSeconds` is the hub's own estimate (0 once completed). */
function progressOf(view: UploadView, etaSeconds: number | null): UploadProgress {
  const progress: UploadProgress = {
    bytes: view.bytes, total: view.total, percent: view.percent, phase: view.phase, bytesPerSecond: view.bytesPerSecond,
    etaSeconds: view.state === 'completed' ? 0 : etaSeconds,
  };
  if (view.stage !== undefined) progress.stage = view.stage;
  if (view.stagePercent !== undefined) progress.stagePercent = view.stagePercent;
  if (view.queuePosition !== undefined) progress.queuePosition = view.queuePosition;
  return progress;
}

function sameProgress(a: UploadProgress, b: UploadProgress): boolean {
  const keys = Object.keys(a) as (keyof UploadProgress)[];
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/** Why an upload found on the hub cannot be continued with this source, if it cannot. */
function adoptionProblem(upload: UploadStatus, source: ChunkSource): UploadHubError | undefined {
  if (isTerminalState(upload.state)) return new UploadHubError('ERR_UPLOAD_STATE', `Upload ${upload.id} is ${upload.state}; there is nothing to resume`);
  if (upload.size !== source.size) {
    return new UploadHubError('ERR_SIZE_MISMATCH', `Upload ${upload.id} is of ${upload.size} bytes and the source has ${source.size}: not the same file`);
  }
  return undefined;
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
