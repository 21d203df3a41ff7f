/**
 * The socket protocol's session: one client connection, whatever carries it. A socket transport creates a Session per
 * connection, hands it every decoded message and chunk, and writes what the Session sends to
 * its sink. Hello, authentication, per-connection limits, idle timeouts, reply ordering,
 * subscriptions and their throttle, and the bound on unsent output (Backlog) all live here, so
 * every socket transport behaves the same.
 */
import { splitWatching } from '../../shared/codec.js';
import { UploadHubError, toHubError, type ErrorCode } from '../../shared/errors.js';
import {
  isTerminalState,
  PROTOCOL_VERSION,
  type ChunkReply,
  type ClientMessage,
  type HubEvent,
  type ServerMessage,
  type UploadState,
  type UploadStatus,
  UPLOAD_STATES,
  type WatchingMessage,
  type WelcomeMessage,
} from '../../shared/messages.js';
import { coalesceProgress, EventThrottle } from '../../shared/throttle.js';
import { maySee, type Principal } from '../core/auth.js';
import { Backlog } from '../core/Backlog.js';
import type { ChunkResult, UploadHub, Writer } from '../core/UploadHub.js';
import { handshake } from './handshake.js';

/** What a transport provides to its Session. */
export interface SessionSink {
  send(message: ServerMessage): void;
  /**
   * Bytes written to the connection and not yet sent to the peer (what the transport and its
   * socket hold in memory). The session holds progress back above a quarter of
   * watcherMaxBufferedBytes and closes the connection with ERR_SLOW_CONSUMER above all of it.
   */
  bufferedBytes(): number;
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
  has(uploadId: string): boolean;
  remove(uploadId: string): void;
  /** Every upload the principal may see, or only the added ones. */
  setAll(all: boolean): void;
  /** The connection is congested (or drained again): the fan-out holds progress back from it meanwhile. */
  congested?(congested: boolean): void;
  close(): void;
}

type WatchMessage = Extract<ClientMessage, { type: 'watch' }>;

/** Events held while a `watch` is answered, at most. */
const HELD_EVENTS_MAX = 10_000;

/** States of uploads not yet finished: what a `watch` of everything lists. */
const ACTIVE_STATES: UploadState[] = UPLOAD_STATES.filter((state) => !isTerminalState(state));

/** Errors after which the connection cannot go on. */
const FATAL_CODES: ReadonlySet<ErrorCode> = new Set(['ERR_HELLO_REQUIRED', 'ERR_UNAUTHORIZED', 'ERR_UNSUPPORTED_VERSION', 'ERR_BAD_FRAME']);

/** The reply to one chunk, built from the hub's result. */
export function chunkReply(uploadId: string, chunkOffset: number, result: ChunkResult): ChunkReply {
  if (result.ok) return { type: 'ack', uploadId, chunkOffset, status: result.status, offset: result.committed, window: result.window };
  const reply: ChunkReply = { type: 'error', code: result.error.code, message: result.error.message, uploadId, chunkOffset };
  if (result.committed !== undefined) reply.offset = result.committed;
  return reply;
}

export class Session implements Writer {
  private principal: Principal | undefined;
  private readonly attached = new Map<string, ReturnType<typeof setTimeout> | undefined>();
  private readonly replyTails = new Map<string, Promise<ChunkReply>>();
  private readonly throttle: EventThrottle;
  private readonly subscription: SessionWatch;
  private readonly backlog: Backlog<ServerMessage>;
  private helloTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** Events delivered while a `watch` reads its statuses and missed events; they follow its reply. */
  private held: HubEvent[] | undefined;
  private holds = 0;

  /**
   * @param principal  set when the transport authenticated the connection itself (Socket.IO
   *                   handshake); otherwise the first message must be `hello`.
   * @param watch      replaces the session's own subscription and throttle (Socket.IO rooms).
   */
  constructor(private readonly hub: UploadHub, private readonly sink: SessionSink, principal?: Principal, watch?: SessionWatch) {
    this.principal = principal;
    this.backlog = new Backlog<ServerMessage>(hub.options.watcherMaxBufferedBytes, () => sink.bufferedBytes(), {
      send: (message) => sink.send(message),
      congestion: (congested) => {
        this.subscription.congested?.(congested);
        if (!congested) this.throttle.flush();
      },
      // The backlog sends nothing more from here; the close waits a microtask so that the write
      // that passed the bound is queued first (a transport may measure just before queuing).
      overflow: (bytes) => queueMicrotask(() => this.fatal(new UploadHubError('ERR_SLOW_CONSUMER', `${bytes} bytes unsent to this connection passed watcherMaxBufferedBytes (${hub.options.watcherMaxBufferedBytes})`))),
    });
    this.throttle = new EventThrottle(
      (event) => this.backlog.send({ type: 'event', event }),
      { intervalMs: hub.options.progressIntervalMs, minStepPercent: hub.options.progressMinStepPercent },
      () => this.backlog.congested,
    );
    this.subscription = watch ?? hub.events.subscribe({
      accepts: (_event, owner) => this.principal !== undefined && maySee(this.principal, owner),
      deliver: (event) => this.deliver(event),
    });
    if (!principal && hub.options.helloTimeoutMs > 0) {
      this.helloTimer = setTimeout(() => this.fatal(new UploadHubError('ERR_HELLO_REQUIRED', 'No hello within helloTimeoutMs')), hub.options.helloTimeoutMs);
    }
  }

  get authenticated(): boolean {
    return this.principal !== undefined;
  }

  /** Whether the connection is congested: progress is held back and paced replies wait. */
  get congested(): boolean {
    return this.backlog.congested;
  }

  /** Timers, subscriptions and waiting replies this session holds; zero after close (leak checks). */
  get resources(): { timers: number; attached: number; throttleTimers: number; queuedMessages: number } {
    let timers = this.helloTimer ? 1 : 0;
    for (const timer of this.attached.values()) if (timer) timers++;
    return { timers, attached: this.attached.size, throttleTimers: this.throttle.pendingTimers, queuedMessages: this.backlog.queued };
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
   * One chunk; `respond` writes its reply (a message, an acknowledgement). Replies come back in
   * the order chunks of an upload arrived, whatever order their writes finish in, so a client
   * can match replies to chunks first-in first-out. Never rejects: a failure is the reply.
   */
  chunk(uploadId: string, offset: number, data: Uint8Array, respond: (reply: ChunkReply) => void): void {
    const errorReply = (error: UploadHubError): ChunkReply => ({ type: 'error', code: error.code, message: error.message, uploadId, chunkOffset: offset });
    if (!this.principal) {
      const error = new UploadHubError('ERR_HELLO_REQUIRED');
      this.fatal(error);
      respond(errorReply(error));
      return;
    }
    const timer = this.attached.get(uploadId);
    timer?.refresh();
    const reply = this.hub.receive(this, this.principal, uploadId, offset, data).then(
      (result) => chunkReply(uploadId, offset, result),
      (error: unknown) => errorReply(toHubError(error)),
    );
    const previous = this.replyTails.get(uploadId);
    const ordered = previous ? previous.then(() => reply) : reply;
    this.replyTails.set(uploadId, ordered);
    void ordered.then((answer) => {
      if (this.replyTails.get(uploadId) === ordered) this.replyTails.delete(uploadId);
      respond(answer);
      this.backlog.check();
    });
  }

  /** The transport wrote to the connection on its own (a fan-out, an acknowledgement): apply the bound on unsent output. */
  wrote(): void {
    this.backlog.check();
  }

  /** The transport sent some of its output on to the peer: leave congestion once little is left, send what waited. */
  drain(): void {
    this.backlog.drain();
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
    this.backlog.close();
  }

  /** Writer: the hub took an upload from this session. */
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
          if (message.reqId !== undefined) this.backlog.send({ type: 'status', reqId: message.reqId, upload });
        } catch (error) {
          this.unwatch(message.uploadId);
          throw error;
        }
        return;
      case 'watch':
        await this.watch(principal, message);
        return;
      case 'unwatch':
        if (message.uploadIds === undefined) this.subscription.setAll(false);
        else for (const id of message.uploadIds) if (!this.attached.has(id)) this.unwatch(id);
        return;
      case 'ping':
        this.backlog.send({ type: 'pong', t: message.t });
        return;
    }
  }

  private async hello(version: number, token: string | undefined): Promise<void> {
    if (this.principal) return;
    const principal = await handshake(this.hub, version, token);
    if (this.closed) return;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.principal = principal;
    this.backlog.send(this.welcome());
  }

  /**
   * Follows first, then reads the statuses and the missed events: events delivered meanwhile are
   * held and sent after the reply (those past its lastEventId), so every event is reflected in
   * the reply or sent after it. The reply goes in pieces that wait for the connection to drain;
   * live events may overtake them.
   */
  private async watch(principal: Principal, message: WatchMessage): Promise<void> {
    const ids = message.uploadIds;
    const lastEventId = this.hub.events.lastId;
    const fresh = ids?.filter((id) => !this.subscription.has(id)) ?? [];
    this.holds++;
    this.held ??= [];
    try {
      if (ids === undefined) this.subscription.setAll(true);
      else for (const id of ids) this.subscription.add(id);
      let uploads: UploadStatus[];
      try {
        // Every listed id is checked before anything is followed: one the principal may not see is ERR_NOT_FOUND.
        uploads = ids === undefined
          ? await this.hub.list(principal, { state: ACTIVE_STATES })
          : await Promise.all(ids.map((id) => this.hub.status(principal, id)));
      } catch (error) {
        if (ids === undefined) this.subscription.setAll(false);
        else for (const id of fresh) if (!this.attached.has(id)) this.unwatch(id);
        throw error;
      }
      let events: HubEvent[] | undefined;
      if (message.since !== undefined) {
        const watched = ids === undefined ? undefined : new Set(ids);
        // undefined when the history no longer holds every event after `since`: the statuses alone then.
        const missed = await this.hub.events.since(message.since, (event, owner) => (watched === undefined || watched.has(event.uploadId)) && maySee(principal, owner));
        if (missed) events = coalesceProgress(missed.filter((event) => event.id <= lastEventId));
      }
      const reply: WatchingMessage = { type: 'watching', uploads, lastEventId };
      if (message.reqId !== undefined) reply.reqId = message.reqId;
      if (events) reply.events = events;
      this.backlog.enqueue(splitWatching(reply, Math.min(this.hub.options.maxMessageBytes, this.backlog.pieceBytes)));
    } finally {
      if (--this.holds === 0) {
        const held = this.held ?? [];
        this.held = undefined;
        for (const event of held) if (event.id > lastEventId) this.throttle.push(event);
      }
    }
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
    this.backlog.send({ type: 'attached', reqId, upload: result.upload, offset: result.offset, window: result.window });
  }

  private idleTimer(uploadId: string): ReturnType<typeof setTimeout> | undefined {
    const ms = this.hub.options.idleTimeoutMs;
    if (ms <= 0) return undefined;
    return setTimeout(() => {
      this.attached.delete(uploadId);
      void this.hub.detach(uploadId, this);
      const error = new UploadHubError('ERR_IDLE_TIMEOUT', `No chunk for ${ms} ms; resume to continue`);
      this.backlog.send({ type: 'error', code: error.code, message: error.message, uploadId });
    }, ms);
  }

  private unwatch(uploadId: string): void {
    this.subscription.remove(uploadId);
    this.throttle.forget(uploadId);
  }

  private deliver(event: HubEvent): void {
    if (this.closed) return;
    if (this.held) {
      // Bounded: a watch holds events only while it reads; a flood past the bound ends the connection.
      if (this.held.length >= HELD_EVENTS_MAX) this.fatal(new UploadHubError('ERR_SLOW_CONSUMER', 'Too many events arrived while a watch was being answered'));
      else this.held.push(event);
      return;
    }
    this.throttle.push(event);
  }

  private reportError(error: UploadHubError, ids: { reqId?: string }, uploadId?: string): void {
    const message: ServerMessage = { type: 'error', code: error.code, message: error.message, ...ids };
    if (uploadId !== undefined) message.uploadId = uploadId;
    if (FATAL_CODES.has(error.code)) this.fatal(error, message);
    else this.backlog.send(message);
  }

  private fatal(error: UploadHubError, message?: ServerMessage): void {
    if (this.closed) return;
    // These two are the last things written, past any bound: nothing else is sent from here on.
    this.backlog.close();
    this.sink.send(message ?? { type: 'error', code: error.code, message: error.message });
    this.sink.close(error);
    this.close();
  }
}
