// SSE watchers in a process of their own, for the load case: parsing hundreds of thousands of
// events must not sit in the event loop of the upload clients whose chunk acks are being timed.
// The parent (WatcherProcess) talks to this file, forked, over the IPC channel:
//   open {url, count, batch, timeoutMs} -> opened {failures}
//   seen {ids}                          -> seen, once every watcher has a terminal event of every id
//   report {ids}                        -> report {frames, lost, short, reconnects, errors}
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, get, type ClientRequest } from 'node:http';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TERMINAL_STATES } from '../../shared/messages.js';
import { inBatches, within } from './loadTally.js';

const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATES);

type Errors = Map<string, number>;

function countError(errors: Errors, kind: string): void {
  errors.set(kind, (errors.get(kind) ?? 0) + 1);
}

/**
 * One SSE watcher of every upload, with a deliberately cheap parser (the frame's type and, for
 * a terminal event, its upload id), reconnecting with Last-Event-ID like EventSource when the
 * hub drops it (a watcher too slow to read is cut off and replays).
 */
class SseWatcher {
  /** Frames delivered, snapshots left out. */
  frames = 0;
  reconnects = 0;
  private readonly terminal = new Set<string>();
  private carry = '';
  /** The last event frame, kept whole: its `id:` is read only when a reconnect needs it. */
  private lastFrame = '';
  private retryMs = 2_000;
  private request: ClientRequest | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private expected: ReadonlySet<string> | undefined;
  private missing = 0;
  private onAll: (() => void) | undefined;
  private onSnapshot: (() => void) | undefined;

  constructor(private readonly url: string, private readonly agent: Agent, private readonly errors: Errors) {}

  /** Resolves at the first snapshot: from then on every event reaches this watcher. */
  open(timeoutMs: number): Promise<void> {
    const opened = new Promise<void>((resolve, reject) => {
      this.onSnapshot = resolve;
      this.connect(reject);
    });
    return within(opened, timeoutMs, 'watcher open');
  }

  /** Resolves once a terminal event arrived for every id in `ids`. */
  until(ids: ReadonlySet<string>): Promise<void> {
    this.expected = ids;
    this.missing = this.lost(ids);
    return new Promise((resolve) => {
      if (this.missing === 0) resolve();
      else this.onAll = resolve;
    });
  }

  lost(ids: ReadonlySet<string>): number {
    let lost = 0;
    for (const id of ids) if (!this.terminal.has(id)) lost++;
    return lost;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.request?.destroy();
  }

  /** `failed` is the first open's: its failure is the caller's to count; later ones retry. */
  private connect(failed?: (error: Error) => void): void {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    const lastId = /\nid: (\d+)/.exec(this.lastFrame)?.[1];
    if (lastId !== undefined) headers['last-event-id'] = lastId;
    let over = false;
    let responded = false;
    const dropped = (): void => {
      if (over) return;
      over = true;
      if (!this.stopped) this.reconnect();
    };
    const refused = (why: string): void => {
      if (over || this.stopped) return;
      over = true;
      if (failed) return failed(new Error(why));
      countError(this.errors, `watcher: ${why}`);
      this.reconnect();
    };
    const request = get(this.url, { agent: this.agent, headers }, (res) => {
      responded = true;
      if (res.statusCode !== 200) {
        res.resume();
        return refused(`HTTP ${res.statusCode}`);
      }
      res.on('data', (chunk: Buffer) => this.read(chunk.toString('latin1')));
      // The 'close' that follows an error reconnects.
      res.on('error', () => undefined);
      res.on('close', dropped);
    });
    request.on('error', (error) => {
      if (responded) dropped();
      else refused(error.message);
    });
    this.request = request;
  }

  private reconnect(): void {
    this.reconnects++;
    this.carry = '';
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
  }

  private read(text: string): void {
    const frames = (this.carry + text).split('\n\n');
    this.carry = frames.pop() ?? '';
    for (const frame of frames) {
      if (frame.startsWith('event: ')) {
        this.lastFrame = frame;
        const type = frame.slice(7, frame.indexOf('\n'));
        if (type === 'snapshot') {
          this.onSnapshot?.();
          this.onSnapshot = undefined;
          continue;
        }
        this.frames++;
        if (TERMINAL.has(type)) {
          const at = frame.indexOf('"uploadId":"') + 12;
          if (at >= 12) this.sawTerminal(frame.slice(at, frame.indexOf('"', at)));
        }
      } else if (frame.startsWith('retry: ')) {
        this.retryMs = Number(frame.slice(7)) || this.retryMs;
      }
    }
  }

  private sawTerminal(id: string): void {
    if (this.terminal.has(id)) return;
    this.terminal.add(id);
    if (!this.expected?.has(id)) return;
    this.missing--;
    if (this.missing === 0) {
      this.onAll?.();
      this.onAll = undefined;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The protocol between the two processes

type Request =
  | { seq: number; type: 'open'; url: string; count: number; batch: number; timeoutMs: number }
  | { seq: number; type: 'seen'; ids: string[] }
  | { seq: number; type: 'report'; ids: string[] };

export interface WatcherReport {
  /** Events delivered to all watchers together, snapshots left out. */
  frames: number;
  /** Per watcher, the ids whose terminal event it never saw, summed. */
  lost: number;
  /** Watchers that missed at least one. */
  short: number;
  reconnects: number;
  errors: Record<string, number>;
}

type WithoutSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;

type Reply = { seq: number; type: 'opened'; failures: string[] } | { seq: number; type: 'seen' } | ({ seq: number; type: 'report' } & WatcherReport);

/** The child's side: runs watchers as the parent asks. */
function serveParent(send: (reply: Reply) => void): void {
  const errors: Errors = new Map();
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  let watchers: SseWatcher[] = [];
  const stop = (): void => {
    for (const watcher of watchers) watcher.stop();
    agent.destroy();
  };
  // The parent gone (finished, or killed) means this process has nothing left to do.
  process.on('disconnect', () => {
    stop();
    process.exit(0);
  });
  process.on('message', (message: Request) => {
    switch (message.type) {
      case 'open': {
        watchers = Array.from({ length: message.count }, () => new SseWatcher(message.url, agent, errors));
        void inBatches(watchers, message.batch, (watcher) => watcher.open(message.timeoutMs)).then((settled) =>
          send({
            seq: message.seq,
            type: 'opened',
            failures: settled.flatMap((outcome) => (outcome.status === 'rejected' ? [(outcome.reason as Error).message] : [])),
          }),
        );
        return;
      }
      case 'seen': {
        const ids = new Set(message.ids);
        void Promise.all(watchers.map((watcher) => watcher.until(ids))).then(() => send({ seq: message.seq, type: 'seen' }));
        return;
      }
      case 'report': {
        const ids = new Set(message.ids);
        const lost = watchers.map((watcher) => watcher.lost(ids));
        send({
          seq: message.seq,
          type: 'report',
          frames: watchers.reduce((sum, watcher) => sum + watcher.frames, 0),
          lost: lost.reduce((sum, count) => sum + count, 0),
          short: lost.filter((count) => count > 0).length,
          reconnects: watchers.reduce((sum, watcher) => sum + watcher.reconnects, 0),
          errors: Object.fromEntries(errors),
        });
        stop();
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The parent's side

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** A forked process of SSE watchers; stop() always, it holds sockets. */
export class WatcherProcess {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (reply: Reply) => {
      this.waiting.get(reply.seq)?.resolve(reply);
      this.waiting.delete(reply.seq);
    });
    child.once('exit', (code, signal) => {
      for (const waiting of this.waiting.values()) waiting.reject(new Error(`watcher process exited (code ${code}, signal ${signal})`));
      this.waiting.clear();
    });
  }

  static start(): WatcherProcess {
    const child = fork(fileURLToPath(import.meta.url), [], {
      cwd: repoRoot,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    // A failed spawn is reported by 'exit' to whoever waits.
    child.on('error', () => undefined);
    return new WatcherProcess(child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Opens `count` watchers of `url`; resolves with the failures once each saw its snapshot or failed. */
  async open(url: string, count: number, batch: number, timeoutMs: number): Promise<string[]> {
    // Every open has its own timeout; this one covers a child that never answers at all.
    const reply = await within(this.ask({ type: 'open', url, count, batch, timeoutMs }), timeoutMs * (Math.ceil(count / batch) + 1), 'watcher process');
    return reply.type === 'opened' ? reply.failures : [];
  }

  /** Resolves once every watcher saw a terminal event of every id; the caller bounds the wait. */
  async seen(ids: readonly string[]): Promise<void> {
    await this.ask({ type: 'seen', ids: [...ids] });
  }

  async report(ids: readonly string[], timeoutMs: number): Promise<WatcherReport> {
    const reply = await within(this.ask({ type: 'report', ids: [...ids] }), timeoutMs, 'watcher report');
    if (reply.type !== 'report') throw new Error(`watcher process answered ${reply.type} to report`);
    const { seq: _seq, type: _type, ...report } = reply;
    return report;
  }

  /** Ends the process (SIGKILL after 5 s) and resolves once it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const escalation = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(escalation);
  }

  private ask(request: WithoutSeq<Request>): Promise<Reply> {
    const seq = ++this.seq;
    return new Promise<Reply>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.child.send({ ...request, seq }, (error) => {
        if (error) {
          this.waiting.delete(seq);
          reject(error);
        }
      });
    });
  }
}

if (process.send !== undefined && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const send = process.send.bind(process);
  serveParent((reply) => send(reply));
}
