// The post-upload pipeline end to end: a real hub on port 0, the ws UploadClient as uploader and
// a second client as watcher. Stages that must "run for a while" block on promises the test
// controls; every wait is on an event. A broken feature tends to hang rather than throw, so each
// describe has a 30 s limit instead of the suite's 120 s.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { UploadHubError } from '../../shared/errors.js';
import type { HubEvent, HubEventType } from '../../shared/messages.js';
import type { UploadHandle, UploadLogLine, UploadProgress } from '../../client/UploadClient.js';
import type { HubOptionsInput } from '../../server/config.js';
import { ANONYMOUS } from '../../server/core/auth.js';
import type { Stage } from '../../server/processing/Stage.js';
import { defaultPipeline } from '../../server/processors/index.js';
import { onCleanup, randomFile, sha256Of, startClient, startHub, storedPath } from '../helpers.js';

// ---------------------------------------------------------------------------------------------
// Helpers

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  settled: boolean;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve(value) {
      d.settled = true;
      resolve(value);
    },
  };
  return d;
}

type EventOf<T extends HubEventType> = Extract<HubEvent, { type: T }>;

/** Every event one listener saw, with a way to wait for one that may have arrived already. */
class EventLog {
  readonly events: HubEvent[] = [];
  private readonly waiters: { test: (event: HubEvent) => boolean; resolve: (event: HubEvent) => void }[] = [];

  readonly push = (event: HubEvent): void => {
    this.events.push(event);
    for (const waiter of [...this.waiters]) {
      if (!waiter.test(event)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(event);
    }
  };

  of<T extends HubEventType>(type: T, uploadId?: string): EventOf<T>[] {
    return this.events.filter((e): e is EventOf<T> => e.type === type && (uploadId === undefined || e.uploadId === uploadId));
  }

  forUpload(uploadId: string): HubEvent[] {
    return this.events.filter((e) => e.uploadId === uploadId);
  }

  until<T extends HubEventType>(type: T, uploadId: string | undefined, test: (event: EventOf<T>) => boolean = () => true): Promise<EventOf<T>> {
    const matches = (event: HubEvent): boolean => event.type === type && (uploadId === undefined || event.uploadId === uploadId) && test(event as EventOf<T>);
    const found = this.events.find(matches);
    if (found) return Promise.resolve(found as EventOf<T>);
    return new Promise((resolve) => this.waiters.push({ test: matches, resolve: (event) => resolve(event as EventOf<T>) }));
  }
}

/** A hub with `pipeline`, an uploading client and a watching client (watching everything). */
async function setup(pipeline: readonly Stage[] | ReturnType<typeof defaultPipeline>, options: HubOptionsInput = {}) {
  const hub = await startHub({ pipeline, options });
  const uploader = startClient({ url: hub.url });
  const watcherClient = startClient({ url: hub.url });
  const watcher = watcherClient.watch();
  await watcher.ready;
  const watched = new EventLog();
  watcher.on('event', watched.push);
  return { hub, uploader, watcherClient, watcher, watched };
}

interface Tracked {
  handle: UploadHandle;
  events: EventLog;
  progress: UploadProgress[];
  logs: UploadLogLine[];
  id: Promise<string>;
}

function track(handle: UploadHandle): Tracked {
  const events = new EventLog();
  const progress: UploadProgress[] = [];
  const logs: UploadLogLine[] = [];
  handle.on('event', events.push);
  handle.on('progress', (p) => progress.push(p));
  handle.on('log', (line) => logs.push(line));
  const id = handle.id !== undefined ? Promise.resolve(handle.id) : new Promise<string>((resolve) => handle.on('created', resolve));
  return { handle, events, progress, logs, id };
}

async function rejection(promise: Promise<unknown>): Promise<UploadHubError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(UploadHubError);
    return error as UploadHubError;
  }
  throw new Error('expected the upload to fail');
}

function outputsOf(dataDir: string, id: string): string {
  return join(dataDir, 'outputs', id);
}

function expectNonDecreasing(values: number[]): void {
  for (let i = 1; i < values.length; i++) expect(values[i], `value ${i} of ${JSON.stringify(values)}`).toBeGreaterThanOrEqual(values[i - 1] as number);
}

// ---------------------------------------------------------------------------------------------

describe('combined progress', { timeout: 30_000 }, () => {
  it('moves monotonically from 0 to 100 across both phases, for the uploader and a watcher', async () => {
    const stages: Stage[] = [
      {
        name: 'parse',
        weight: 1,
        run(ctx) {
          for (let i = 0; i <= 8; i++) ctx.progress(i, 10);
          ctx.progress(3, 10); // a stage going back must not move the bar back
          ctx.progress(10, 10);
          return { parsed: true };
        },
      },
      {
        name: 'index',
        weight: 3,
        async run(ctx) {
          for (let i = 0; i <= 4; i++) {
            ctx.progress(i, 4);
            await new Promise((resolve) => setImmediate(resolve));
          }
          return { entries: 4 };
        },
      },
    ];
    // No throttle, so every step is visible and checked.
    const { uploader, watched } = await setup(stages, { progressIntervalMs: 0, progressMinStepPercent: 0 });
    const bytes = new Uint8Array(512 * 1024).fill(7);
    const upload = track(uploader.upload(bytes, { name: 'two-phase.bin', chunkSize: 32 * 1024 }));
    const result = await upload.handle.done;
    const id = await upload.id;
    expect(result.result).toEqual({ parse: { parsed: true }, index: { entries: 4 } });
    await watched.until('completed', id);

    const created = watched.of('created', id)[0];
    expect(created?.upload.percent).toBe(0);

    for (const log of [upload.events, watched]) {
      const progress = log.of('progress', id);
      const percents = progress.map((p) => p.percent);
      expectNonDecreasing(percents);
      expect(percents[0]).toBeLessThan(50);
      expect(percents.at(-1)).toBe(100);
      // Phases: all upload, then all processing; the upload phase fills exactly its 50 %.
      const firstProcessing = progress.findIndex((p) => p.phase === 'processing');
      expect(firstProcessing).toBeGreaterThan(0);
      expect(progress.slice(firstProcessing).every((p) => p.phase === 'processing')).toBe(true);
      const uploadPhase = progress.slice(0, firstProcessing);
      expect(uploadPhase.every((p) => p.percent <= 50 && p.stage === undefined)).toBe(true);
      expect(uploadPhase.at(-1)?.percent).toBe(50);
      expect(uploadPhase.length).toBeGreaterThan(1);
      const processing = progress.slice(firstProcessing);
      for (const p of processing) {
        expect(p.percent).toBeGreaterThanOrEqual(50);
        expect(['parse', 'index']).toContain(p.stage);
        expect(p.stagePercent).toBeGreaterThanOrEqual(0);
        expect(p.stagePercent).toBeLessThanOrEqual(100);
      }
      // Weights 1 and 3 share the second half: index at 50 % is 50 + 50 * (1 + 1.5) / 4.
      expect(processing).toContainEqual(expect.objectContaining({ stage: 'index', stagePercent: 50, percent: 81.25 }));
      expect(processing).toContainEqual(expect.objectContaining({ stage: 'parse', stagePercent: 80, percent: 60 }));
      // parse went back to 30 %; the bar stayed.
      expect(processing).toContainEqual(expect.objectContaining({ stage: 'parse', stagePercent: 30, percent: 60 }));
      expect(log.of('stage', id).map((s) => [s.stage, s.index, s.count])).toEqual([['parse', 0, 2], ['index', 1, 2]]);
      expect(log.forUpload(id).at(-1)?.type).toBe('completed');
    }

    // The client's progress events carry the same fields.
    const seen = upload.progress;
    expectNonDecreasing(seen.map((p) => p.percent));
    expect(seen.at(-1)?.percent).toBe(100);
    const during = seen.filter((p) => p.phase === 'processing' && p.stage !== undefined);
    expect(during.length).toBeGreaterThan(3);
    expect(during).toContainEqual(expect.objectContaining({ stage: 'index', stagePercent: 50, percent: 81.25 }));
  });

  it('gives the upload uploadShare of the bar when stages run, and all of it when none do', async () => {
    const bytes = new Uint8Array(64 * 1024);
    const lastUploadPercent = (events: EventLog, id: string): number | undefined =>
      events.of('progress', id).filter((p) => p.phase === 'upload').at(-1)?.percent;

    const noStages = await setup([]);
    const plain = track(noStages.uploader.upload(bytes, { chunkSize: 16 * 1024 }));
    expect((await plain.handle.done).result).toBeUndefined();
    expect(lastUploadPercent(plain.events, await plain.id)).toBe(100);
    expect(plain.events.of('processing')).toHaveLength(0);

    const custom = await setup([{ name: 'noop', run: () => 'ok' }], { uploadShare: 20 });
    const shared = track(custom.uploader.upload(bytes, { chunkSize: 16 * 1024 }));
    expect((await shared.handle.done).result).toEqual({ noop: 'ok' });
    expect(lastUploadPercent(shared.events, await shared.id)).toBe(20);
  });
});

describe('which stages run', { timeout: 30_000 }, () => {
  it('depends on the upload: its type, size and metadata (`when`)', async () => {
    const ran: string[] = [];
    const stage = (name: string, when: Stage['when']): Stage => ({
      name,
      ...(when ? { when } : {}),
      run(ctx) {
        ran.push(`${ctx.upload.name}:${name}`);
        return { by: name, type: ctx.upload.mimeType, tag: ctx.upload.metadata.tag ?? null };
      },
    });
    const { uploader, watched } = await setup([
      stage('big', (u) => u.size >= 1000),
      stage('csvOnly', (u) => u.mimeType === 'text/csv'),
      stage('tagged', (u) => u.metadata.tag === 'yes'),
    ]);
    const big = new Uint8Array(2000);

    const csv = track(uploader.upload(big, { name: 'a.csv', type: 'text/csv' }));
    expect((await csv.handle.done).result).toEqual({ big: { by: 'big', type: 'text/csv', tag: null }, csvOnly: { by: 'csvOnly', type: 'text/csv', tag: null } });
    expect(csv.events.of('stage').map((s) => `${s.stage}/${s.count}`)).toEqual(['big/2', 'csvOnly/2']);

    const tagged = track(uploader.upload(big, { name: 'b.bin', metadata: { tag: 'yes' } }));
    expect(Object.keys((await tagged.handle.done).result as object)).toEqual(['big', 'tagged']);

    const none = track(uploader.upload(new Uint8Array(10), { name: 'c.png', type: 'image/png' }));
    const done = await none.handle.done;
    expect(done.result).toBeUndefined();
    const id = await none.id;
    await watched.until('completed', id);
    expect(watched.of('stage', id)).toHaveLength(0);
    expect(watched.of('progress', id).at(-1)).toMatchObject({ percent: 100, phase: 'upload' });
    expect(ran).toEqual(['a.csv:big', 'a.csv:csvOnly', 'b.bin:big', 'b.bin:tagged']);
  });
});

describe('cancel mid-processing', { timeout: 30_000 }, () => {
  it('fires the stage signal, removes files and outputs, and sends `cancelled` with the stage to uploader and watcher', async () => {
    const running = deferred<string>();
    const aborted = deferred<unknown>();
    let laterStageRan = false;
    const { hub, uploader, watched } = await setup([
      {
        name: 'transcode',
        async run(ctx) {
          const dir = await ctx.outputDir();
          await writeFile(join(dir, 'partial.out'), 'half done');
          ctx.progress(1, 4);
          running.resolve(dir);
          await new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => {
              aborted.resolve(ctx.signal.reason);
              reject(ctx.signal.reason);
            }, { once: true });
          });
        },
      },
      { name: 'publish', run: () => void (laterStageRan = true) },
    ]);
    const upload = track(uploader.upload(new Uint8Array(256 * 1024).fill(1), { name: 'movie.bin' }));
    const outputDir = await running.promise;
    const id = await upload.id;
    expect(outputDir).toBe(outputsOf(hub.dataDir, id));
    expect(existsSync(storedPath(hub, id))).toBe(true);
    expect(existsSync(join(outputDir, 'partial.out'))).toBe(true);
    await watched.until('progress', id, (p) => p.stage === 'transcode');

    await upload.handle.cancel();
    const error = await rejection(upload.handle.done);
    expect(error.code).toBe('ERR_CANCELLED');
    expect(error.stage).toBe('transcode');

    // The signal fired inside the stage, with the coded reason.
    const reason = await aborted.promise;
    expect(reason).toBeInstanceOf(UploadHubError);
    expect((reason as UploadHubError).code).toBe('ERR_CANCELLED');

    expect(upload.events.of('cancelled', id)).toEqual([expect.objectContaining({ stage: 'transcode' })]);
    const cancelled = await watched.until('cancelled', id);
    expect(cancelled.stage).toBe('transcode');
    expect(watched.forUpload(id).at(-1)).toBe(cancelled);

    // Bytes and outputs are gone by the time `cancelled` is out; the stage after never ran.
    expect(existsSync(storedPath(hub, id))).toBe(false);
    expect(existsSync(outputsOf(hub.dataDir, id))).toBe(false);
    expect(laterStageRan).toBe(false);
    expect(await hub.hub.status(ANONYMOUS, id)).toMatchObject({ state: 'cancelled', stage: 'transcode' });
  });

  it('publishes one `cancelled` when cancels race', async () => {
    const running = deferred();
    const { hub, uploader, watcherClient, watched } = await setup([
      {
        name: 'wait',
        run: (ctx) =>
          new Promise((_resolve, reject) => {
            running.resolve();
            // Settles a turn later, so both cancels are waiting on it.
            ctx.signal.addEventListener('abort', () => setImmediate(() => reject(ctx.signal.reason)), { once: true });
          }),
      },
    ]);
    const upload = track(uploader.upload(new Uint8Array(100)));
    await running.promise;
    const id = await upload.id;
    const published: HubEventType[] = [];
    const untap = hub.hub.events.tap((event) => {
      if (event.uploadId === id) published.push(event.type);
    });
    onCleanup(untap);
    const [first, second] = await Promise.all([hub.hub.cancel(ANONYMOUS, id), hub.hub.cancel(ANONYMOUS, id)]);
    expect([first.state, second.state]).toEqual(['cancelled', 'cancelled']);
    expect(published.filter((type) => type === 'cancelled')).toHaveLength(1);
    await rejection(upload.handle.done);
    await watcherClient.ping();
    expect(watched.of('cancelled', id)).toHaveLength(1);
  });

  it('abandons a stage that ignores its signal at the deadline, logs it, and frees its slot', async () => {
    const gate = deferred();
    const started = deferred<string>();
    const ended = deferred();
    let sawAbort = false;
    const { hub, uploader, watcher, watcherClient, watched } = await setup(
      [
        {
          name: 'stubborn',
          async run(ctx) {
            if (ctx.upload.name !== 'stubborn.bin') return 'quick';
            ctx.signal.addEventListener('abort', () => (sawAbort = true));
            started.resolve(ctx.upload.id);
            await gate.promise; // ignores the signal
            ctx.log('info', 'too late');
            ctx.progress(1, 1);
            ended.resolve();
            return 'finished anyway';
          },
        },
      ],
      { abortDeadlineMs: 150, processingConcurrency: 1 },
    );
    const stubborn = track(uploader.upload(new Uint8Array(1000), { name: 'stubborn.bin' }));
    const id = await started.promise;
    // Queued behind the stubborn one: it runs only if the abandoned stage gives up its slot.
    const next = track(uploader.upload(new Uint8Array(1000), { name: 'next.bin' }));
    const nextId = await next.id;
    await watched.until('queued', nextId);

    await watcher.cancel(id);
    const error = await rejection(stubborn.handle.done);
    expect(error).toMatchObject({ code: 'ERR_CANCELLED', stage: 'stubborn' });
    expect(sawAbort).toBe(true);
    expect(gate.settled).toBe(false); // cancelled while the stage was still running

    const warning = 'Stage stubborn ignored its abort signal; abandoned after 150 ms';
    expect(stubborn.logs).toContainEqual({ level: 'warn', text: warning, stage: 'stubborn' });
    const cancelled = await watched.until('cancelled', id);
    const logged = watched.of('log', id).find((l) => l.text === warning);
    expect(logged).toMatchObject({ level: 'warn', stage: 'stubborn' });
    expect((logged as HubEvent).id).toBeLessThan(cancelled.id);
    expect(existsSync(storedPath(hub, id))).toBe(false);

    expect((await next.handle.done).result).toEqual({ stubborn: 'quick' });

    // When the abandoned stage finally returns, nothing it reports reaches anyone.
    const countBefore = watched.forUpload(id).length;
    gate.resolve();
    await ended.promise;
    await watcherClient.ping(); // anything sent before the pong has arrived
    expect(watched.forUpload(id)).toHaveLength(countBefore);
    expect((await hub.hub.status(ANONYMOUS, id)).state).toBe('cancelled');
  });
});

describe('stage failures', { timeout: 30_000 }, () => {
  it('fail the upload with ERR_STAGE_FAILED / ERR_STAGE_TIMEOUT and the stage name; the hub keeps working', async () => {
    const timeoutReason = deferred<unknown>();
    const byMode = (mode: string): Stage['when'] => (u) => u.metadata.mode === mode;
    const { hub, uploader, watched } = await setup(
      [
        { name: 'explode', when: byMode('throw'), run: async () => Promise.reject(new Error('disk on fire')) },
        {
          name: 'syncThrow',
          when: byMode('sync'),
          run: () => {
            // A non-Error thrown synchronously from a non-async run.
            throw 'plain string';
          },
        },
        { name: 'badResult', when: byMode('bigint'), run: () => ({ big: 10n }) as never },
        {
          name: 'slow',
          when: byMode('timeout'),
          timeoutMs: 100,
          run: (ctx) =>
            new Promise((_resolve, reject) => {
              ctx.signal.addEventListener('abort', () => {
                timeoutReason.resolve(ctx.signal.reason);
                reject(ctx.signal.reason);
              }, { once: true });
            }),
        },
        { name: 'deaf', when: byMode('timeoutDeaf'), timeoutMs: 100, run: () => new Promise(() => {}) },
        { name: 'fine', when: byMode('ok'), run: (ctx) => ({ size: ctx.upload.size }) },
      ],
      { abortDeadlineMs: 100 },
    );
    const send = (mode: string) => track(uploader.upload(new Uint8Array(2048).fill(3), { name: `${mode}.bin`, metadata: { mode } }));

    const cases = [
      { mode: 'throw', code: 'ERR_STAGE_FAILED', stage: 'explode', message: /disk on fire/ },
      { mode: 'sync', code: 'ERR_STAGE_FAILED', stage: 'syncThrow', message: /plain string/ },
      { mode: 'bigint', code: 'ERR_STAGE_FAILED', stage: 'badResult', message: /BigInt/ },
      { mode: 'timeout', code: 'ERR_STAGE_TIMEOUT', stage: 'slow', message: /slow exceeded 100 ms/ },
      { mode: 'timeoutDeaf', code: 'ERR_STAGE_TIMEOUT', stage: 'deaf', message: /deaf exceeded 100 ms/ },
    ] as const;
    for (const { mode, code, stage, message } of cases) {
      const upload = send(mode);
      const error = await rejection(upload.handle.done);
      expect(error, mode).toMatchObject({ code, stage });
      expect(error.message).toMatch(message);
      const id = await upload.id;
      const failed = await watched.until('failed', id);
      expect(failed.error).toEqual({ code, stage, message: error.message });
      expect(await hub.hub.status(ANONYMOUS, id)).toMatchObject({ state: 'failed', error: { code, stage } });
      expect(existsSync(storedPath(hub, id))).toBe(false);
    }
    expect((await timeoutReason.promise as UploadHubError).code).toBe('ERR_STAGE_TIMEOUT');
    const deafId = await watched.until('failed', undefined, (f) => f.error.stage === 'deaf');
    expect(watched.of('log', deafId.uploadId).map((l) => l.text)).toContain('Stage deaf ignored its abort signal; abandoned after 100 ms');

    // Same hub, same process: the next upload goes through.
    expect((await send('ok').handle.done).result).toEqual({ fine: { size: 2048 } });
  });

  it('turns a `when` that throws into a failure of that stage instead of breaking create', async () => {
    const { uploader } = await setup([
      { name: 'picky', when: () => { throw new Error('no metadata'); }, run: () => 'never' },
    ]);
    const error = await rejection(track(uploader.upload(new Uint8Array(10))).handle.done);
    expect(error).toMatchObject({ code: 'ERR_STAGE_FAILED', stage: 'picky' });
    expect(error.message).toMatch(/when\(\) threw: no metadata/);
  });
});

describe('processing queue', { timeout: 30_000 }, () => {
  it('reports queue positions that count down, as events and in client progress', async () => {
    const gates = new Map<string, Deferred<void>>();
    const started = new Map<string, Deferred<void>>();
    for (const name of ['A', 'B', 'C', 'D']) {
      gates.set(name, deferred());
      started.set(name, deferred());
    }
    const { hub, uploader, watched } = await setup(
      [
        {
          name: 'hold',
          async run(ctx) {
            started.get(ctx.upload.name)?.resolve();
            await gates.get(ctx.upload.name)?.promise;
            return ctx.upload.name;
          },
        },
      ],
      { processingConcurrency: 1 },
    );
    const send = (name: string) => track(uploader.upload(new Uint8Array(1024), { name }));
    const a = send('A');
    await started.get('A')?.promise;
    const waiting: Record<string, Tracked> = {};
    for (const [name, position] of [['B', 1], ['C', 2], ['D', 3]] as const) {
      const upload = send(name);
      waiting[name] = upload;
      const queued = await upload.events.until('queued', undefined);
      expect(queued.position).toBe(position);
    }
    const [b, c, d] = [waiting.B as Tracked, waiting.C as Tracked, waiting.D as Tracked];
    const [bId, cId, dId] = await Promise.all([b.id, c.id, d.id]);
    expect((await hub.hub.status(ANONYMOUS, dId)).queuePosition).toBe(3);

    // Leaving the queue moves everyone behind up.
    await b.handle.cancel();
    expect(await rejection(b.handle.done)).toMatchObject({ code: 'ERR_CANCELLED', stage: undefined });
    await d.events.until('queued', dId, (q) => q.position === 2);

    gates.get('A')?.resolve();
    expect((await a.handle.done).result).toEqual({ hold: 'A' });
    await started.get('C')?.promise;
    await d.events.until('queued', dId, (q) => q.position === 1);

    gates.get('C')?.resolve();
    await c.handle.done;
    await started.get('D')?.promise;
    gates.get('D')?.resolve();
    expect((await d.handle.done).result).toEqual({ hold: 'D' });
    await watched.until('completed', dId);

    for (const log of [d.events, watched]) expect(log.of('queued', dId).map((q) => q.position)).toEqual([3, 2, 1]);
    for (const log of [c.events, watched]) expect(log.of('queued', cId).map((q) => q.position)).toEqual([2, 1]);
    expect(watched.of('queued', bId).map((q) => q.position)).toEqual([1]);
    expect(watched.of('cancelled', bId)).toEqual([expect.not.objectContaining({ stage: expect.anything() })]);
    expect(watched.of('stage', bId)).toHaveLength(0);

    // The client's progress carries the position while waiting, and drops it once processing.
    const positions = d.progress.map((p) => p.queuePosition).filter((p, i, all) => i === 0 || p !== all[i - 1]);
    expect(positions).toEqual([undefined, 3, 2, 1, undefined]);
    expect(d.progress.filter((p) => p.phase === 'processing').every((p) => p.queuePosition === undefined)).toBe(true);
  });
});

describe('log lines', { timeout: 30_000 }, () => {
  it('reach uploader and watcher with level and stage, limited per second with a summary of dropped lines', async () => {
    const holding = deferred();
    const release = deferred();
    const { uploader, watched } = await setup(
      [
        {
          name: 'chatty',
          async run(ctx) {
            ctx.log('info', 'hello');
            ctx.log('warn', 'careful');
            ctx.log('error', 'bad thing');
            for (let i = 1; i <= 50; i++) ctx.log('info', `line ${i}`);
            if (ctx.upload.name === 'hold.bin') {
              holding.resolve();
              await release.promise;
            }
            return 'said it all';
          },
        },
      ],
      { logLinesPerSecond: 5 },
    );

    // Ends right after logging: the summary comes before `completed`.
    const quick = track(uploader.upload(new Uint8Array(100), { name: 'quick.bin' }));
    expect((await quick.handle.done).result).toEqual({ chatty: 'said it all' });
    const expected = [
      { level: 'info', text: 'hello', stage: 'chatty' },
      { level: 'warn', text: 'careful', stage: 'chatty' },
      { level: 'error', text: 'bad thing', stage: 'chatty' },
      { level: 'info', text: 'line 1', stage: 'chatty' },
      { level: 'info', text: 'line 2', stage: 'chatty' },
      { level: 'warn', text: '48 log lines dropped (limit 5/s)' },
    ];
    expect(quick.logs).toEqual(expected);
    const quickId = await quick.id;
    await watched.until('completed', quickId);
    expect(watched.of('log', quickId).map(({ level, text, stage }) => (stage === undefined ? { level, text } : { level, text, stage }))).toEqual(expected);
    const order = watched.forUpload(quickId).map((e) => e.type);
    expect(order.lastIndexOf('log')).toBeLessThan(order.indexOf('completed'));

    // Still running: the summary comes when the second is over, without another line to carry it.
    const held = track(uploader.upload(new Uint8Array(100), { name: 'hold.bin' }));
    await holding.promise;
    const heldId = await held.id;
    const summary = await watched.until('log', heldId, (l) => l.text.includes('dropped'));
    expect(summary).toMatchObject({ level: 'warn', text: '48 log lines dropped (limit 5/s)' });
    await held.events.until('log', heldId, (l) => l.text.includes('dropped'));
    expect(held.logs).toHaveLength(6);
    release.resolve();
    await held.handle.done;
  });
});

describe('example stages (defaultPipeline, as in npm start)', { timeout: 30_000 }, () => {
  it('imports a CSV: right row count, each bad row logged as a warning, gzip copy decompresses to the original', async () => {
    const { hub, uploader } = await setup(defaultPipeline());
    const lines = ['sku,name,price'];
    const bad: string[] = [];
    for (let i = 1; i <= 300; i++) {
      const line = i + 1;
      if (i % 50 === 0) {
        lines.push(`${i},missing price`);
        bad.push(`line ${line}: expected 3 fields, found 2`);
      } else if (i % 77 === 0) {
        lines.push(`${i},"too, many",1.00,extra`);
        bad.push(`line ${line}: expected 3 fields, found 4`);
      } else lines.push(`${i},"item ${i}",${(i / 4).toFixed(2)}`);
    }
    const csv = Buffer.from(`${lines.join('\n')}\n`);
    const upload = track(uploader.upload(csv, { name: 'prices.csv', type: 'text/csv' }));
    const { result } = await upload.handle.done;
    const id = await upload.id;
    const goodRows = 300 - bad.length;
    expect(result).toEqual({
      import: { format: 'csv', rows: goodRows, badRows: bad.length, output: 'rows.ndjson', columns: ['sku', 'name', 'price'] },
      compress: expect.objectContaining({ output: `${id}.gz`, bytes: csv.byteLength }),
    });
    expect(upload.logs.filter((l) => l.level === 'warn').map((l) => l.text)).toEqual(bad);
    expect(upload.logs.filter((l) => l.level === 'warn').every((l) => l.stage === 'import')).toBe(true);
    expect(upload.events.of('stage').map((s) => s.stage)).toEqual(['import', 'compress']);

    const rows = (await readFile(join(outputsOf(hub.dataDir, id), 'rows.ndjson'), 'utf8')).trim().split('\n');
    expect(rows).toHaveLength(goodRows);
    expect(JSON.parse(rows[0] as string)).toEqual({ sku: '1', name: 'item 1', price: '0.25' });
    const gz = await readFile(join(outputsOf(hub.dataDir, id), `${id}.gz`));
    expect(gunzipSync(gz).equals(csv)).toBe(true);
  });

  it('imports NDJSON the same way', async () => {
    const { uploader } = await setup(defaultPipeline());
    const text = ['{"a":1}', '{"a":2', '{"a":3}', '42', '', '{"a":4}'].join('\n');
    const upload = track(uploader.upload(Buffer.from(text), { name: 'events.ndjson' }));
    const { result } = await upload.handle.done;
    expect(result).toMatchObject({ import: { format: 'ndjson', rows: 3, badRows: 2 } });
    const warnings = upload.logs.filter((l) => l.level === 'warn').map((l) => l.text);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^line 2: invalid JSON/);
    expect(warnings[1]).toBe('line 4: not a JSON object');
  });

  it('compresses any other file only where it helps; the gzip output decompresses to the original', async () => {
    const { hub, uploader } = await setup(defaultPipeline());
    const text = Buffer.from('a log line that repeats\n'.repeat(100_000));
    const upload = track(uploader.upload(text, { name: 'app.log' }));
    const { result } = await upload.handle.done;
    const id = await upload.id;
    expect(Object.keys(result as object)).toEqual(['compress']);
    const gz = await readFile(join(outputsOf(hub.dataDir, id), `${id}.gz`));
    expect(gunzipSync(gz).equals(text)).toBe(true);
    expect(gz.byteLength).toBeLessThan(text.byteLength);
    const compress = upload.progress.filter((p) => p.stage === 'compress');
    expect(compress.at(-1)).toMatchObject({ percent: 100, phase: 'processing' });

    // Random bytes do not shrink: no copy, and the bar still reaches 100.
    const file = await randomFile(2 * 1024 * 1024 + 5);
    const random = track(uploader.upload(file.path));
    const done = await random.handle.done;
    expect(done.result).toMatchObject({ compress: { skipped: 'incompressible', bytes: file.size } });
    await expect(readFile(join(outputsOf(hub.dataDir, await random.id), `${await random.id}.gz`))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(random.progress.at(-1)).toMatchObject({ percent: 100 });
  });
});
