/**
 * Follows uploads without sending bytes: all the principal may see, or a list of ids. The
 * hub's throttle applies, so a watcher gets the same events an uploader does.
 *
 * After a reconnect it asks the hub for what it missed (`watch` with `since`, the highest event
 * id it has accounted for): the hub replays the events after it, so an upload that ended while
 * the connection was down still delivers its terminal event. Only when the hub's history no
 * longer reaches back that far does the watcher start over from the snapshot alone.
 *
 * It also keeps where each watched upload's bar is (`view(id)`), by the reducer the upload
 * handle and the pages run (shared/view.ts), so a watcher shows what they show.
 */
import { toHubError, type UploadHubError } from '../shared/errors.js';
import type { HubEvent, UploadStatus, WatchingMessage } from '../shared/messages.js';
import { createdView, isDone, reduce, type UploadView } from '../shared/view.js';
import { meansReconnect, type ClientHost } from './ClientHost.js';
import type { ClientConnection } from './connection/ClientConnection.js';
import { Emitter } from './Emitter.js';

export type WatcherEvents = {
  /**
   * Current state of what is watched (active uploads when watching all), on start and after
   * every reconnect; after a reconnect the events it missed come first.
   */
  snapshot: (uploads: UploadStatus[]) => void;
  /** Hub events in hub order, each once, including those replayed after a reconnect. */
  event: (event: HubEvent) => void;
  error: (error: UploadHubError) => void;
};

export class Watcher extends Emitter<WatcherEvents> {
  private stopped = false;
  private readonly ids: ReadonlySet<string> | undefined;
  /** The highest event id accounted for: emitted, or reflected in a snapshot. Sent as `since` on reconnect. */
  private lastEventId: number | undefined;
  /** The latest reply's lastEventId: what its statuses reflect, so an event up to it is stale. */
  private cut = 0;
  /**
   * Events that arrive while no watch is in force on the current connection (before its reply,
   * or after the connection dropped). The reply decides what they are worth: those it already
   * reflects are dropped, the rest are emitted after it. Progress of one upload is coalesced.
   */
  private held: HubEvent[] | undefined = [];
  private readonly heldProgress = new Map<string, number>();
  /** Counts dropped connections, so a failed request can tell a dead connection from a refusal. */
  private connectionEpoch = 0;
  private readonly offDisconnected: () => void;
  /**
   * The bar of each watched upload. Watching all, only those that have not ended (an ended one
   * goes once its terminal event is emitted), so it holds no more than the hub's active uploads;
   * watching a list, one per listed upload.
   */
  private readonly views = new Map<string, UploadView>();

  constructor(private readonly client: ClientHost, uploadIds: string[] | undefined) {
    super();
    this.ids = uploadIds === undefined ? undefined : new Set(uploadIds);
    // Synchronous with the drop: nothing from the next connection is emitted before its watch is answered.
    this.offDisconnected = client.on('disconnected', () => {
      this.connectionEpoch++;
      this.held ??= [];
    });
  }

  /** Resolves with the first snapshot. */
  readonly ready: Promise<UploadStatus[]> = new Promise((resolve) => {
    const off = this.on('snapshot', (uploads) => {
      off();
      resolve(uploads);
    });
  });

  /** @internal (re)subscribes on the current connection, resuming after lastEventId. */
  async start(): Promise<void> {
    if (this.stopped) return;
    this.held ??= [];
    const since = this.lastEventId;
    const epoch = this.connectionEpoch;
    let connection: ClientConnection | undefined;
    try {
      connection = await this.client.connect();
      const watching = await connection.request({
        type: 'watch',
        ...(this.ids === undefined ? {} : { uploadIds: [...this.ids] }),
        ...(since === undefined ? {} : { since }),
      });
      if (!this.stopped) this.apply(watching);
    } catch (error) {
      const hubError = toHubError(error);
      if (this.stopped) return;
      // Lost with its connection, or refused by a node that is shutting down: the client's
      // reconnect loop starts this watch again on a new connection (or fails the watcher once it
      // gives up), so this is no error of the watch.
      if (meansReconnect(hubError)) {
        if (connection) this.client.abandon(connection, hubError);
        return;
      }
      // The connection is alive and the hub refused: hold nothing more, go on as events come.
      if (epoch === this.connectionEpoch) this.release();
      this.emit('error', hubError);
    }
  }

  /**
   * Where a watched upload's bar is, from the snapshots and events so far: in an `event`
   * listener, after that event. Undefined for an upload not heard of, and (watching all) for one
   * whose terminal event has been emitted.
   */
  view(uploadId: string): UploadView | undefined {
    return this.views.get(uploadId);
  }

  /** Asks the hub to cancel a watched upload (needs the right to). Its `cancelled` arrives as an event. */
  async cancel(uploadId: string): Promise<void> {
    const connection = await this.client.connect();
    await connection.request({ type: 'cancel', uploadId });
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.offDisconnected();
    this.held = undefined;
    this.heldProgress.clear();
    this.views.clear();
    this.client.forgetWatcher(this);
    this.removeAllListeners();
  }

  /** @internal */
  onEvent(event: HubEvent): void {
    if (this.stopped || (this.ids && !this.ids.has(event.uploadId))) return;
    if (this.held) this.hold(event);
    else this.deliver(event);
  }

  /** @internal */
  fail(error: UploadHubError): void {
    this.emit('error', error);
    this.stop();
  }

  /**
   * The reply is a consistent cut at its lastEventId: the events it replays come first, then its
   * statuses, then held events newer than the cut. Events up to the cut, held or still to come
   * (progress the hub held back), are in the replay or reflected in the statuses already.
   */
  private apply(watching: WatchingMessage): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.heldProgress.clear();
    for (const event of watching.events ?? []) {
      if (!this.ids || this.ids.has(event.uploadId)) this.deliver(event);
    }
    this.cut = Math.max(this.cut, watching.lastEventId);
    this.lastEventId = Math.max(this.lastEventId ?? 0, watching.lastEventId);
    this.see(watching.uploads);
    this.emit('snapshot', watching.uploads);
    for (const event of held) this.deliver(event);
  }

  private release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.heldProgress.clear();
    for (const event of held) this.deliver(event);
  }

  private hold(event: HubEvent): void {
    const held = this.held as HubEvent[];
    const at = this.heldProgress.get(event.uploadId);
    // Only the latest progress matters, as long as nothing else of that upload came after it.
    if (event.type === 'progress' && at !== undefined && held[at]?.uploadId === event.uploadId && held[at]?.type === 'progress') {
      held[at] = event;
      return;
    }
    if (event.type === 'progress') this.heldProgress.set(event.uploadId, held.length);
    else this.heldProgress.delete(event.uploadId);
    held.push(event);
  }

  private deliver(event: HubEvent): void {
    // Replayed or reflected in the statuses already (progress held back by the hub's throttle
    // can arrive after newer events; it is only stale if the cut is past it).
    if (event.id <= this.cut) return;
    this.lastEventId = Math.max(this.lastEventId ?? 0, event.id);
    const view = reduce(this.views.get(event.uploadId) ?? createdView(Date.now()), event, Date.now());
    this.views.set(event.uploadId, view);
    this.emit('event', event);
    if (this.ids === undefined && isDone(view)) this.views.delete(event.uploadId);
  }

  /**
   * A snapshot is the whole of what is watched now, newer than anything heard before it: each
   * status replaces its upload's view (never taking the bar back), and a view the snapshot does
   * not mention is of an upload that ended while nobody heard it.
   */
  private see(uploads: readonly UploadStatus[]): void {
    const now = Date.now();
    const previous = new Map(this.views);
    this.views.clear();
    for (const upload of uploads) {
      const view = reduce(previous.get(upload.id) ?? createdView(now), upload, now);
      if (this.ids !== undefined || !isDone(view)) this.views.set(upload.id, view);
    }
  }
}
