// Client side of the load baseline (runs inside the bench process, apart from the server):
// many bare `ws` connections at once against baselines/wsServer.ts, each sending the bytes of
// one upload in fixed frames with a fixed number in flight, timing every frame from send to its
// ack. The server acks each frame in order once it is written, so acks pair with sends FIFO.
import { WebSocket } from 'ws';
import { LOAD_FIGURES, LoadTally, inBatches } from '../lib/loadTally.js';
import { payloadBlock } from '../lib/payload.js';
import { MiB } from '../lib/sizes.js';
import type { Transfer } from '../lib/result.js';

export interface WsLoadOptions {
  url: string;
  connections: number;
  bytesPerConnection: number;
  frameBytes: number;
  /** Frames sent and not yet acked, per connection. */
  framesInFlight: number;
  /** Connections opened at once while setting up. */
  connectBatch: number;
  /** From the first byte: the run stops by itself then and reports what it has. */
  deadlineMs: number;
  /** How long one connection may take to open. */
  connectTimeoutMs: number;
}

function connect(url: string, tally: LoadTally, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      reject(new Error(`not open within ${timeoutMs} ms`));
      socket.terminate();
    }, timeoutMs);
    const failed = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    socket.once('error', failed);
    socket.once('open', () => {
      clearTimeout(timer);
      socket.off('error', failed);
      // From here on an error is counted, never thrown: the close that follows ends the pump.
      socket.on('error', (error) => tally.error(`socket: ${error.message}`));
      resolve(socket);
    });
  });
}

/** One connection's upload: resolves with true once every frame is acked, false if stopped or broken. */
function pump(socket: WebSocket, options: WsLoadOptions, tally: LoadTally, stopping: () => boolean): Promise<boolean> {
  const frameCount = Math.ceil(options.bytesPerConnection / options.frameBytes);
  const lastFrameBytes = options.bytesPerConnection - (frameCount - 1) * options.frameBytes;
  const block = payloadBlock(options.frameBytes);
  return new Promise((resolve) => {
    const sentAt: number[] = [];
    let acked = 0;
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      resolve(ok);
    };
    const frameBytes = (index: number): number => (index === frameCount - 1 ? lastFrameBytes : options.frameBytes);
    const sendOne = (): void => {
      const index = sentAt.length;
      sentAt.push(performance.now());
      socket.send(block.subarray(0, frameBytes(index)), { binary: true }, (error) => {
        if (error) tally.error(`send: ${error.message}`);
      });
    };
    socket.on('message', () => {
      const index = acked++;
      tally.ack(performance.now() - (sentAt[index] as number), frameBytes(index));
      if (acked === frameCount) finish(true);
      else if (sentAt.length < frameCount) sendOne();
    });
    if (socket.readyState !== WebSocket.OPEN) {
      tally.error('closed before sending');
      finish(false);
      return;
    }
    socket.once('close', (code) => {
      if (acked < frameCount && !stopping()) tally.error(`closed ${code}`);
      finish(false);
    });
    while (sentAt.length < Math.min(options.framesInFlight, frameCount)) sendOne();
  });
}

/**
 * All connections at once; throughput is the bytes of the connections that finished over the
 * time to the last one. `startMeasuring` is awaited once every connection is open.
 */
export async function uploadUnderLoad(options: WsLoadOptions, startMeasuring: () => Promise<void>): Promise<Transfer> {
  const tally = new LoadTally();
  const settled = await inBatches(Array.from({ length: options.connections }), options.connectBatch, () =>
    connect(options.url, tally, options.connectTimeoutMs),
  );
  const sockets: WebSocket[] = [];
  for (const outcome of settled) {
    if (outcome.status === 'fulfilled') sockets.push(outcome.value);
    else tally.error(`connect: ${(outcome.reason as Error).message}`);
  }
  let stopped = false;
  try {
    await startMeasuring();
    tally.startCpu();
    const started = performance.now();
    let finishedAt = started;
    let completed = 0;
    const deadline = setTimeout(() => {
      stopped = true;
      for (const socket of sockets) socket.terminate();
    }, options.deadlineMs);
    await Promise.all(
      sockets.map((socket) =>
        pump(socket, options, tally, () => stopped).then((ok) => {
          if (!ok) return;
          completed++;
          finishedAt = performance.now();
        }),
      ),
    );
    clearTimeout(deadline);
    tally.stopCpu();
    const seconds = ((stopped ? performance.now() : finishedAt) - started) / 1000;
    const unfinished = sockets.length - completed;
    process.stderr.write(
      `  load baseline: ${completed}/${options.connections} connections sent ${options.bytesPerConnection / MiB} MiB in ${seconds.toFixed(2)} s` +
        `${stopped ? ' (deadline hit)' : ''}; ${tally.chunks} frames of ${tally.meanChunkKiB.toFixed(0)} KiB; errors: ${tally.describeErrors()}\n`,
    );
    return {
      payloadMiB: (completed * options.bytesPerConnection) / MiB,
      seconds,
      extra: tally.extra({ [LOAD_FIGURES.unfinished]: stopped ? unfinished : 0 }),
    };
  } finally {
    for (const socket of sockets) socket.terminate();
  }
}
