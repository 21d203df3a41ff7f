/**
 * Helpers for the HTTP surface tests: readers for SSE and NDJSON streams (curl, fetch, raw
 * http, EventSource) that collect frames and let a test wait on a frame, never on a timer.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { EventSource } from 'eventsource';
import type { Stage, StageUpload } from '../../server/processing/Stage.js';
import type { HttpTransport } from '../../server/transports/http.js';
import type { HubServer } from '../../server/app.js';
import { hubEvent } from '../../shared/messages.js';
import { onCleanup } from '../helpers.js';

/** Every hub event type: each is a named SSE event. */
export const HUB_EVENT_TYPES: readonly string[] = hubEvent.options.map((option) => option.shape.type.value);

export interface SseFrame {
  event: string;
  id: string | undefined;
  data: string;
  /** Set for a comment line (`: heartbeat`), which carries nothing else. */
  comment?: string;
}

/** Parsed JSON of a frame's data (a hub event or a snapshot). */
export type FrameData = { type: string; id: number; uploadId?: string; [key: string]: unknown };

/** Frames collected from a stream, in order; `next` waits for the first one a predicate accepts. */
export class FrameLog<T> extends EventEmitter {
  readonly frames: T[] = [];
  ended = false;
  private readonly ending: Promise<void>;
  private endNow!: () => void;

  constructor() {
    super();
    this.ending = new Promise((resolve) => (this.endNow = resolve));
  }

  push(frame: T): void {
    this.frames.push(frame);
    this.emit('frame', frame);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.endNow();
    this.emit('end');
  }

  /** The first frame (from index `from`) that passes `test`, now or when it arrives. */
  next(test: (frame: T) => boolean, from = 0): Promise<T> {
    const found = this.frames.slice(from).find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onFrame = (frame: T): void => {
        if (!test(frame)) return;
        this.off('frame', onFrame);
        this.off('end', onEnd);
        resolve(frame);
      };
      const onEnd = (): void => {
        this.off('frame', onFrame);
        reject(new Error(`stream ended without the awaited frame; got ${this.frames.length} frames`));
      };
      this.on('frame', onFrame);
      this.once('end', onEnd);
    });
  }

  whenEnded(): Promise<void> {
    return this.ending;
  }
}

/** Incremental text/event-stream parser (one frame per blank line). */
export class SseParser {
  private buffer = '';
  constructor(private readonly onFrame: (frame: SseFrame) => void) {}

  write(text: string): void {
    this.buffer += text;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const frame: SseFrame = { event: 'message', id: undefined, data: '' };
      const data: string[] = [];
      let fields = 0;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          frame.comment = line.slice(1).trim();
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        fields++;
        if (field === 'event') frame.event = value;
        else if (field === 'id') frame.id = value;
        else if (field === 'data') data.push(value);
        else if (field === 'retry') frame.event = 'retry:' + value;
      }
      frame.data = data.join('\n');
      if (fields > 0 || frame.comment !== undefined) this.onFrame(frame);
    }
  }
}

export function parseData(frame: SseFrame): FrameData {
  return JSON.parse(frame.data) as FrameData;
}

/** `curl -N` on an SSE URL; killed after the test. */
export function curlSse(url: string, headers: Record<string, string> = {}): { log: FrameLog<SseFrame>; exit: Promise<number | null> } {
  const args = ['-N', '-s', '-S'];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  args.push(url);
  const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = new FrameLog<SseFrame>();
  const parser = new SseParser((frame) => log.push(frame));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text: string) => parser.write(text));
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => {
    log.end();
    resolve(code);
  }));
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill();
      await exit;
    }
  });
  return { log, exit };
}

/** SSE frames off a node:http response. */
export function readSse(res: IncomingMessage, log = new FrameLog<SseFrame>()): FrameLog<SseFrame> {
  const parser = new SseParser((frame) => log.push(frame));
  res.setEncoding('utf8');
  res.on('data', (text: string) => parser.write(text));
  res.once('close', () => log.end());
  return log;
}

/** NDJSON objects off a fetch body, through its streamed reader. */
export function readNdjson(response: Response): FrameLog<FrameData> {
  const log = new FrameLog<FrameData>();
  const body = response.body;
  if (!body) throw new Error('no body');
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  onCleanup(() => reader.cancel().catch(() => undefined));
  void (async () => {
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim() !== '') log.push(JSON.parse(line) as FrameData);
        }
      }
    } catch {
      // cancelled
    } finally {
      log.end();
    }
  })();
  return log;
}

export interface EventSourceFrame {
  event: string;
  lastEventId: string;
  data: FrameData;
}

/** An `eventsource` EventSource listening to every named event; closed after the test. */
export function openEventSource(url: string, init?: ConstructorParameters<typeof EventSource>[1]): { source: EventSource; log: FrameLog<EventSourceFrame>; errors: FrameLog<{ code: number | undefined; message: string | undefined }> } {
  const source = new EventSource(url, init);
  const log = new FrameLog<EventSourceFrame>();
  const errors = new FrameLog<{ code: number | undefined; message: string | undefined }>();
  for (const type of ['snapshot', ...HUB_EVENT_TYPES]) {
    source.addEventListener(type, (event) => log.push({ event: type, lastEventId: event.lastEventId, data: JSON.parse(event.data as string) as FrameData }));
  }
  source.addEventListener('error', (event) => errors.push({ code: event.code, message: event.message }));
  onCleanup(() => source.close());
  return { source, log, errors };
}

export function httpTransportOf(hub: HubServer): HttpTransport {
  const transport = hub.transports.find((candidate) => candidate.name === 'http');
  if (!transport) throw new Error('the http transport is not mounted');
  return transport as HttpTransport;
}

/** A stage that holds processing until the test releases it. */
export function gateStage(name = 'gate'): { stage: Stage; started: Promise<StageUpload>; release: (result?: string) => void } {
  let started!: (upload: StageUpload) => void;
  let release!: (result?: string) => void;
  const startedPromise = new Promise<StageUpload>((resolve) => (started = resolve));
  const released = new Promise<string | undefined>((resolve) => (release = resolve));
  return {
    stage: {
      name,
      async run(ctx) {
        started(ctx.upload);
        const aborted = new Promise<never>((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
        const result = await Promise.race([released, aborted]);
        return { released: result ?? 'yes' };
      },
    },
    started: startedPromise,
    release: (result?: string) => release(result),
  };
}
