/** The abuse limits' units (server/core/Limits.ts, server/transports/connectionLimit.ts), fed crafted inputs and a fake clock. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UploadHubError } from '../../shared/errors.js';
import { resolveOptions } from '../../server/config.js';
import { CreateRate, Limits, MAX_METADATA_KEYS, SNIFF_BYTES, TypeRules, checkMetadata, sniffType } from '../../server/core/Limits.js';
import { ConnectionLimit } from '../../server/transports/connectionLimit.js';
import type { UploadRecord, UploadStore } from '../../server/store/UploadStore.js';
import { pngBytes } from '../fixtures/png.js';

const alice = { id: 'alice' };
const bob = { id: 'bob' };

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let at = start;
  return { now: () => at, advance: (ms) => void (at += ms) };
}

/** A store holding one upload's bytes in memory, with the free space the test says. */
function fakeStore(bytes: Uint8Array = new Uint8Array(0), free?: number): UploadStore & { reads: number } {
  const store = {
    reads: 0,
    createReadStream(_id: string, range: { start?: number; end?: number } = {}) {
      store.reads++;
      return Readable.from([Buffer.from(bytes.subarray(range.start ?? 0, range.end ?? bytes.byteLength))]);
    },
    ...(free === undefined ? {} : { freeBytes: async () => free }),
  };
  return store as unknown as UploadStore & { reads: number };
}

function record(overrides: Partial<UploadRecord> = {}): UploadRecord {
  return { id: 'upload-0001', name: 'a.bin', size: 10, mimeType: 'application/octet-stream', metadata: {}, owner: 'alice', state: 'uploading', createdAt: 0, updatedAt: 0, ...overrides };
}

function limits(overrides: Parameters<typeof resolveOptions>[0] = {}, store: UploadStore = fakeStore(), refused: Array<[string, UploadHubError]> = [], now = Date.now): Limits {
  return new Limits(resolveOptions(overrides), store, async (id, error) => void refused.push([id, error]), now);
}

describe('CreateRate: createsPerMinutePerPrincipal as a token bucket', () => {
  it('allows a burst of perMinute, then one create per 60000/perMinute ms, with the wait to the next one', () => {
    const time = clock();
    const rate = new CreateRate(3, time.now);
    expect([rate.take('alice'), rate.take('alice'), rate.take('alice')]).toEqual([0, 0, 0]);
    expect(rate.take('alice')).toBe(20_000);
    expect(rate.retryAfterMs('alice')).toBe(20_000);
    // Another principal has its own bucket.
    expect(rate.take('bob')).toBe(0);
    time.advance(5_000);
    expect(rate.take('alice')).toBe(15_000);
    time.advance(15_000);
    expect(rate.retryAfterMs('alice')).toBe(0);
    expect(rate.take('alice')).toBe(0);
    expect(rate.take('alice')).toBe(20_000);
  });

  it('forgets a principal once its bucket is full again, so memory follows the last minute', () => {
    const time = clock();
    const rate = new CreateRate(120, time.now);
    for (let i = 0; i < 1000; i++) rate.take(`principal-${i}`);
    expect(rate.size).toBe(1000);
    time.advance(60_000);
    rate.take('late');
    expect(rate.size).toBe(1);
  });

  it('0 is no limit, and a clock stepping back drains nothing', () => {
    const unlimited = new CreateRate(0);
    for (let i = 0; i < 1000; i++) expect(unlimited.take('alice')).toBe(0);
    const time = clock();
    const rate = new CreateRate(2, time.now);
    rate.take('alice');
    time.advance(-10_000);
    expect(rate.take('alice')).toBe(0);
  });
});

describe('checkMetadata: maxMetadataBytes and 64 keys', () => {
  it('counts the UTF-8 bytes of the JSON and the keys', () => {
    expect(() => checkMetadata(undefined, 10)).not.toThrow();
    // {"k":"ééé"}: 3 two-byte characters, 14 bytes.
    expect(() => checkMetadata({ k: 'ééé' }, 14)).not.toThrow();
    expect(() => checkMetadata({ k: 'ééé' }, 13)).toThrow(expect.objectContaining({ code: 'ERR_METADATA_TOO_LARGE' }));
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, '']));
    expect(() => checkMetadata(keys(MAX_METADATA_KEYS), 1 << 20)).not.toThrow();
    expect(() => checkMetadata(keys(MAX_METADATA_KEYS + 1), 1 << 20)).toThrow(expect.objectContaining({ code: 'ERR_METADATA_TOO_LARGE', status: 413 }));
  });
});

describe('TypeRules: allowedTypes', () => {
  const png = { ext: 'png', mime: 'image/png' };

  it('an empty list allows everything', () => {
    const rules = new TypeRules([]);
    expect(rules.all).toBe(true);
    expect(rules.declared('application/x-msdownload', 'a.exe')).toBe(true);
    expect(rules.content(undefined, new Uint8Array([0, 1, 2]), 'image/png', 'a.png')).toBe(true);
  });

  it('declared: a listed MIME type or family (parameters and case ignored), or a listed extension of the name', () => {
    const rules = new TypeRules(resolveOptions({ allowedTypes: ['image/png', 'text/*', 'JPEG', '.csv'] }).allowedTypes);
    expect(rules.declared('image/png', 'x')).toBe(true);
    expect(rules.declared('Image/PNG; charset=binary', 'x')).toBe(true);
    expect(rules.declared('text/plain', 'x')).toBe(true);
    expect(rules.declared('image/gif', 'x.gif')).toBe(false);
    expect(rules.declared(undefined, 'photo.JPG')).toBe(true);
    expect(rules.declared(undefined, 'photo.jpeg')).toBe(true);
    expect(rules.declared('', 'rows.csv')).toBe(true);
    expect(rules.declared(undefined, 'rows.csv.exe')).toBe(false);
  });

  it('content: what file-type names must be listed; bytes it cannot name pass only as text declared of an allowed text type', () => {
    const rules = new TypeRules(['image/png', 'text/plain', '.csv']);
    const text = new TextEncoder().encode('hello, world\n');
    expect(rules.content(png, new Uint8Array(), 'image/png', 'a.png')).toBe(true);
    expect(rules.content({ ext: 'gif', mime: 'image/gif' }, new Uint8Array(), 'image/png', 'a.png')).toBe(false);
    expect(rules.content(undefined, text, 'image/png', 'a.png')).toBe(false);
    expect(rules.content(undefined, text, 'text/plain', 'a.txt')).toBe(true);
    expect(rules.content(undefined, text, 'application/octet-stream', 'rows.csv')).toBe(true);
    // Text-like but not listed: text/csv is not text/plain, and the name is not .csv.
    expect(rules.content(undefined, text, 'text/csv', 'rows.txt')).toBe(false);
    // Declared text, yet binary.
    expect(rules.content(undefined, new Uint8Array([104, 105, 0, 1]), 'text/plain', 'a.txt')).toBe(false);
    expect(new TypeRules(['.png']).content(png, new Uint8Array(), 'application/octet-stream', 'x')).toBe(true);
    expect(new TypeRules(['.jpeg']).content({ ext: 'jpg', mime: 'image/jpeg' }, new Uint8Array(), '', 'x')).toBe(true);
  });

  it('config refuses an entry that is neither a MIME type nor an extension, naming it', () => {
    expect(() => resolveOptions({ allowedTypes: ['image/png', 'not a type'] })).toThrow(/allowedTypes: "not a type" is not a type/);
    expect(resolveOptions({ allowedTypes: [' Image/PNG ', 'png', '.TXT', 'image/*'] }).allowedTypes).toEqual(['image/png', '.png', '.txt', 'image/*']);
  });

  it('sniffType names a real PNG and nothing for text', async () => {
    expect(await sniffType(pngBytes(8))).toEqual(png);
    expect(await sniffType(new TextEncoder().encode('a,b,c\n1,2,3\n'))).toBeUndefined();
    expect(await sniffType(new Uint8Array(0))).toBeUndefined();
    // The first SNIFF_BYTES of a larger PNG are enough.
    expect(await sniffType(pngBytes(64).subarray(0, SNIFF_BYTES))).toEqual(png);
  });
});

describe('Limits.admit: every check before a record exists', () => {
  it('maxOpenUploadsPerPrincipal counts unfinished uploads per owner; closed() gives one back', async () => {
    const hub = limits({ maxOpenUploadsPerPrincipal: 2, minFreeDiskBytes: 0 });
    await hub.admit(alice, { name: 'a', size: 1 }, 'a1');
    await hub.admit(alice, { name: 'a', size: 1 }, 'a2');
    await expect(hub.admit(alice, { name: 'a', size: 1 }, 'a3')).rejects.toMatchObject({ code: 'ERR_TOO_MANY_UPLOADS', status: 429 });
    await hub.admit(bob, { name: 'b', size: 1 }, 'b1');
    hub.closed('alice', 'a1');
    hub.closed('alice', 'a1');
    expect(hub.openUploads('alice')).toBe(1);
    await hub.admit(alice, { name: 'a', size: 1 }, 'a4');
    expect(hub.openUploads('alice')).toBe(2);
  });

  it('createsPerMinutePerPrincipal refuses with ERR_RATE_LIMITED carrying retryAfterMs, in its message too', async () => {
    const time = clock();
    const hub = limits({ createsPerMinutePerPrincipal: 2, minFreeDiskBytes: 0 }, fakeStore(), [], time.now);
    await hub.admit(alice, { name: 'a', size: 1 }, 'a1');
    await hub.admit(alice, { name: 'a', size: 1 }, 'a2');
    const error = (await hub.admit(alice, { name: 'a', size: 1 }, 'a3').catch((e: unknown) => e)) as UploadHubError;
    expect(error).toMatchObject({ code: 'ERR_RATE_LIMITED', status: 429, retryAfterMs: 30_000 });
    expect(error.message).toMatch(/retryAfterMs: 30000/);
    // A refused create is not counted as unfinished.
    expect(hub.openUploads('alice')).toBe(2);
  });

  it('minFreeDiskBytes: free space less the declared size must stay at or above it; a refusal counts nothing', async () => {
    const hub = limits({ minFreeDiskBytes: 1000 }, fakeStore(undefined, 5000));
    await hub.admit(alice, { name: 'a', size: 4000 }, 'fits');
    await expect(hub.admit(alice, { name: 'a', size: 4001 }, 'full')).rejects.toMatchObject({ code: 'ERR_STORAGE_FULL', status: 507 });
    expect(hub.openUploads('alice')).toBe(1);
    // A size that is only an upper bound is not judged.
    await hub.admit(alice, { name: 'a', size: 1e9 }, 'bound', false);
    // A store that cannot tell is not judged either.
    await limits({ minFreeDiskBytes: 1e12 }).admit(alice, { name: 'a', size: 1e9 }, 'x');
  });

  it('metadata and the declared type are refused before anything is counted', async () => {
    const hub = limits({ maxMetadataBytes: 20, allowedTypes: ['image/png'], minFreeDiskBytes: 0 });
    await expect(hub.admit(alice, { name: 'a.png', size: 1, mimeType: 'image/png', metadata: { note: 'x'.repeat(20) } }, 'm')).rejects.toMatchObject({ code: 'ERR_METADATA_TOO_LARGE' });
    await expect(hub.admit(alice, { name: 'a.txt', size: 1, mimeType: 'text/plain' }, 't')).rejects.toMatchObject({ code: 'ERR_TYPE_NOT_ALLOWED', status: 415 });
    expect(hub.openUploads('alice')).toBe(0);
    expect(hub.rate.size).toBe(0);
  });
});

describe('Limits.checkContent: the first bytes, sniffed once', () => {
  it('waits for SNIFF_BYTES (or the end of a smaller file), reads the head once, and refuses text declared image/png', async () => {
    const refused: Array<[string, UploadHubError]> = [];
    const text = new TextEncoder().encode('not a picture\n'.repeat(1000));
    const store = fakeStore(text);
    const hub = limits({ allowedTypes: ['image/png'] }, store, refused);
    const upload = record({ mimeType: 'image/png', name: 'a.png', size: text.byteLength });
    expect(hub.checkContent(upload, SNIFF_BYTES - 1, false)).toBeUndefined();
    const first = hub.checkContent(upload, SNIFF_BYTES, false);
    expect(first?.started).toBe(true);
    const again = hub.checkContent(upload, text.byteLength, true);
    expect(again?.started).toBe(false);
    expect(await first?.refused).toBe(true);
    expect(await again?.refused).toBe(true);
    expect(store.reads).toBe(1);
    expect(refused).toHaveLength(1);
    expect(refused[0]?.[1]).toMatchObject({ code: 'ERR_TYPE_NOT_ALLOWED', status: 415 });
  });

  it('passes a real PNG declared image/png, a small one at its end; nothing is checked with allowedTypes empty or once the upload is over', async () => {
    const refused: Array<[string, UploadHubError]> = [];
    const small = pngBytes(2);
    expect(small.byteLength).toBeLessThan(SNIFF_BYTES);
    const hub = limits({ allowedTypes: ['image/png'] }, fakeStore(small), refused);
    const upload = record({ mimeType: 'image/png', name: 'a.png', size: small.byteLength });
    expect(hub.checkContent(upload, small.byteLength - 1, false)).toBeUndefined();
    expect(await hub.checkContent(upload, small.byteLength, true)?.refused).toBe(false);
    expect(refused).toEqual([]);
    expect(limits().checkContent(upload, 10_000, true)).toBeUndefined();
    expect(hub.checkContent(record({ id: 'upload-0002', state: 'failed' }), 10_000, true)).toBeUndefined();
  });
});

describe('ConnectionLimit: maxConnectionsPerIp', () => {
  it('counts per address; a release gives its slot back once; 0 counts nothing', () => {
    const limit = new ConnectionLimit(2);
    const a = limit.take('10.0.0.1');
    const b = limit.take('10.0.0.1');
    expect(limit.take('10.0.0.1')).toBeUndefined();
    expect(limit.take('10.0.0.2')).toBeDefined();
    a?.();
    a?.();
    expect(limit.count('10.0.0.1')).toBe(1);
    expect(limit.take('10.0.0.1')).toBeDefined();
    expect(limit.take('10.0.0.1')).toBeUndefined();
    b?.();
    expect(limit.refusal()).toMatchObject({ code: 'ERR_TOO_MANY_CONNECTIONS', status: 429 });
    const none = new ConnectionLimit(0);
    for (let i = 0; i < 100; i++) expect(none.take('10.0.0.1')).toBeDefined();
    expect(none.addresses).toBe(0);
  });
});
