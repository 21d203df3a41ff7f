/**
 * Request bodies that arrive too slowly end, so a client trickling bytes cannot hold a socket
 * (and, for an upload, its partial data) forever:
 *
 * - a JSON body must be in within `requestTimeoutMs` (Node's own `requestTimeout` is off, since
 *   it would also cut long uploads);
 * - an upload body must keep up `minUploadRate` bytes per second averaged over
 *   `minUploadRateWindowMs`, counted only while the hub is reading it: time the hub holds the
 *   body back (backpressure from a full window) is never held against the client.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { UploadHubError } from '../../../shared/errors.js';
import { sendError } from './respond.js';

/**
 * Answers 408 ERR_REQUEST_TIMEOUT (and closes the connection, the body being unread) when the
 * request body is not complete `timeoutMs` after the request started. 0 turns it off.
 */
export function requestDeadline(timeoutMs: number): RequestHandler {
  return (req, res, next) => {
    if (timeoutMs > 0 && !req.complete && hasBody(req)) {
      const timer = setTimeout(() => {
        if (req.complete || req.destroyed) return;
        if (res.headersSent) {
          req.socket.destroy();
          return;
        }
        res.setHeader('Connection', 'close');
        sendError(res, new UploadHubError('ERR_REQUEST_TIMEOUT', `The request body did not arrive within requestTimeoutMs (${timeoutMs} ms)`));
      }, timeoutMs);
      timer.unref();
      const clear = (): void => clearTimeout(timer);
      req.once('end', clear);
      req.once('close', clear);
    }
    next();
  };
}

/** Whether a body follows the headers: HTTP/1.1 has none without Content-Length or Transfer-Encoding. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Slots the window is measured in: the rate is checked each time one fills. */
const SLOTS = 10;

/**
 * Calls `onTooSlow` once when the body of `req` arrives under `minBytesPerSecond`, averaged
 * over the last `windowMs` during which the hub wanted bytes. A window in which the hub paused
 * the body is not judged. `stop()` when the body is in.
 */
export class UploadRateFloor {
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  /** Bytes per slot of the current window, and whether the hub held the body in that slot. */
  private readonly slots: Array<{ bytes: number; held: boolean }> = [];
  private lastBytesRead: number;
  private heldNow = false;
  private stopped = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly minBytesPerSecond: number,
    private readonly windowMs: number,
    private readonly onTooSlow: (bytesPerSecond: number) => void,
  ) {
    this.lastBytesRead = req.socket.bytesRead;
    if (minBytesPerSecond <= 0 || windowMs <= 0) return;
    req.on('pause', this.onPause);
    this.timer = setInterval(this.tick, Math.max(1, windowMs / SLOTS));
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.req.off('pause', this.onPause);
  }

  private readonly onPause = (): void => {
    this.heldNow = true;
  };

  private readonly tick = (): void => {
    // All bytes are in: what is left (storing, finalizing) is the hub's pace, not the client's.
    if (this.req.complete) {
      this.stop();
      return;
    }
    const bytesRead = this.req.socket.bytesRead;
    // Paused now, or at any moment of this slot: the hub, not the client, set the pace.
    const held = this.heldNow || this.req.readableFlowing === false;
    this.heldNow = false;
    this.slots.push({ bytes: bytesRead - this.lastBytesRead, held });
    this.lastBytesRead = bytesRead;
    if (this.slots.length > SLOTS) this.slots.shift();
    if (this.slots.length < SLOTS || this.slots.some((slot) => slot.held)) return;
    let bytes = 0;
    for (const slot of this.slots) bytes += slot.bytes;
    const rate = (bytes * 1000) / this.windowMs;
    if (rate >= this.minBytesPerSecond) return;
    this.stop();
    this.onTooSlow(rate);
  };
}
