/**
 * One client connection, whatever carries it. A socket transport creates a Session per
 * connection, hands it every decoded message and chunk, and writes what the Session sends to
 * its sink. Hello, authentication, per-connection limits, idle timeouts, reply ordering,
 * subscriptions and their throttle all live here, so every socket transport behaves the same.
 */
import { UploadHubError, toHubError, type ErrorCode } from '../../shared/errors.js';
import { isTerminalState, PROTOCOL_VERSION, type ChunkReply, type ClientMessage, type HubEvent, type ServerMessage, type UploadStatus, type WelcomeMessage } from '../../shared/messages.js';
import { EventThrottle } from '../../shared/throttle.js';
import type { Principal } from './auth.js';
import type { Attachment, UploadHub } from './UploadHub.js';

/** What a transport provides to its Session. */
export interface SessionSink {
  send(message: ServerMessage): void;
  /** True while the transport holds more outgoing data than it wants; progress is then held back. */
  congested(): boolean;
  /** Ends the connection, telling the peer why (its close code). */
  close(error: UploadHubError): void;
}

/**
 * What a session follows, when its transport fans events out itself (Socket.IO rooms) instead
 * of the session subscribing to the hub's stream with its own throttle. The hub's
 * Subscription is one.
 */
export interface SessionWatch {
  add(uploadId: string): void;
  remove(uploadId: string): void;
  /** Every upload the principal may see, or only the added ones. */
  setAll(all: boolean): void;
  close(): void;
}

/** Errors after which the connection cannot go on. */
const FATAL_CODES: ReadonlySet<ErrorCode> = new Set(['ERR_HELLO_REQUIRED', 'ERR_UNAUTHORIZED', 'ERR_UNSUPPORTED_VERSION', 'ERR_BAD_FRAME']);

export class Session implements Attachment {
  private principal: Principal | undefined;
  private readonly attached = new Map<string, ReturnType<typeof setTimeout> | undefined>();
  private readonly replyTails = new Map<string, Promise<ChunkReply>>();
  private readonly throttle: EventThrottle;
  private readonly subscription: SessionWatch;
  private helloTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  /**
   * @param principal  set when the transport authenticated the connection itself (Socket.IO
   *                   handshake); otherwise the first message must be `hello`.
   * @param watch      replaces the session's own subscription and throttle (Socket.IO rooms).
   */
  constructor(private readonly hub: UploadHub, private readonly sink: SessionSink, principal?: Principal, watch?: SessionWatch) {
    this.principal = principal;
    this.throttle = new EventThrottle(
      (event) => this.sink.send({ type: 'event', event }),
      { intervalMs: hub.options.progressIntervalMs, minStepPercent: hub.options.progressMinStepPercent },
      () => this.sink.congested(),
    );
    this.subscription = watch ?? hub.events.subscribe({
      accepts: (event) => this.principal !== undefined && this.hub.canSee(this.principal, event.uploadId),
      deliver: (event) => this.deliver(event),
    });
    if (!principal && hub.options.helloTimeoutMs > 0) {
      this.helloTimer = setTimeout(() => this.fatal(new UploadHubError('ERR_HELLO_REQUIRED', 'No hello within helloTimeoutMs')), hub.options.helloTimeoutMs);
    }
  }

  get authenticated(): boolean {
    return this.principal !== undefined;
  }

  /** Timers and subscriptions this session holds; zero after close (leak checks). */
  get resources(): { timers: number; attached: number; throttleTimers: number } {
    let timers = this.helloTimer ? 1 : 0;
    for (const timer of this.attached.values()) if (timer) timers++;
    return { timers, attached: this.attached.size, throttleTimers: this.throttle.pendingTimers };
  }

  /** The welcome for this session's principal; sent after hello, or by a transport that authenticated itself. */
  welcome(): WelcomeMessage {
    if (!this.principal) throw new UploadHubError('ERR_HELLO_REQUIRED');
    const { maxFileSize, maxChunkSize, chunkSize, maxUploadsPerConnection } = this.hub.options;
    return { type: 'welcome', version: PROTOCOL_VERSION, principal: this.principal.id, limits: { maxFileSize, maxChunkSize, chunkSize, maxUploadsPerConnection } };
  }

  /** Handles one control message; never throws (errors are sent, fatal ones close). */
  async handle(message: ClientMessage): Promise<void> {
    const reqId = 'reqId' in message ? message.reqId : undefined;
    try {
      await this.dispatch(message);
    } catch (error) {
      this.reportError(toHubError(error), reqId === undefined ? {} : { reqId }, 'uploadId' in message ? message.uploadId : undefined);
    }
  }

  /** Reports a message the transport could not decode. Before hello, the missing hello is the error. */
  reject(error: UploadHubError): void {
    this.reportError(this.principal ? error : new UploadHubError('ERR_HELLO_REQUIRED'), {});
  }

  /**
   * One chunk. Replies come back in the order chunks of an upload arrived, whatever order
   * their writes finish in, so a client can match replies to chunks first-in first-out.
   */
  chunk(uploadId: string, offset: number, data: Uint8Array): Promise<ChunkReply> {
    if (!this.principal) {
      const error = new UploadHubError('ERR_HELLO_REQUIRED');
      this.fatal(error);
      return Promise.resolve({ type: 'error', code: error.code, message: error.message, uploadId, chunkOffset: offset });
    }
    const timer = this.attached.get(uploadId);
    timer?.refresh();
    const reply = this.hub.receive(this, this.principal, uploadId, offset, data);
    const previous = this.replyTails.get(uploadId);
    const ordered = previous ? previous.then(() => reply) : reply;
    this.replyTails.set(uploadId, ordered);
    void ordered.finally(() => {
      if (this.replyTails.get(uploadId) === ordered) this.replyTails.delete(uploadId);
    });
    return ordered;
  }

  /** The transport drained its outgoing buffer: send held progress. */
  drain(): void {
    this.throttle.flush();
  }

  /** The connection is gone: detach uploads (they stay resumable), drop subscriptions and timers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    for (const [uploadId, timer] of this.attached) {
      clearTimeout(timer);
      void this.hub.detach(uploadId, this);
    }
    this.attached.clear();
    this.subscription.close();
    this.throttle.close();
  }

  /** Attachment: the hub took an upload from this session. */
  detached(uploadId: string): void {
    clearTimeout(this.attached.get(uploadId));
    this.attached.delete(uploadId);
  }

  // ------------------------------------------------------------------------------------------

  private async dispatch(message: ClientMessage): Promise<void> {
    if (message.type === 'hello') return this.hello(message.version, message.token);
    const principal = this.principal;
    if (!principal) throw new UploadHubError('ERR_HELLO_REQUIRED');
    switch (message.type) {
      case 'create': {
        this.assertRoom();
        const { type: _type, reqId, ...input } = message;
        const created = await this.hub.create(principal, input);
        await this.attach(principal, created.id, reqId);
        return;
      }
      case 'resume':
        if (!this.attached.has(message.uploadId)) this.assertRoom();
        await this.attach(principal, message.uploadId, message.reqId);
        return;
      case 'cancel':
        // Subscribe first so the canceller hears `cancelled` like every other watcher.
        this.subscription.add(message.uploadId);
        try {
          const upload = await this.hub.cancel(principal, message.uploadId);
          if (message.reqId !== undefined) this.sink.send({ type: 'status', reqId: message.reqId, upload });
        } catch (error) {
          this.unwatch(message.uploadId);
          throw error;
        }
        return;
      case 'watch': {
        let uploads: UploadStatus[];
        if (message.uploadIds === undefined) {
          this.subscription.setAll(true);
          uploads = this.hub.list(principal).filter((upload) => !isTerminalState(upload.state));
        } else {
          uploads = message.uploadIds.map((id) => this.hub.status(principal, id));
          for (const upload of uploads) this.subscription.add(upload.id);
        }
        this.sink.send(message.reqId === undefined ? { type: 'watching', uploads } : { type: 'watching', reqId: message.reqId, uploads });
        return;
      }
      case 'unwatch':
        if (message.uploadIds === undefined) this.subscription.setAll(false);
        else for (const id of message.uploadIds) if (!this.attached.has(id)) this.unwatch(id);
        return;
      case 'ping':
        this.sink.send({ type: 'pong', t: message.t });
        return;
    }
  }

  private async hello(version: number, token: string | undefined): Promise<void> {
    if (this.principal) return;
    if (version !== PROTOCOL_VERSION) {
      throw new UploadHubError('ERR_UNSUPPORTED_VERSION', `Protocol version ${version} is not supported; this hub speaks ${PROTOCOL_VERSION}`);
    }
    const principal = await this.hub.authenticate(token);
    if (this.closed) return;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.principal = principal;
    this.sink.send(this.welcome());
  }

  private assertRoom(): void {
    const limit = this.hub.options.maxUploadsPerConnection;
    if (this.attached.size >= limit) throw new UploadHubError('ERR_TOO_MANY_UPLOADS', `At most ${limit} uploads per connection`);
  }

  private async attach(principal: Principal, uploadId: string, reqId: string): Promise<void> {
    this.subscription.add(uploadId);
    let result: Awaited<ReturnType<UploadHub['attach']>>;
    try {
      result = await this.hub.attach(principal, uploadId, this);
    } catch (error) {
      this.unwatch(uploadId);
      throw error;
    }
    if (this.closed) {
      void this.hub.detach(uploadId, this);
      return;
    }
    if (result.window > 0 && !this.attached.has(uploadId)) this.attached.set(uploadId, this.idleTimer(uploadId));
    this.sink.send({ type: 'attached', reqId, upload: result.upload, offset: result.offset, window: result.window });
  }

  private idleTimer(uploadId: string): ReturnType<typeof setTimeout> | undefined {
    const ms = this.hub.options.idleTimeoutMs;
    if (ms <= 0) return undefined;
    return setTimeout(() => {
      this.attached.delete(uploadId);
      void this.hub.detach(uploadId, this);
      const error = new UploadHubError('ERR_IDLE_TIMEOUT', `No chunk for ${ms} ms; resume to continue`);
      this.sink.send({ type: 'error', code: error.code, message: error.message, uploadId });
    }, ms);
  }

  private unwatch(uploadId: string): void {
    this.subscription.remove(uploadId);
    this.throttle.forget(uploadId);
  }

  private deliver(event: HubEvent): void {
    this.throttle.push(event);
  }

  private reportError(error: UploadHubError, ids: { reqId?: string }, uploadId?: string): void {
    const message: ServerMessage = { type: 'error', code: error.code, message: error.message, ...ids };
    if (uploadId !== undefined) message.uploadId = uploadId;
    if (FATAL_CODES.has(error.code)) this.fatal(error, message);
    else this.sink.send(message);
  }

  private fatal(error: UploadHubError, message?: ServerMessage): void {
    if (this.closed) return;
    this.sink.send(message ?? { type: 'error', code: error.code, message: error.message });
    this.sink.close(error);
    this.close();
  }
}
