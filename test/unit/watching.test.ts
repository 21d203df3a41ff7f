import { describe, expect, it } from 'vitest';
import { joinWatching, parseServerMessage, splitWatching, utf8ByteLength } from '../../shared/codec.js';
import type { HubEvent, ProgressEvent, UploadStatus, WatchingMessage } from '../../shared/messages.js';
import { coalesceProgress } from '../../shared/throttle.js';

function status(n: number): UploadStatus {
  return {
    id: `upload-${String(n).padStart(8, '0')}`, name: `file-${n}-€.bin`, size: 100, mimeType: 'application/octet-stream', metadata: { n: String(n) },
    owner: 'alice', state: 'uploading', bytes: 10, percent: 10, phase: 'upload', attached: true, createdAt: 1, updatedAt: 2,
  };
}
let nextId = 1;
function progress(percent: number, uploadId = 'upload-aaaa', phase: ProgressEvent['phase'] = 'upload'): ProgressEvent {
  return { id: nextId++, at: 0, uploadId, type: 'progress', bytes: percent, total: 100, percent, phase, bytesPerSecond: 0, etaSeconds: null };
}
function log(uploadId = 'upload-aaaa'): HubEvent {
  return { id: nextId++, at: 0, uploadId, type: 'log', level: 'info', text: 'line' };
}

describe('watching in pieces', () => {
  const uploads = Array.from({ length: 500 }, (_, n) => status(n));
  const events = [log(), progress(3), log('upload-bbbb')];

  it('splits a reply into pieces under the byte budget that join back into the same reply', () => {
    const reply: WatchingMessage = { type: 'watching', reqId: 'w', uploads, lastEventId: 42, events };
    const pieces = splitWatching(reply, 4096);
    expect(pieces.length).toBeGreaterThan(10);
    for (const piece of pieces) {
      expect(utf8ByteLength(JSON.stringify(piece))).toBeLessThanOrEqual(4096);
      // Every piece is a valid message on its own.
      expect(parseServerMessage(JSON.stringify(piece))).toEqual(piece);
    }
    expect(pieces.slice(0, -1).every((piece) => piece.more === true)).toBe(true);
    expect(pieces.at(-1)?.more).toBeUndefined();
    expect(joinWatching(pieces)).toEqual(reply);
  });

  it('sends a small reply as one piece, and an item larger than the budget alone', () => {
    const small: WatchingMessage = { type: 'watching', uploads: uploads.slice(0, 2), lastEventId: 1 };
    expect(splitWatching(small, 64 * 1024)).toEqual([small]);
    const pieces = splitWatching({ type: 'watching', uploads: uploads.slice(0, 3), lastEventId: 1 }, 100);
    expect(pieces.map((piece) => piece.uploads.length)).toEqual([1, 1, 1]);
  });

  it('keeps `events` absent unless the reply replays', () => {
    const joined = joinWatching(splitWatching({ type: 'watching', uploads, lastEventId: 7 }, 2048));
    expect(joined).not.toHaveProperty('events');
    const replayed = joinWatching(splitWatching({ type: 'watching', uploads: [], lastEventId: 7, events: [] }, 2048));
    expect(replayed.events).toEqual([]);
  });
});

describe('coalesceProgress', () => {
  it('keeps the latest progress of each run, every other event, and the order', () => {
    const a1 = progress(1); const a2 = progress(2); const b1 = progress(5, 'upload-bbbb');
    const l = log(); const a3 = progress(3); const a4 = progress(60, 'upload-aaaa', 'processing'); const a5 = progress(70, 'upload-aaaa', 'processing');
    expect(coalesceProgress([a1, b1, a2, l, a3, a4, a5])).toEqual([b1, a2, l, a3, a5]);
    expect(coalesceProgress([])).toEqual([]);
  });

  it('keeps the last upload-phase progress before a processing one', () => {
    const a1 = progress(10); const a2 = progress(50); const p = progress(55, 'upload-aaaa', 'processing');
    expect(coalesceProgress([a1, a2, p])).toEqual([a2, p]);
  });
});
