/**
 * Where the bytes of an upload come from. The client reads chunks by offset, so a rewind after a
 * reconnect re-reads from the committed offset. Browser-safe; Node-only sources (paths,
 * streams) live in node/sources.ts.
 */
import { UploadHubError } from '../shared/errors.js';

export interface ChunkSource {
  readonly size: number;
  /** A name to create the upload with when the caller gives none. */
  readonly name?: string;
  readonly type?: string;
  /** When the file was last changed, in ms since the epoch, where known (File.lastModified, a file's mtime): part of its fingerprint. */
  readonly lastModified?: number;
  /** Bytes [offset, offset + length). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Bytes below `offset` are committed (or, on a resume, already on the hub) and will not be read again. */
  release?(offset: number): void;
  close?(): Promise<void>;
}

export function bytesSource(bytes: Uint8Array): ChunkSource {
  return {
    size: bytes.byteLength,
    read: async (offset, length) => bytes.subarray(offset, offset + length),
  };
}

export function blobSource(blob: Blob): ChunkSource {
  const file = blob as Blob & { name?: unknown; lastModified?: unknown };
  return {
    size: blob.size,
    ...(typeof file.name === 'string' ? { name: file.name } : {}),
    ...(typeof file.lastModified === 'number' ? { lastModified: file.lastModified } : {}),
    ...(blob.type ? { type: blob.type } : {}),
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  };
}

/** What every platform accepts as a source. */
export type PortableSource = Blob | Uint8Array | ArrayBuffer | ChunkSource;

export function isChunkSource(value: unknown): value is ChunkSource {
  return typeof value === 'object' && value !== null && typeof (value as ChunkSource).read === 'function' && typeof (value as ChunkSource).size === 'number';
}

export function portableSource(source: unknown): ChunkSource | undefined {
  if (isChunkSource(source)) return source;
  if (source instanceof Uint8Array) return bytesSource(source);
  if (source instanceof ArrayBuffer) return bytesSource(new Uint8Array(source));
  if (typeof Blob !== 'undefined' && source instanceof Blob) return blobSource(source);
  return undefined;
}

export function unsupportedSource(): never {
  throw new UploadHubError('ERR_SOURCE', 'Unsupported upload source: give a File/Blob, Uint8Array/Buffer, ArrayBuffer, or in Node a file path or a readable stream with options.size');
}
