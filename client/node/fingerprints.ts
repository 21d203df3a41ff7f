/**
 * The Node FingerprintStore: one JSON file, `{ "version": 1, "entries": [...] }`. Every change
 * reads the file, changes it and writes it back through a temporary file renamed over it, so a
 * reader (another process, the next run) sees the old file or the new one, never half of one.
 * Changes from one store are made one at a time; between processes the last writer wins, which
 * at worst forgets an entry (its upload then starts over, it is not corrupted).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { newestFirst, parseEntry, type FingerprintEntry, type FingerprintStore } from '../fingerprint.js';

/** A file larger than this is not a store this code wrote (1000 entries are ~250 KiB): it is treated as corrupt. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

/** ~/.upload-hub/fingerprints.json */
export function defaultFingerprintsPath(): string {
  return join(homedir(), '.upload-hub', 'fingerprints.json');
}

/**
 * A FingerprintStore in a JSON file. A missing file is an empty store; so is a corrupt one (not
 * JSON, not this shape, too large), which the next change replaces. Entries that are not
 * entries are dropped one by one.
 *
 * @example new UploadClient({ url, fingerprints: fileFingerprints() })
 */
export function fileFingerprints(path: string = defaultFingerprintsPath()): FingerprintStore {
  let queue: Promise<unknown> = Promise.resolve();
  /** Runs `work` after every change before it, whatever became of them. */
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };
  const change = (edit: (entries: Map<string, FingerprintEntry>) => boolean) =>
    serial(async () => {
      const entries = await readEntries(path);
      if (edit(entries)) await writeEntries(path, newestFirst(entries.values()));
    });
  return {
    get: (fingerprint) => serial(async () => (await readEntries(path)).get(fingerprint)),
    set: (entry) =>
      change((entries) => {
        entries.set(entry.fingerprint, { ...entry });
        return true;
      }),
    remove: (fingerprint) => change((entries) => entries.delete(fingerprint)),
    list: () => serial(async () => newestFirst((await readEntries(path)).values())),
  };
}

async function readEntries(path: string): Promise<Map<string, FingerprintEntry>> {
  const entries = new Map<string, FingerprintEntry>();
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_FILE_BYTES) return entries;
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return entries;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return entries;
  }
  const list = (parsed as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list)) return entries;
  for (const value of list) {
    const entry = parseEntry(value);
    if (entry) entries.set(entry.fingerprint, entry);
  }
  return entries;
}

async function writeEntries(path: string, entries: FingerprintEntry[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  // Unique per writer, so two processes never write the same temporary file.
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify({ version: 1, entries }, null, 1)}\n`);
      // Durable before it replaces the old file: a crash leaves the old store or the new one.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
}
