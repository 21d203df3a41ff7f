/**
 * Follows uploads without sending bytes: all the principal may see, or a list of ids. The
 * hub's throttle applies, so a watcher gets the same events an uploader does.
 */
import { toHubError, type UploadHubError } from '../shared/errors.js';
import type { HubEvent, UploadStatus } from '../shared/messages.js';
import { Emitter } from './Emitter.js';
import type { UploadClient } from './UploadClient.js';

export type WatcherEvents = {
  /** Current state of what is watched, on start and after every reconnect. */
  snapshot: (uploads: UploadStatus[]) => void;
  event: (event: HubEvent) => void;
  error: (error: UploadHubError) => void;
};

export class Watcher extends Emitter<WatcherEvents> {
  private stopped = false;
  private readonly ids: ReadonlySet<string> | undefined;

  constructor(private readonly client: UploadClient, uploadIds: string[] | undefined) {
    super();
    this.ids = uploadIds === undefined ? undefined : new Set(uploadIds);
  }

  /** Resolves with the first snapshot. */
  readonly ready: Promise<UploadStatus[]> = new Promise((resolve) => {
    const off = this.on('snapshot', (uploads) => {
      off();
      resolve(uploads);
    });
  });

  /** @internal (re)subscribes on the current connection. */
  async start(): Promise<void> {
    if (this.stopped) return;
    try {
      const connection = await this.client.connect();
      const watching = await connection.request(this.ids === undefined ? { type: 'watch' } : { type: 'watch', uploadIds: [...this.ids] });
      if (!this.stopped) this.emit('snapshot', watching.uploads);
    } catch (error) {
      this.emit('error', toHubError(error));
    }
  }

  /** Asks the hub to cancel a watched upload (needs the right to). Its `cancelled` arrives as an event. */
  async cancel(uploadId: string): Promise<void> {
    const connection = await this.client.connect();
    await connection.request({ type: 'cancel', uploadId });
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.client.forgetWatcher(this);
    this.removeAllListeners();
  }

  /** @internal */
  onEvent(event: HubEvent): void {
    if (this.stopped || (this.ids && !this.ids.has(event.uploadId))) return;
    this.emit('event', event);
  }

  /** @internal */
  fail(error: UploadHubError): void {
    this.emit('error', error);
    this.stop();
  }
}
