/**
 * The client's upload handle and watcher show what the pages show: fed the same events and
 * statuses, `handle.progress` and `watcher.view(id)` agree with the shared reducer the upload
 * page and the dashboard run (shared/view.ts through client/web/view.ts). Both are driven here
 * through a fake ClientHost, the one thing they know of their client.
 */
import { describe, expect, it } from 'vitest';
import { UploadHubError } from '../../shared/errors.js';
import type { AttachedMessage, HubEvent, HubEventBody, UploadStatus, WatchingMessage } from '../../shared/messages.js';
import type { ClientHost, EventFollower } from '../../client/ClientHost.js';
import type { ClientConnection, RequestMessage, RequestReply } from '../../client/connection/ClientConnection.js';
import type { UploadProgress } from '../../client/handle.js';
import { bytesSource } from '../../client/sources.js';
import { UploadTask } from '../../client/UploadTask.js';
import { Watcher } from '../../client/Watcher.js';
import { present, startingView, withEvent, withStatus, type UploadView } from '../../client/web/view.js';
import { createdView, reduce } from '../../shared/view.js';

const ID = 'AbCdEfGhIjKlMnOp';
const OTHER = 'QrStUvWxYz012345';
const SIZE = 1000;
const T0 = 1_800_000_000_000;
let eventId = 100;

type Body = HubEventBody extends infer B ? (B extends HubEventBody ? Omit<B, 'uploadId'> : never) : never;

function ev(body: Body, uploadId = ID): HubEvent {
  eventId += 1;
  return { ...body, id: eventId, uploadId, at: T0 } as HubEvent;
}

function status(fields: Partial<UploadStatus>): UploadStatus {
  return {
    id: ID, name: 'a.bin', size: SIZE, mimeType: 'application/octet-stream', metadata: {}, owner: 'anonymous', state: 'created',
    bytes: 0, percent: 0, phase: 'upload', attached: true, createdAt: T0, updatedAt: T0, ...fields,
  };
}

const progress = (fields: Partial<Extract<HubEvent, { type: 'progress' }>>) =>
  ev({ type: 'progress', bytes: 0, total: SIZE, percent: 0, phase: 'upload', bytesPerSecond: 0, etaSeconds: null, ...fields });

/** A connection that answers requests from `reply` and is never given room to send a chunk. */
function connection(reply: (message: RequestMessage) => unknown): ClientConnection {
  return {
    open: () => Promise.reject(new Error('not used')),
    request: <M extends RequestMessage>(message: M) => Promise.resolve(reply(message) as RequestReply<M>),
    unwatch: () => undefined,
    ping: () => Promise.resolve(0),
    sendChunk: () => new Promise(() => undefined),
    drained: () => Promise.resolve(),
    close: () => undefined,
  };
}

class FakeHost implements ClientHost {
  readonly hubChunkSize = 1024;
  private readonly dropListeners = new Set<(reason: UploadHubError) => void>();
  forgotten: EventFollower[] = [];

  constructor(public current: ClientConnection) {}

  connect(): Promise<ClientConnection> {
    return Promise.resolve(this.current);
  }

  abandon(): void {}

  on(_name: 'disconnected', listener: (reason: UploadHubError) => void): () => void {
    this.dropListeners.add(listener);
    return () => this.dropListeners.delete(listener);
  }

  forgetWatcher(watcher: EventFollower): void {
    this.forgotten.push(watcher);
  }

  drop(): void {
    for (const listener of [...this.dropListeners]) listener(new UploadHubError('ERR_CONNECTION_LOST'));
  }
}

function attached(upload: UploadStatus): AttachedMessage {
  return { type: 'attached', reqId: 'r', upload, offset: upload.bytes, window: 0 };
}

/** What a bar shows, in the words every surface shares. */
function bar(view: UploadView) {
  return { percent: view.percent, phase: view.phase, stage: view.stage, stagePercent: view.stagePercent, queuePosition: view.queuePosition, bytes: view.bytes, total: view.total };
}

function barOf(progress: UploadProgress) {
  return {
    percent: progress.percent, phase: progress.phase, stage: progress.stage, stagePercent: progress.stagePercent, queuePosition: progress.queuePosition,
    bytes: progress.bytes, total: progress.total,
  };
}

/** Resolves once `task` has taken the upload (its `attached` event). */
function attachedOnce(task: UploadTask): Promise<number> {
  return new Promise((resolve) => task.on('attached', resolve));
}

describe('the upload handle', { timeout: 5_000 }, () => {
  it("moves its bar as the upload page's view does, event by event, and never back", async () => {
    const host = new FakeHost(connection(() => attached(status({ state: 'created' }))));
    const task = new UploadTask(host, {});
    const seen: UploadProgress[] = [];
    task.on('progress', (p) => seen.push(p));
    const ready = attachedOnce(task);
    void task.start(bytesSource(new Uint8Array(SIZE)));
    await ready;
    // The page's item for the same upload: it starts before the create is answered.
    let page = withStatus(startingView(T0, SIZE), status({ state: 'created' }), T0);
    const events = [
      ev({ type: 'uploading', bytes: 0 }),
      progress({ bytes: 400, percent: 20, bytesPerSecond: 400, etaSeconds: 1.5 }),
      progress({ bytes: 300, percent: 15 }), // held back by the hub's throttle, arriving late
      progress({ bytes: SIZE, percent: 50, bytesPerSecond: 500, etaSeconds: 0 }),
      ev({ type: 'uploaded', bytes: SIZE, sha256: 'a'.repeat(64) }),
      ev({ type: 'queued', position: 2 }),
      ev({ type: 'queued', position: 1 }),
      ev({ type: 'processing' }),
      ev({ type: 'stage', stage: 'parse', index: 0, count: 2 }),
      progress({ phase: 'processing', bytes: SIZE, percent: 62.5, stage: 'parse', stagePercent: 50, etaSeconds: 4 }),
      ev({ type: 'stage', stage: 'index', index: 1, count: 2 }),
      progress({ phase: 'processing', bytes: SIZE, percent: 87.5, stage: 'index', stagePercent: 50, etaSeconds: 1 }),
      ev({ type: 'completed', result: { parse: 1 } }),
    ];
    for (const event of events) {
      task.onEvent(event);
      page = withEvent(page, event, T0);
      expect(barOf(task.progress)).toEqual(bar(page));
    }
    expect(present(page, T0, 'waiting').badge).toBe('completed');
    expect((await task.done).result).toEqual({ parse: 1 });
    // Announced on every change, never back, and the queue position only while queued.
    const percents = seen.map((p) => p.percent);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(seen.map((p) => p.queuePosition).filter((q, i, all) => i === 0 || q !== all[i - 1])).toEqual([undefined, 2, 1, undefined]);
    expect(seen.at(-1)).toMatchObject({ percent: 100, bytes: SIZE, etaSeconds: 0, bytesPerSecond: 0, stage: 'index', stagePercent: 100 });
    // The hub's own estimate is passed through.
    expect(seen.find((p) => p.stage === 'parse' && p.stagePercent === 50)).toMatchObject({ etaSeconds: 4 });
  });

  it("after a reconnect takes the hub's status from the attach, as a page takes a status", async () => {
    let upload = status({ state: 'created' });
    const host = new FakeHost(connection(() => attached(upload)));
    const task = new UploadTask(host, {});
    let ready = attachedOnce(task);
    void task.start(bytesSource(new Uint8Array(SIZE)));
    await ready;
    task.onEvent(ev({ type: 'uploading', bytes: 0 }));
    task.onEvent(progress({ bytes: 200, percent: 10 }));
    task.disconnected();
    // Meanwhile the rest arrived (another tab) and processing started, in a queue.
    upload = status({ state: 'queued', bytes: SIZE, percent: 50, queuePosition: 3, attached: false });
    ready = attachedOnce(task);
    host.current = connection(() => attached(upload));
    await task.reconnected(host.current);
    await ready;
    const page = withStatus(startingView(T0, SIZE), upload, T0);
    expect(barOf(task.progress)).toEqual(bar(page));
    expect(task.progress).toMatchObject({ bytes: SIZE, percent: 50, queuePosition: 3 });
    task.fail(new UploadHubError('ERR_CANCELLED'));
    await expect(task.done).rejects.toMatchObject({ code: 'ERR_CANCELLED' });
  });

  it('a failure ends it through done, with the bar left where it stopped', async () => {
    const host = new FakeHost(connection(() => attached(status({ state: 'created' }))));
    const task = new UploadTask(host, {});
    const ready = attachedOnce(task);
    void task.start(bytesSource(new Uint8Array(SIZE)));
    await ready;
    task.onEvent(progress({ bytes: 500, percent: 25 }));
    const before = task.progress;
    task.onEvent(ev({ type: 'failed', error: { code: 'ERR_STORAGE', message: 'disk' } }));
    await expect(task.done).rejects.toMatchObject({ code: 'ERR_STORAGE' });
    expect(task.progress).toBe(before);
  });
});

describe('the watcher', { timeout: 5_000 }, () => {
  it('keeps each upload where the dashboard would, replaces it from the snapshot after a reconnect, and lets go of ended ones', async () => {
    let reply: WatchingMessage = { type: 'watching', uploads: [status({ state: 'uploading', bytes: 100, percent: 5 })], lastEventId: 100 };
    const host = new FakeHost(connection(() => reply));
    const watcher = new Watcher(host, undefined);
    void watcher.start();
    await watcher.ready;
    let dashboard = reduce(createdView(T0), status({ state: 'uploading', bytes: 100, percent: 5 }), T0);
    expect(bar(watcher.view(ID) as UploadView)).toEqual(bar(dashboard));

    for (const event of [progress({ bytes: 400, percent: 20 }), ev({ type: 'uploaded', bytes: SIZE, sha256: 'b'.repeat(64) }), ev({ type: 'created', upload: status({ id: OTHER }) }, OTHER)]) {
      watcher.onEvent(event);
      if (event.uploadId === ID) dashboard = reduce(dashboard, event, T0);
    }
    expect(bar(watcher.view(ID) as UploadView)).toEqual(bar(dashboard));
    expect(watcher.view(ID)?.state).toBe('uploaded');
    expect(watcher.view(OTHER)?.state).toBe('created');

    // Dropped; while away, ID moved into processing and OTHER ended unheard.
    host.drop();
    const now = status({ state: 'processing', phase: 'processing', bytes: SIZE, percent: 70, stage: 'index', stagePercent: 40, attached: false });
    reply = { type: 'watching', uploads: [now], lastEventId: eventId };
    const snapshot = new Promise((resolve) => watcher.on('snapshot', resolve));
    void watcher.start();
    await snapshot;
    expect(watcher.view(ID)).toMatchObject({ state: 'processing', stage: 'index', stagePercent: 40, percent: 70 });
    expect(watcher.view(OTHER)).toBeUndefined();

    // In an event listener the view is the one after that event; an ended upload is let go after it.
    let atEnd: UploadView | undefined;
    watcher.on('event', (event) => (atEnd = watcher.view(event.uploadId)));
    watcher.onEvent(ev({ type: 'completed' }));
    expect(atEnd).toMatchObject({ state: 'completed', percent: 100 });
    expect(watcher.view(ID)).toBeUndefined();
    watcher.stop();
    expect(host.forgotten).toEqual([watcher]);
  });
});
