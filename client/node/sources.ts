/** Node-only sources: a file path (read by offset) and a readable stream (buffered back to the committed offset). */
import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { UploadHubError } from '../../shared/errors.js';
import type { ChunkSource } from '../sources.js';

export async function fileSource(path: string): Promise<ChunkSource> {
  const info = await stat(path).catch((error: Error) => {
    throw new UploadHubError('ERR_SOURCE', `Cannot read ${path}: ${error.message}`, { cause: error });
  });
  if (!info.isFile()) throw new UploadHubError('ERR_SOURCE', `${path} is not a file`);
  const handle = await open(path, 'r');
  return {
    size: info.size,
    name: basename(path),
    lastModified: Math.trunc(info.mtimeMs),
    async read(offset, length) {
      const buffer = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) throw new UploadHubError('ERR_SOURCE', `${path} shrank while uploading`);
        filled += bytesRead;
      }
      return buffer;
    },
    close: () => handle.close(),
  };
}

/**
 * A stream cannot seek, so the bytes between the committed offset and what was read are kept
 * (at most one window) for a rewind after a reconnect.
 */
export function streamSource(stream: Readable, size: number): ChunkSource {
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let kept: Buffer[] = [];
  let keptFrom = 0; // offset of kept[0]
  let keptBytes = 0;
  /** The highest offset released: nothing below it is read again. */
  let skipTo = 0;
  return {
    size,
    async read(offset, length) {
      if (offset < keptFrom) throw new UploadHubError('ERR_SOURCE', `Cannot rewind a stream to ${offset}; bytes from ${keptFrom} are kept`);
      while (keptFrom + keptBytes < offset + length) {
        const next = await iterator.next();
        if (next.done) throw new UploadHubError('ERR_SOURCE', `Stream ended at ${keptFrom + keptBytes} bytes; ${size} were declared`);
        let piece = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        // Bytes below a released offset the stream had not reached yet (a resume that starts
        // past them) are read through and dropped, so memory stays at one window.
        if (keptBytes === 0 && skipTo > keptFrom) {
          const skip = Math.min(skipTo - keptFrom, piece.byteLength);
          keptFrom += skip;
          piece = piece.subarray(skip);
          if (piece.byteLength === 0) continue;
        }
        kept.push(piece);
        keptBytes += piece.byteLength;
      }
      const all = kept.length === 1 ? (kept[0] as Buffer) : Buffer.concat(kept, keptBytes);
      kept = [all];
      return all.subarray(offset - keptFrom, offset - keptFrom + length);
    },
    release(offset) {
      skipTo = Math.max(skipTo, offset);
      if (offset <= keptFrom || kept.length === 0) return;
      const all = kept.length === 1 ? (kept[0] as Buffer) : Buffer.concat(kept, keptBytes);
      const drop = Math.min(offset - keptFrom, keptBytes);
      // Copy the remainder so the released bytes can be collected.
      kept = drop === keptBytes ? [] : [Buffer.from(all.subarray(drop))];
      keptFrom += drop;
      keptBytes -= drop;
    },
    async close() {
      stream.destroy();
    },
  };
}

export async function nodeSource(source: unknown, size: number | undefined): Promise<ChunkSource | undefined> {
  if (typeof source === 'string') return fileSource(source);
  if (source instanceof Readable) {
    if (size === undefined) throw new UploadHubError('ERR_SOURCE', 'A stream source needs options.size');
    return streamSource(source, size);
  }
  return undefined;
}
