/**
 * The default store: one directory. `uploads/<id>.json` is the record (replaced atomically by
 * write-then-rename), `uploads/<id>.data` the bytes, `outputs/<id>/` what processing made.
 * Ids are server-generated and checked against UPLOAD_ID_PATTERN before they touch a path;
 * client file names never do.
 */
import { createReadStream, renameSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs, writeFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { UPLOAD_ID_PATTERN } from '../../shared/messages.js';
import { UploadHubError } from '../../shared/errors.js';
import type { ByteWriter, UploadRecord, UploadStore } from './UploadStore.js';
import { DataDirLock } from './DataDirLock.js';

/** Read buffer for streams over stored files; Node's 16 KiB default costs several times the CPU. */
const READ_HIGH_WATER_MARK = 1024 * 1024;

function assertId(id: string): string {
  if (!UPLOAD_ID_PATTERN.test(id)) throw new Error(`Refusing unsafe upload id ${JSON.stringify(id)}`);
  return id;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * The highest fencing token that opened an upload's bytes for writing, kept beside them
 * (`uploads/<id>.fence`) on the directory the nodes share. A writer opened with a lower token
 * refuses to write: a node that lost its lease while paused cannot touch the bytes its
 * successor writes. The file stays open while its writer is, so the check before each write
 * is one read of a few bytes.
 */
class FenceFile {
  private handle: FileHandle | undefined;
  private readonly buffer = Buffer.alloc(32);

  constructor(private readonly path: string) {}

  /** Raises the stored token to `fence`; throws ERR_LEASE_LOST when a higher one is there. */
  async raise(fence: number): Promise<void> {
    this.handle = await open(this.path, 'a+');
    try {
      await this.check(fence);
      // In place (same inode), so every writer holding the file open reads the new token.
      await this.handle.truncate(0);
      await this.handle.write(String(fence), 0);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  async check(fence: number): Promise<void> {
    if (!this.handle) throw new UploadHubError('ERR_LEASE_LOST', 'The fence file is closed');
    const { bytesRead } = await this.handle.read(this.buffer, 0, this.buffer.byteLength, 0);
    const stored = Number(this.buffer.toString('latin1', 0, bytesRead)) || 0;
    if (stored > fence) throw new UploadHubError('ERR_LEASE_LOST', `Write with fencing token ${fence} refused: token ${stored} holds the upload`);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}

class FileByteWriter implements ByteWriter {
  constructor(private readonly handle: FileHandle, private readonly fence?: { file: FenceFile; token: number }) {}

  async write(chunks: readonly Uint8Array[], position: number): Promise<number> {
    if (this.fence) await this.fence.file.check(this.fence.token);
    let written = 0;
    let pending = [...chunks];
    // writev may write fewer bytes than asked; loop until all are down.
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, position + written);
      written += bytesWritten;
      let skip = bytesWritten;
      const rest: Uint8Array[] = [];
      for (const chunk of pending) {
        if (skip >= chunk.byteLength) skip -= chunk.byteLength;
        else {
          rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
          skip = 0;
        }
      }
      pending = rest;
    }
    return written;
  }

  async close(): Promise<void> {
    try {
      await this.handle.sync();
    } finally {
      await this.handle.close();
      await this.fence?.file.close();
    }
  }
}

export class DiskStore implements UploadStore {
  readonly root: string;
  private readonly uploadsDir: string;
  private readonly outputsDir: string;
  /** Removed data is renamed here (cheap) and deleted in the background (slow on some disks). */
  private readonly trashDir: string;
  private readonly emptying = new Set<Promise<void>>();
  /** Saves of one record run one after another, so the last save wins. */
  private readonly saving = new Map<string, Promise<void>>();
  private readonly lock: DataDirLock | undefined;

  /**
   * @param options.shared  the directory is shared by several hub nodes whose records live in
   *                        Redis: no lock is taken, no record is loaded or kept here, and the
   *                        trash is each node's own.
   */
  constructor(dataDir: string, private readonly options: { shared?: boolean; nodeId?: string } = {}) {
    this.root = resolve(dataDir);
    this.uploadsDir = join(this.root, 'uploads');
    this.outputsDir = join(this.root, 'outputs');
    this.trashDir = join(this.root, options.shared ? `trash-${options.nodeId ?? process.pid}` : 'trash');
    this.lock = options.shared ? undefined : new DataDirLock(this.root);
  }

  /** Takes the data directory's lock (one hub per directory), then loads every record. */
  async init(): Promise<UploadRecord[]> {
    if (!this.lock) {
      await this.prepare();
      return [];
    }
    await this.lock.acquire();
    try {
      return await this.loadAll();
    } catch (error) {
      await this.lock.release();
      throw error;
    }
  }

  /** Releases the data directory's lock; the hub calls it last, after flush(). */
  async close(): Promise<void> {
    await this.lock?.release();
  }

  private async prepare(): Promise<void> {
    await mkdir(this.uploadsDir, { recursive: true });
    await mkdir(this.outputsDir, { recursive: true });
    // Whatever a previous process left in the trash is deleted now.
    await rm(this.trashDir, { recursive: true, force: true });
    await mkdir(this.trashDir, { recursive: true });
  }

  /** One record, or undefined when there is none (or it cannot be read). */
  async load(id: string): Promise<UploadRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.recordPath(id), 'utf8')) as UploadRecord;
    } catch {
      return undefined;
    }
  }

  private async loadAll(): Promise<UploadRecord[]> {
    await this.prepare();
    const records: UploadRecord[] = [];
    for (const name of await readdir(this.uploadsDir)) {
      if (name.includes('.json.tmp-')) {
        await rm(join(this.uploadsDir, name), { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        records.push(JSON.parse(await readFile(join(this.uploadsDir, name), 'utf8')) as UploadRecord);
      } catch {
        // A record that cannot be read is left for an operator rather than deleted.
      }
    }
    return records;
  }

  save(record: UploadRecord): Promise<void> {
    let id: string;
    try {
      id = assertId(record.id);
    } catch (error) {
      return Promise.reject(error);
    }
    const text = JSON.stringify(record);
    const previous = this.saving.get(id) ?? Promise.resolve();
    const next = previous.then(async () => {
      const temp = join(this.uploadsDir, `${id}.json.tmp-${randomBytes(4).toString('hex')}`);
      try {
        await writeFile(temp, text);
        await rename(temp, this.recordPath(id));
      } catch (error) {
        // A full disk leaves a torn temp file behind: it holds space and would never be read.
        await rm(temp, { force: true }).catch(() => undefined);
        throw error;
      }
    });
    // The chain the next save waits on never rejects; the caller gets this save's outcome.
    const settled = next.then(() => undefined, () => undefined);
    this.saving.set(id, settled);
    void settled.then(() => {
      if (this.saving.get(id) === settled) this.saving.delete(id);
    });
    return next;
  }

  /** Resolves when every save and background delete started so far has finished. */
  async flush(): Promise<void> {
    await Promise.all([...this.saving.values(), ...this.emptying]);
  }

  async remove(id: string): Promise<void> {
    await this.saving.get(assertId(id))?.catch(() => undefined);
    await this.removeData(id);
    await rm(this.recordPath(id), { force: true });
    await rm(join(this.uploadsDir, `${id}.fence`), { force: true });
  }

  /**
   * Resolves once the data and outputs are gone from their paths: they are renamed into the
   * trash (a metadata operation) and deleted in the background, so a cancel is answered
   * without waiting for the disk to free the blocks.
   */
  async removeData(id: string): Promise<void> {
    const stamp = `${assertId(id)}-${randomBytes(4).toString('hex')}`;
    const moved = await Promise.all([
      this.moveToTrash(this.dataPath(id), `${stamp}.data`),
      this.moveToTrash(join(this.outputsDir, id), `${stamp}.outputs`),
    ]);
    const trashed = moved.filter((path): path is string => path !== undefined);
    if (trashed.length === 0) return;
    const emptying = Promise.all(trashed.map((path) => rm(path, { recursive: true, force: true }))).then(() => undefined, () => undefined);
    this.emptying.add(emptying);
    void emptying.then(() => this.emptying.delete(emptying));
  }

  async stat(id: string): Promise<{ bytes: number; modifiedAt: number }> {
    try {
      const stats = await stat(this.dataPath(id));
      return { bytes: stats.size, modifiedAt: Math.floor(stats.mtimeMs) };
    } catch (error) {
      if (isNotFound(error)) return { bytes: 0, modifiedAt: 0 };
      throw error;
    }
  }

  async openWriter(id: string, offset: number, fence?: number): Promise<ByteWriter> {
    const path = this.dataPath(id);
    let fenced: { file: FenceFile; token: number } | undefined;
    if (fence !== undefined) {
      fenced = { file: new FenceFile(join(this.uploadsDir, `${assertId(id)}.fence`)), token: fence };
      await fenced.file.raise(fence);
    }
    try {
      return new FileByteWriter(await this.openData(path, offset), fenced);
    } catch (error) {
      await fenced?.file.close();
      throw error;
    }
  }

  private async openData(path: string, offset: number): Promise<FileHandle> {
    // From 0, 'w' creates or empties the file in one call. Further on, 'r+' keeps what is
    // stored ('a' would ignore positions on Linux) and needs the file: create it first.
    if (offset === 0) return open(path, 'w');
    await (await open(path, 'a')).close();
    const handle = await open(path, 'r+');
    try {
      await handle.truncate(offset);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle;
  }

  createReadStream(id: string, range: { start?: number; end?: number } = {}): Readable {
    const options: { highWaterMark: number; start?: number; end?: number } = { highWaterMark: READ_HIGH_WATER_MARK };
    if (range.start !== undefined) options.start = range.start;
    // fs ranges are inclusive; ours are half-open.
    if (range.end !== undefined) options.end = range.end - 1;
    return createReadStream(this.dataPath(id), options);
  }

  dataPath(id: string): string {
    return join(this.uploadsDir, `${assertId(id)}.data`);
  }

  async outputDir(id: string): Promise<string> {
    const dir = join(this.outputsDir, assertId(id));
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** What an unprivileged process may still write on the data directory's filesystem (bavail, not bfree). */
  async freeBytes(): Promise<number> {
    const { bavail, bsize } = await statfs(this.root);
    return bavail * bsize;
  }

  /** Renames `path` into the trash; undefined when there was nothing to move. */
  private async moveToTrash(path: string, name: string): Promise<string | undefined> {
    const target = join(this.trashDir, name);
    try {
      // Synchronous on purpose: a rename is a metadata operation of microseconds, and in the
      // thread pool it would queue behind other uploads' writes and fsyncs (cancel-latency p99).
      renameSync(path, target);
      return target;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      // Another filesystem or a busy directory: delete in place, as slow as it is.
      await rm(path, { recursive: true, force: true });
      return undefined;
    }
  }

  private recordPath(id: string): string {
    return join(this.uploadsDir, `${assertId(id)}.json`);
  }
}
