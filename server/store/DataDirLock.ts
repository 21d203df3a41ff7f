/**
 * One hub per data directory. Two hubs on one directory would both append to the same `.data`
 * files and rewrite the same records, each believing it owns every upload, so the second one
 * refuses to start. `hub.lock` in the directory names the holder: its pid, its host and a
 * random token (the pid alone cannot tell two holders in one process apart).
 *
 * The file is created with `wx` (fails when it exists). A lock whose process is gone (a hub
 * killed with SIGKILL, a crash, a power cut) is stale and taken over.
 *
 * @example
 * const lock = new DataDirLock('./data');
 * await lock.acquire(); // throws DataDirError ERR_DATA_DIR_LOCKED naming the holder's pid
 * // ... later
 * await lock.release();
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

export const LOCK_FILE_NAME = 'hub.lock';

export type DataDirErrorCode = 'ERR_DATA_DIR_LOCKED' | 'ERR_DATA_DIR_UNWRITABLE';

/** A data directory the hub cannot use: another hub holds it, or it cannot be written. */
export class DataDirError extends Error {
  constructor(readonly code: DataDirErrorCode, readonly dir: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DataDirError';
  }
}

interface Holder {
  pid: number;
  host: string;
  token: string;
}

/**
 * The locks this process holds, token -> lock file. A lock naming our own pid but none of
 * these tokens was left by an earlier process that had the same pid (a container restarted
 * after SIGKILL, where the hub is pid 1 every time): stale, not ours.
 */
const heldHere = new Map<string, string>();
let exitHookInstalled = false;

/**
 * Removes what this process still holds when it exits without close() (a start that failed
 * after the lock was taken, process.exit): the next hub then finds no lock at all instead of
 * judging a pid that may by then belong to another process.
 */
function releaseAllAtExit(): void {
  for (const [token, path] of heldHere) {
    try {
      if (readFileSync(path, 'utf8').includes(token)) rmSync(path, { force: true });
    } catch {
      // Nothing more can be done at exit; the lock is stale from now on.
    }
  }
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return errnoCode(error) === 'EPERM';
  }
}

function parseHolder(text: string): Holder | undefined {
  const [pid, host, token] = text.split('\n');
  const parsedPid = Number(pid);
  if (!Number.isSafeInteger(parsedPid) || parsedPid <= 0 || !host || !token) return undefined;
  return { pid: parsedPid, host, token };
}

export class DataDirLock {
  readonly dir: string;
  readonly path: string;
  private token: string | undefined;

  constructor(dir: string) {
    this.dir = resolve(dir);
    this.path = join(this.dir, LOCK_FILE_NAME);
  }

  get held(): boolean {
    return this.token !== undefined;
  }

  /** Creates the directory if needed and takes the lock; a no-op when this instance holds it. */
  async acquire(): Promise<void> {
    if (this.token !== undefined) return;
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (error) {
      throw this.unwritable(error);
    }
    const token = randomBytes(12).toString('hex');
    const text = `${process.pid}\n${hostname()}\n${token}\n`;
    // A few rounds: each one that finds a stale lock removes it and tries again.
    for (let round = 0; round < 5; round++) {
      try {
        await writeFile(this.path, text, { flag: 'wx' });
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST') throw this.unwritable(error);
        const holder = await this.readHolder();
        if (holder && this.isLive(holder)) throw this.locked(holder);
        await rm(this.path, { force: true });
        continue;
      }
      // Another hub taking over the same stale lock may have removed ours and written its own
      // in between: only the file's content says who holds it now.
      const holder = await this.readHolder();
      if (holder?.token === token) {
        this.token = token;
        heldHere.set(token, this.path);
        if (!exitHookInstalled) {
          exitHookInstalled = true;
          process.once('exit', releaseAllAtExit);
        }
        return;
      }
      if (holder && this.isLive(holder)) throw this.locked(holder);
    }
    throw new DataDirError('ERR_DATA_DIR_LOCKED', this.dir, `data directory ${this.dir} is contended: ${this.path} kept changing while this hub tried to take it`);
  }

  /**
   * Removes the lock file if this instance holds it. Never throws: a lock that cannot be
   * removed names a process that is about to be gone, so the next hub takes it over as stale.
   */
  async release(): Promise<void> {
    const token = this.token;
    if (token === undefined) return;
    this.token = undefined;
    heldHere.delete(token);
    try {
      if ((await this.readHolder())?.token === token) await rm(this.path, { force: true });
    } catch {
      // See above.
    }
  }

  /** The holder named in the file; undefined when there is none or it is unreadable (a holder killed mid-write). */
  private async readHolder(): Promise<Holder | undefined> {
    try {
      return parseHolder(await readFile(this.path, 'utf8'));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw this.unwritable(error);
    }
  }

  private isLive(holder: Holder): boolean {
    // A pid on another machine (a directory shared over the network) cannot be checked here.
    if (holder.host !== hostname()) return true;
    if (holder.pid === process.pid) return heldHere.has(holder.token);
    return isRunning(holder.pid);
  }

  private locked(holder: Holder): DataDirError {
    const who = holder.host !== hostname() ? `pid ${holder.pid} on host ${holder.host}` : holder.pid === process.pid ? `pid ${holder.pid}, this process` : `pid ${holder.pid}`;
    return new DataDirError(
      'ERR_DATA_DIR_LOCKED',
      this.dir,
      `data directory ${this.dir} is in use by another hub (${who}); stop it or use another data directory (if no hub runs there, delete ${this.path})`,
    );
  }

  private unwritable(error: unknown): DataDirError {
    const reason = error instanceof Error ? error.message : String(error);
    return new DataDirError('ERR_DATA_DIR_UNWRITABLE', this.dir, `data directory ${this.dir} is not writable: ${reason}`, { cause: error });
  }
}
