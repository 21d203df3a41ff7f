import { describe, expect, it } from 'vitest';
import { assertMessageSize, parseClientMessage, utf8ByteLength } from '../../shared/codec.js';
import { parseClientEvent } from '../../shared/socketio.js';

describe('UTF-8 sizes', () => {
  it('counts 1, 2, 3 and 4-byte characters as UTF-8 does, lone surrogates as U+FFFD', () => {
    for (const text of ['', 'abc', 'é', '€', '😀', 'a€😀é', '\ud800', 'x\udc00y', '€'.repeat(1000)]) {
      expect(utf8ByteLength(text)).toBe(new TextEncoder().encode(text).byteLength);
    }
  });

  it('refuses text and bytes over the limit, by bytes', () => {
    expect(() => assertMessageSize('€'.repeat(22), 64)).toThrowError(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }) as unknown as Error);
    expect(() => assertMessageSize('€'.repeat(21) + 'a', 64)).not.toThrow();
    expect(() => assertMessageSize(new Uint8Array(65), 64)).toThrowError(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }) as unknown as Error);
    expect(() => assertMessageSize(new Uint8Array(64), 64)).not.toThrow();
  });
});

describe('one size rule for both transports', () => {
  it('measures a raw frame by its bytes and a Socket.IO event by its message JSON, the same for the same message', () => {
    const pad = '€'.repeat(20);
    const message = { type: 'ping', t: 1, pad };
    const bytes = new TextEncoder().encode(JSON.stringify(message));
    expect(() => parseClientMessage(bytes, bytes.byteLength)).not.toThrow();
    expect(() => parseClientEvent('ping', { t: 1, pad }, bytes.byteLength)).not.toThrow();
    expect(() => parseClientMessage(bytes, bytes.byteLength - 1)).toThrowError(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }) as unknown as Error);
    expect(() => parseClientEvent('ping', { t: 1, pad }, bytes.byteLength - 1)).toThrowError(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }) as unknown as Error);
  });
});
