import { describe, expect, it } from 'vitest';
import { decodeChunkFrame, encodeChunkFrame, MAX_FRAME_HEADER_BYTES } from '../../shared/frame.js';
import { UploadHubError } from '../../shared/errors.js';

const id = 'AbCdEfGhIjKlMnOpQrStUv';

describe('chunk frame', () => {
  it('round-trips id, offset and payload without copying the payload on decode', () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const frame = encodeChunkFrame(id, 2 ** 40 + 7, payload);
    expect(frame.byteLength).toBe(2 + id.length + 8 + payload.byteLength);
    const decoded = decodeChunkFrame(frame);
    expect(decoded.uploadId).toBe(id);
    expect(decoded.offset).toBe(2 ** 40 + 7);
    expect([...decoded.data]).toEqual([1, 2, 3, 4, 5]);
    expect(decoded.data.buffer).toBe(frame.buffer);
  });

  it('handles the largest safe offset and an empty payload', () => {
    const decoded = decodeChunkFrame(encodeChunkFrame(id, Number.MAX_SAFE_INTEGER, new Uint8Array(0)));
    expect(decoded.offset).toBe(Number.MAX_SAFE_INTEGER);
    expect(decoded.data.byteLength).toBe(0);
  });

  it.each([
    ['empty', new Uint8Array(0)],
    ['wrong kind', new Uint8Array([2, 22, ...new Array(30).fill(65)])],
    ['truncated header', new Uint8Array([1, 22, 65, 65])],
    ['zero id length', new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
    ['id with a path separator', encodeChunkFrame(id, 0, new Uint8Array(1)).map((byte, i) => (i === 3 ? 47 : byte))],
  ])('rejects a frame that is %s with ERR_BAD_FRAME', (_name, frame) => {
    expect(() => decodeChunkFrame(frame)).toThrowError(expect.objectContaining({ code: 'ERR_BAD_FRAME' }) as unknown as Error);
  });

  it('rejects an offset past 2^53 - 1', () => {
    const frame = encodeChunkFrame(id, 0, new Uint8Array(0));
    frame[2 + id.length] = 0xff;
    expect(() => decodeChunkFrame(frame)).toThrow(UploadHubError);
  });

  it('keeps the header within MAX_FRAME_HEADER_BYTES for the longest id', () => {
    const longest = 'a'.repeat(64);
    expect(encodeChunkFrame(longest, 0, new Uint8Array(0)).byteLength).toBe(MAX_FRAME_HEADER_BYTES);
  });
});
