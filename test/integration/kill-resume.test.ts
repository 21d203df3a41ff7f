/**
 * SIGKILL of a child-process hub at 20 random moments: in each round uploads run over raw
 * WebSocket and Socket.IO (different sizes, some compressible text that the gzip stage
 * processes), the hub is killed once a random share of their bytes has been committed (seen in
 * their progress events; past 100%, while they are being processed or right after), and started
 * again on the same data directory and port. The clients resume by themselves; every upload
 * completes with its sha256, and after every restart each record on disk parses and makes sense
 * and no half-written temp record is left.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UPLOAD_ID_PATTERN, UPLOAD_STATES } from '../../shared/messages.js';
import type { TransportName, UploadHandle } from '../../client/UploadClient.js';
import { sha256File, sha256Of, startClient, tempDir, waitFor } from '../helpers.js';
import { freePort, gatedStream, spawnHub, TRANSPORT_NAMES, type ChildHub } from '../protocolHelpers.js';
import { FUZZ_SEED } from '../fuzzArbitraries.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const KILLS = 20;
const CHUNK = 64 * KiB;
/** How long one round's uploads may take to finish after the restart, on a loaded machine. */
const ROUND_MS = 60_000;

interface RoundPlan {
  /** `gate`: the share of the file its source lets out before the kill (when killAt < 1). */
  uploads: Array<{ transport: TransportName; size: number; text: boolean; gate: number }>;
  /**
   * Below 1: the share of the gated bytes committed when the hub is killed, so some uploads are
   * still sending and none can have finished. From 1 on: the sources are not gated and the hub is
   * killed once every byte is in (while files are processed, or just after).
   */
  killAt: number;
}

const roundPlan: fc.Arbitrary<RoundPlan> = fc.record({
  uploads: fc.tuple(
    ...TRANSPORT_NAMES.flatMap((transport) => [0, 1].map(() => fc.record({ transport: fc.constant(transport), size: fc.integer({ min: 256 * KiB, max: 2 * MiB }), text: fc.boolean(), gate: fc.double({ min: 0.1, max: 0.95, noNaN: true }) }))),
  ),
  killAt: fc.double({ min: 0.05, max: 1.3, noNaN: true }),
});

/** Bytes of a file: random, or random text that gzip shrinks (so the compress stage keeps its output). */
function content(size: number, text: boolean): Buffer {
  return text ? Buffer.from(randomBytes(size).toString('hex').slice(0, size)) : randomBytes(size);
}

/**
 * Every record in the data directory parses and holds together, and no temp record is left:
 * a kill must never leave a torn one behind.
 */
async function expectWholeRecords(dataDir: string, context: string, leftovers: readonly string[] = []): Promise<number> {
  const dir = join(dataDir, 'uploads');
  const names = await readdir(dir);
  // The restarted hub writes records too (each save goes through its own temp file): only the
  // killed hub's temp records must be gone.
  expect(names.filter((name) => leftovers.includes(name)), `${context}: temp records of the killed hub left`).toEqual([]);
  let records = 0;
  for (const name of names.filter((entry) => entry.endsWith('.json'))) {
    const text = await readFile(join(dir, name), 'utf8');
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`${context}: torn record ${name}: ${JSON.stringify(text.slice(0, 200))}`);
    }
    const id = name.slice(0, -'.json'.length);
    expect(record, `${context}: record ${name}`).toMatchObject({ id, name: expect.any(String), owner: expect.any(String), mimeType: expect.any(String) });
    expect(UPLOAD_ID_PATTERN.test(id), `${context}: ${name}`).toBe(true);
    expect(UPLOAD_STATES, `${context}: state of ${name}`).toContain(record.state);
    const { size, bytes, createdAt, updatedAt } = record as { size: unknown; bytes?: unknown; createdAt: unknown; updatedAt: unknown };
    expect(Number.isSafeInteger(size) && (size as number) >= 0, `${context}: size of ${name}`).toBe(true);
    if (bytes !== undefined) expect((bytes as number) >= 0 && (bytes as number) <= (size as number), `${context}: bytes of ${name}`).toBe(true);
    expect(typeof createdAt === 'number' && typeof updatedAt === 'number' && createdAt <= updatedAt, `${context}: times of ${name}`).toBe(true);
    records++;
  }
  return records;
}

/** Resolves once `committed()` reaches `threshold` bytes (checked on each progress event) or every upload has ended. */
function committedReach(handles: UploadHandle[], threshold: number, ended: Promise<unknown>): Promise<void> {
  const committed = () => handles.reduce((sum, handle) => sum + handle.progress.bytes, 0);
  const reached = new Promise<void>((resolve) => {
    const offs = handles.map((handle) => handle.on('progress', () => {
      if (committed() < threshold) return;
      for (const off of offs) off();
      resolve();
    }));
    if (committed() >= threshold) resolve();
  });
  return Promise.race([reached, ended.then(() => undefined, () => undefined)]);
}

/** `promise`, or a rejection naming `what` after ROUND_MS. */
async function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ROUND_MS} ms`)), ROUND_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('SIGKILL of the hub at random moments of uploads over ws and Socket.IO', () => {
  it(`resumes every upload after each of ${KILLS} kills and completes it with its sha256; no torn record`, { timeout: 300_000 }, async () => {
    const plans = fc.sample(roundPlan, { seed: FUZZ_SEED, numRuns: KILLS });
    const dataDir = await tempDir();
    const port = await freePort();
    let child: ChildHub = await spawnHub(dataDir, port, { processing: true });
    const clients = Object.fromEntries(TRANSPORT_NAMES.map((transport) => [
      transport,
      // The hub is away for as long as a restart takes: the clients keep trying, briefly apart.
      startClient({ url: child.url, transport, reconnectDelayMs: 50, maxReconnectDelayMs: 400, maxReconnectAttempts: 200 }),
    ])) as Record<TransportName, ReturnType<typeof startClient>>;

    const stats = { leftovers: 0, midUpload: 0, midProcessing: 0 };
    for (const [round, plan] of plans.entries()) {
      const context = `seed ${FUZZ_SEED}, round ${round} (${JSON.stringify(plan)})`;
      const gated = plan.killAt < 1;
      const files = plan.uploads.map((upload) => {
        const bytes = content(upload.size, upload.text);
        return { ...upload, bytes, source: gated ? gatedStream(bytes, Math.floor(upload.gate * upload.size), CHUNK) : undefined };
      });
      const handles = files.map((file, i) => clients[file.transport].upload(file.source?.stream ?? file.bytes, {
        name: `round-${round}-${i}.${file.text ? 'txt' : 'bin'}`,
        type: file.text ? 'text/plain' : 'application/octet-stream',
        size: file.size,
        chunkSize: CHUNK,
        sha256: sha256Of(file.bytes),
      }));
      const done = Promise.all(handles.map((handle) => handle.done));
      done.catch(() => undefined);
      // Created first: a create the hub never answered is not what this test is about.
      await bounded(Promise.all(handles.map((handle) => (handle.id !== undefined ? undefined : waitFor<string>((fn) => handle.on('created', fn))))), `${context}: creates`);
      const total = files.reduce((sum, file) => sum + file.size, 0);
      // Progress comes in steps of at least 1% of a file, and the client may hold back a chunk
      // it has not filled: that much of a gated file's bytes may never be reported before the gate.
      const reachable = gated ? files.reduce((sum, file) => sum + Math.max(0, Math.floor((file.gate - 0.02) * file.size) - CHUNK), 0) : total;
      await bounded(committedReach(handles, Math.min(plan.killAt, 1) * reachable, done), `${context}: the kill moment`);

      await child.kill('SIGKILL');
      const committed = handles.reduce((sum, handle) => sum + handle.progress.bytes, 0);
      if (gated) expect(committed, `${context}: killed mid-upload`).toBeLessThan(total);
      if (committed < total) stats.midUpload++;
      else if (handles.some((handle) => handle.progress.percent < 100)) stats.midProcessing++;
      const leftovers = (await readdir(join(dataDir, 'uploads'))).filter((name) => name.includes('.tmp-'));
      stats.leftovers += leftovers.length;
      child = await spawnHub(dataDir, port, { processing: true });
      await expectWholeRecords(dataDir, `${context}, after the restart`, leftovers);
      for (const file of files) file.source?.release();

      const results = await bounded(done, `${context}: the uploads after the restart`);
      for (const [i, result] of results.entries()) {
        const expected = sha256Of((files[i] as { bytes: Buffer }).bytes);
        // On a mismatch, what the hub says of the upload tells whether the hub or the client lost it.
        const hubSays = result.sha256 === expected ? '' : JSON.stringify(await (await fetch(`${child.url}/api/uploads/${result.id}`)).json());
        expect(result.sha256, `${context}: upload ${i} ${hubSays}`).toBe(expected);
        expect(await sha256File(join(dataDir, 'uploads', `${result.id}.data`)), `${context}: stored bytes of upload ${i}`).toBe(expected);
      }
    }
    await child.kill('SIGTERM');
    // Stopped: nothing is being saved, so no temp record at all may be there.
    expect((await readdir(join(dataDir, 'uploads'))).filter((name) => name.includes('.tmp-'))).toEqual([]);
    expect(await expectWholeRecords(dataDir, 'at the end')).toBe(KILLS * TRANSPORT_NAMES.length * 2);
    // The moments are spread: most kills land while bytes arrive, the others once they are all in.
    expect(stats.midUpload, JSON.stringify(stats)).toBe(plans.filter((plan) => plan.killAt < 1).length);
    expect(stats.midUpload, JSON.stringify(stats)).toBeGreaterThanOrEqual(KILLS / 2);
  });
});
