/**
 * Fingerprints and the store that maps them to unfinished uploads, so sending (or picking) the
 * same file again resumes its upload instead of starting over. Runs in browsers and Node alike:
 * the hash is WebCrypto's, which both have (browsers only in a secure context: https or
 * localhost). The store is opt-in (`new UploadClient({ fingerprints })`); the browser's lives
 * in localStorage (here), Node's in a JSON file (node/fingerprints.ts).
 */
import { portableSource, type ChunkSource, type PortableSource } from './sources.js';

/** What the store remembers of one unfinished upload. */
export interface FingerprintEntry {
  /** fingerprintOf() of the file. */
  fingerprint: string;
  uploadId: string;
  name: string;
  size: number;
  /** The hub's base URL the upload lives on: an entry is only resumed on the same hub. */
  url: string;
  /** When the upload was created, in ms since the epoch. */
  createdAt: number;
}

/**
 * Where fingerprints are kept. Every method may reject (a full or unreadable store); the client
 * then uploads as if it had no store rather than failing the upload.
 */
export interface FingerprintStore {
  get(fingerprint: string): Promise<FingerprintEntry | undefined>;
  set(entry: FingerprintEntry): Promise<void>;
  remove(fingerprint: string): Promise<void>;
  /** Every entry, newest first. */
  list(): Promise<FingerprintEntry[]>;
}

/** Bytes of the file's start that are hashed into its fingerprint. */
export const FINGERPRINT_HEAD_BYTES = 64 * 1024;

/** Entries a store keeps at most; past it the oldest are dropped, so a store never grows without bound. */
export const MAX_FINGERPRINT_ENTRIES = 1000;

/**
 * The fingerprint of a file: its name, size, last-modified time (when known) and the sha256 of
 * its first 64 KiB, as one string. Two files with the same fingerprint are taken to be the same
 * file. `name` overrides the source's own (as UploadOptions.name does).
 *
 * @example const fingerprint = await fingerprintOf(input.files[0]);
 */
export async function fingerprintOf(source: PortableSource, name?: string): Promise<string> {
  const resolved = portableSource(source);
  if (!resolved) throw new TypeError('fingerprintOf takes a File/Blob, Uint8Array, ArrayBuffer or ChunkSource');
  return fingerprintOfSource(resolved, name);
}

/** fingerprintOf() for a source already resolved. */
export async function fingerprintOfSource(source: ChunkSource, name?: string): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('WebCrypto (crypto.subtle) is not available: fingerprints need a secure context (https or localhost)');
  const head = await source.read(0, Math.min(FINGERPRINT_HEAD_BYTES, source.size));
  // A copy: digest() wants an ArrayBuffer-backed view, and a Node Buffer may share a pool.
  const digest = new Uint8Array(await subtle.digest('SHA-256', new Uint8Array(head)));
  const hash = Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return ['uh1', encodeURIComponent(name ?? source.name ?? ''), source.size, source.lastModified ?? '', hash].join(':');
}

/** An entry read back from storage, or undefined when it is not one (a corrupt or foreign value). */
export function parseEntry(value: unknown): FingerprintEntry | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const entry = value as Record<string, unknown>;
  const { fingerprint, uploadId, name, size, url, createdAt } = entry;
  if (typeof fingerprint !== 'string' || typeof uploadId !== 'string' || typeof name !== 'string' || typeof url !== 'string') return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || typeof createdAt !== 'number' || !Number.isFinite(createdAt)) return undefined;
  return { fingerprint, uploadId, name, size, url, createdAt };
}

/** Newest first, at most MAX_FINGERPRINT_ENTRIES. */
export function newestFirst(entries: Iterable<FingerprintEntry>): FingerprintEntry[] {
  return [...entries].sort((a, b) => b.createdAt - a.createdAt).slice(0, MAX_FINGERPRINT_ENTRIES);
}

/** The part of the Web Storage API the store uses. */
export interface StorageLike {
  readonly length: number;
  key(index: number): string | null;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * A FingerprintStore in the browser's localStorage, one item per upload under `prefix`. A value
 * that is not an entry (written by something else, or truncated) is ignored and removed. Where
 * localStorage cannot be used (blocked by the browser's settings, or absent), the store is empty
 * and remembers nothing.
 *
 * @example new UploadClient({ url: location.origin, fingerprints: localStorageFingerprints() })
 */
export function localStorageFingerprints(prefix = 'upload-hub:', storage?: StorageLike): FingerprintStore {
  const open = (): StorageLike | undefined => {
    if (storage) return storage;
    try {
      // Reading the property itself throws where storage is blocked.
      return (globalThis as { localStorage?: StorageLike }).localStorage;
    } catch {
      return undefined;
    }
  };
  const read = (store: StorageLike, key: string): FingerprintEntry | undefined => {
    const raw = store.getItem(key);
    if (raw === null) return undefined;
    let entry: FingerprintEntry | undefined;
    try {
      entry = parseEntry(JSON.parse(raw));
    } catch {
      entry = undefined;
    }
    if (!entry || `${prefix}${entry.fingerprint}` !== key) {
      store.removeItem(key);
      return undefined;
    }
    return entry;
  };
  const keys = (store: StorageLike): string[] => {
    const found: string[] = [];
    for (let index = 0; index < store.length; index++) {
      const key = store.key(index);
      if (key?.startsWith(prefix)) found.push(key);
    }
    return found;
  };
  const list = (store: StorageLike): FingerprintEntry[] =>
    keys(store).flatMap((key) => {
      const entry = read(store, key);
      return entry ? [entry] : [];
    });
  return {
    async get(fingerprint) {
      const store = open();
      return store ? read(store, `${prefix}${fingerprint}`) : undefined;
    },
    async set(entry) {
      const store = open();
      if (!store) return;
      store.setItem(`${prefix}${entry.fingerprint}`, JSON.stringify(entry));
      const all = list(store);
      if (all.length > MAX_FINGERPRINT_ENTRIES) {
        const kept = new Set(newestFirst(all).map((kept) => kept.fingerprint));
        for (const old of all) if (!kept.has(old.fingerprint)) store.removeItem(`${prefix}${old.fingerprint}`);
      }
    },
    async remove(fingerprint) {
      open()?.removeItem(`${prefix}${fingerprint}`);
    },
    async list() {
      const store = open();
      return store ? newestFirst(list(store)) : [];
    },
  };
}
