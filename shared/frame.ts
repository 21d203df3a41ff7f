/**
 * The binary chunk frame of the raw WebSocket transport: a small header and the file bytes,
 * no base64 and no JSON around them.
 *
 * ```
 * byte 0        kind: 0x01 (chunk)
 * byte 1        L: length of the upload id in bytes (8..64, ASCII)
 * bytes 2..2+L  the upload id
 * 8 bytes       the byte offset the payload starts at, unsigned big-endian (< 2^53)
 * the rest      the payload: file bytes [offset, offset + payload length)
 * ```
 *
 * Browser-safe: DataView and Uint8Array only.
 */
import { UploadHubError } from './errors.js';
import { UPLOAD_ID_PATTERN } from './messages.js';

export const FRAME_KIND_CHUNK = 0x01;
export const MAX_UPLOAD_ID_LENGTH = 64;
/** The largest header a chunk frame can have; transports add it to maxChunkSize for their payload limits. */
export const MAX_FRAME_HEADER_BYTES = 2 + MAX_UPLOAD_ID_LENGTH + 8;
/**
 * The smallest chunk a client sends while its window allows a bigger one: chunks shrink with
 * the window (two fit in it) down to this, and the hub's windows hold at least two of them
 * unless its limits (uploadWindow, a share of maxBufferedBytes) are smaller.
 */
export const MIN_CHUNK_BYTES = 16 * 1024;

export interface ChunkFrame {
  uploadId: string;
  offset: number;
  /** A view into the frame, not a copy. */
  data: Uint8Array;
}

const TWO_TO_32 = 2 ** 32;

export function chunkHeaderLength(uploadId: string): number {
  return 2 + uploadId.length + 8;
}

/** Writes the header into `target` at 0 and returns its length; the caller puts the payload after it. */
export function writeChunkHeader(target: Uint8Array, uploadId: string, offset: number): number {
  if (!UPLOAD_ID_PATTERN.test(uploadId)) throw new UploadHubError('ERR_BAD_FRAME', 'Upload id is not a valid id');
  if (!Number.isSafeInteger(offset) || offset < 0) throw new UploadHubError('ERR_BAD_FRAME', 'Offset must be a safe non-negative integer');
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  target[0] = FRAME_KIND_CHUNK;
  target[1] = uploadId.length;
  for (let i = 0; i < uploadId.length; i++) target[2 + i] = uploadId.charCodeAt(i);
  const at = 2 + uploadId.length;
  view.setUint32(at, Math.floor(offset / TWO_TO_32));
  view.setUint32(at + 4, offset % TWO_TO_32);
  return at + 8;
}

/** Header and payload in one new buffer. */
export function encodeChunkFrame(uploadId: string, offset: number, data: Uint8Array): Uint8Array {
  const frame = new Uint8Array(chunkHeaderLength(uploadId) + data.byteLength);
  const headerLength = writeChunkHeader(frame, uploadId, offset);
  frame.set(data, headerLength);
  return frame;
}

/** Parses a frame without copying its payload. Throws ERR_BAD_FRAME on anything malformed. */
export function decodeChunkFrame(frame: Uint8Array): ChunkFrame {
  if (frame.byteLength < 2 || frame[0] !== FRAME_KIND_CHUNK) {
    throw new UploadHubError('ERR_BAD_FRAME', 'Not a chunk frame (kind byte must be 0x01)');
  }
  const idLength = frame[1] as number;
  const headerLength = 2 + idLength + 8;
  if (idLength === 0 || idLength > MAX_UPLOAD_ID_LENGTH || frame.byteLength < headerLength) {
    throw new UploadHubError('ERR_BAD_FRAME', 'Chunk frame header is truncated or its id length is invalid');
  }
  let uploadId = '';
  for (let i = 0; i < idLength; i++) uploadId += String.fromCharCode(frame[2 + i] as number);
  if (!UPLOAD_ID_PATTERN.test(uploadId)) throw new UploadHubError('ERR_BAD_FRAME', 'Chunk frame carries an invalid upload id');
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const high = view.getUint32(2 + idLength);
  const low = view.getUint32(2 + idLength + 4);
  const offset = high * TWO_TO_32 + low;
  if (!Number.isSafeInteger(offset)) throw new UploadHubError('ERR_BAD_FRAME', 'Chunk offset exceeds 2^53 - 1');
  return { uploadId, offset, data: frame.subarray(headerLength) };
}
