// Client side of the ws baseline (runs inside the bench process): streams 1 MiB binary
// frames with a fixed window of unacknowledged frames, one ack expected per frame.
import { WebSocket } from 'ws';
import type { Transfer } from '../lib/result.js';
import { payloadBlock } from '../lib/payload.js';
import { MiB } from '../lib/sizes.js';

export interface WsUploadOptions {
  url: string;
  totalMiB: number;
  frameMiB?: number;
  /** Frames sent but not yet acknowledged; 8 x 1 MiB = up to 8 MiB in flight. */
  framesInFlight?: number;
}

const uploadDefaults = { frameMiB: 1, framesInFlight: 8 };

export interface ConcurrentWsUploadOptions {
  url: string;
  connections?: number;
  perConnectionMiB?: number;
  frameMiB?: number;
  framesInFlight?: number;
}

const concurrentDefaults = { connections: 100, perConnectionMiB: 4, frameMiB: 1, framesInFlight: 8 };

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends `frameCount` frames over an open socket and resolves when every one is acked. */
function pumpFrames(socket: WebSocket, frameCount: number, frameBytes: number, window: number): Promise<void> {
  const frame = payloadBlock(frameBytes);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let acked = 0;
    const sendOne = (): void => {
      sent += 1;
      socket.send(frame, { binary: true }, (error) => {
        if (error !== undefined && error !== null) reject(error);
      });
    };
    socket.on('message', () => {
      acked += 1;
      if (acked === frameCount) resolve();
      else if (sent < frameCount) sendOne();
    });
    socket.on('error', reject);
    socket.once('close', (code) => {
      if (acked < frameCount) reject(new Error(`socket closed (${code}) after ${acked}/${frameCount} acks`));
    });
    while (sent < Math.min(window, frameCount)) sendOne();
  });
}

function frameCountFor(totalMiB: number, frameMiB: number): number {
  const count = totalMiB / frameMiB;
  if (!Number.isInteger(count) || count < 1) throw new Error(`${totalMiB} MiB is not a whole number of ${frameMiB} MiB frames`);
  return count;
}

/**
 * One connection uploading `totalMiB`. `startMeasuring` (see measureServer) is awaited after
 * the handshake so only the transfer is timed and charged to the server.
 */
export async function uploadOverOneSocket(
  options: WsUploadOptions,
  startMeasuring: () => Promise<void> = async () => {},
): Promise<Transfer> {
  const opts = { ...uploadDefaults, ...options };
  const frameCount = frameCountFor(opts.totalMiB, opts.frameMiB);
  const socket = await connect(opts.url);
  try {
    await startMeasuring();
    const started = performance.now();
    await pumpFrames(socket, frameCount, opts.frameMiB * MiB, opts.framesInFlight);
    return { payloadMiB: opts.totalMiB, seconds: (performance.now() - started) / 1000 };
  } finally {
    socket.terminate();
  }
}

/** Many connections uploading at once; throughput is the total over the slowest finish. */
export async function uploadOverManySockets(
  options: ConcurrentWsUploadOptions,
  startMeasuring: () => Promise<void> = async () => {},
): Promise<Transfer> {
  const opts = { ...concurrentDefaults, ...options };
  const frameCount = frameCountFor(opts.perConnectionMiB, opts.frameMiB);
  const connecting = Array.from({ length: opts.connections }, () => connect(opts.url));
  const settled = await Promise.allSettled(connecting);
  const sockets = settled.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  try {
    const failure = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failure !== undefined) throw new Error(`${opts.connections - sockets.length} connections failed`, { cause: failure.reason });
    await startMeasuring();
    const started = performance.now();
    await Promise.all(sockets.map((socket) => pumpFrames(socket, frameCount, opts.frameMiB * MiB, opts.framesInFlight)));
    return {
      payloadMiB: opts.connections * opts.perConnectionMiB,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const socket of sockets) socket.terminate();
  }
}
