import { describe, expect, it } from 'vitest';
import { parseClientMessage, parseServerMessage } from '../../shared/codec.js';
import { ERROR_CODE_LIST, ERROR_CODES } from '../../shared/errors.js';

describe('control message codec', () => {
  it('accepts a valid create and fills nothing in', () => {
    const message = parseClientMessage(JSON.stringify({ type: 'create', reqId: '1', name: 'a.csv', size: 10, metadata: { k: 'v' } }), 1024);
    expect(message).toEqual({ type: 'create', reqId: '1', name: 'a.csv', size: 10, metadata: { k: 'v' } });
  });

  it.each([
    ['{', 'ERR_BAD_MESSAGE'],
    ['[]', 'ERR_UNKNOWN_MESSAGE'],
    ['{"type":"nope"}', 'ERR_UNKNOWN_MESSAGE'],
    ['{"type":"create","reqId":"1","name":"a","size":1.5}', 'ERR_BAD_MESSAGE'],
    ['{"type":"create","reqId":"1","name":"a","size":1,"sha256":"XYZ"}', 'ERR_BAD_MESSAGE'],
    ['{"type":"resume","reqId":"1","uploadId":"../../etc/passwd"}', 'ERR_BAD_MESSAGE'],
  ])('rejects %s with %s', (text, code) => {
    expect(() => parseClientMessage(text, 1024)).toThrowError(expect.objectContaining({ code }) as unknown as Error);
  });

  it('refuses a message over the size limit before parsing it', () => {
    expect(() => parseClientMessage(`{"type":"ping","t":1,"x":"${'a'.repeat(100)}"}`, 64)).toThrowError(
      expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }) as unknown as Error,
    );
  });

  it('validates what the hub sends too', () => {
    expect(parseServerMessage('{"type":"pong","t":3}')).toEqual({ type: 'pong', t: 3 });
    expect(() => parseServerMessage('{"type":"ack","uploadId":"x"}')).toThrow();
  });

  it('gives every error code an HTTP status and a close code of 4000 + status', () => {
    for (const code of ERROR_CODE_LIST) {
      const { status, closeCode } = ERROR_CODES[code];
      expect(closeCode).toBe(4000 + status);
    }
  });
});
