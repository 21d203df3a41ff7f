/**
 * `upload-hub send` as a child process against a real hub: NDJSON output and exit codes, Ctrl-C
 * (cancel on the hub; a second one leaves the upload resumable), resuming a file sent before
 * through the fingerprint store, and a run in a pseudo-terminal that draws bars and a summary.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { UploadStatus } from '../../shared/messages.js';
import { randomFile, sha256File, startHub, tempDir, storedPath } from '../helpers.js';
import { hasScript, ndjson, repo, startCli, startGateProxy, watchChild } from './cli-helpers.js';

const MiB = 1024 * 1024;

async function statusOf(url: string, id: string): Promise<UploadStatus> {
  const response = await fetch(`${url}/api/uploads/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as UploadStatus;
}

/** A fingerprint store of the test's own, so runs never share (or touch) ~/.upload-hub. */
async function fingerprintFile(): Promise<string> {
  return join(await tempDir(), 'fingerprints.json');
}

const isProgress = (line: string) => line.startsWith('{"type":"progress"');

describe('send --json', () => {
  it('prints parsable NDJSON: throttled progress, stage warnings, a result per file with its code, a summary; exit 1 when one fails', async () => {
    const hub = await startHub({
      pipeline: [{
        name: 'check',
        run: (ctx) => {
          ctx.log('warn', `looking at ${ctx.upload.name}`);
          if (ctx.upload.metadata.reject === 'yes') throw new Error('rejected by the test');
          return { ok: true };
        },
      }],
    });
    const good = await randomFile(3 * MiB);
    const cli = startCli(['send', good.path, '--url', hub.url, '--json', '--metadata', 'album=summer', '--metadata', 'reject=no', '--fingerprints', await fingerprintFile()]);
    const ok = await cli.exited;
    expect(ok.code, ok.stderr).toBe(0);
    const lines = ndjson(ok.stdout);
    expect(new Set(lines.map((line) => line.type))).toEqual(new Set(['progress', 'log', 'result', 'summary']));
    const result = lines.find((line) => line.type === 'result') as Record<string, unknown>;
    expect(result).toMatchObject({ file: good.path, state: 'completed', sha256: good.sha256, size: good.size, result: { check: { ok: true } } });
    const id = result.id as string;
    expect(await sha256File(storedPath(hub, id))).toBe(good.sha256);
    expect((await statusOf(hub.url, id)).metadata).toEqual({ album: 'summer', reject: 'no' });
    const progress = lines.filter((line) => line.type === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    for (const line of progress) expect(line).toMatchObject({ file: good.path, id, total: good.size, phase: expect.stringMatching(/^(upload|processing)$/) });
    expect(lines.find((line) => line.type === 'log')).toMatchObject({ file: good.path, id, level: 'warn', stage: 'check', text: `looking at ${basename(good.path)}` });
    expect(lines.at(-1)).toMatchObject({ type: 'summary', files: 1, completed: 1, failed: 0, bytes: good.size, interrupted: false });

    const bad = await randomFile(1000);
    const failing = startCli(['send', bad.path, good.path, '--url', hub.url, '--json', '--metadata', 'reject=yes', '--fingerprints', await fingerprintFile()]);
    const failed = await failing.exited;
    expect(failed.code, failed.stderr).toBe(1);
    const failedLines = ndjson(failed.stdout);
    const results = failedLines.filter((line) => line.type === 'result');
    expect(results).toHaveLength(2);
    for (const line of results) expect(line).toMatchObject({ state: 'failed', error: { code: 'ERR_STAGE_FAILED', stage: 'check' } });
    expect(failedLines.at(-1)).toMatchObject({ type: 'summary', files: 2, completed: 0, failed: 2, failures: [{ code: 'ERR_STAGE_FAILED' }, { code: 'ERR_STAGE_FAILED' }] });
    expect(failed.stderr).toContain('ERR_STAGE_FAILED');
  });

  it('progress lines come at most about 4 a second per file', async () => {
    // A hub that reports every 64 KiB chunk: hundreds of progress events for the CLI to thin out.
    const hub = await startHub({ options: { chunkSize: 64 * 1024, progressIntervalMs: 0, progressMinStepPercent: 0 } });
    const file = await randomFile(24 * MiB);
    const started = Date.now();
    const cli = startCli(['send', file.path, '--url', hub.url, '--json', '--no-resume', '--fingerprints', await fingerprintFile()]);
    const exited = await cli.exited;
    const seconds = (Date.now() - started) / 1000;
    expect(exited.code, exited.stderr).toBe(0);
    const progress = ndjson(exited.stdout).filter((line) => line.type === 'progress');
    // The throttle lets through the first line, each phase's first and each 100% one besides.
    expect(progress.length).toBeLessThanOrEqual(4 * seconds + 6);
  });

  it('--quiet prints only failures and the summary', async () => {
    const hub = await startHub({ options: { maxFileSize: 2000 } });
    const small = await randomFile(1000);
    const big = await randomFile(5000);
    const cli = startCli(['send', small.path, big.path, '--url', hub.url, '--json', '--quiet', '--fingerprints', await fingerprintFile()]);
    const exited = await cli.exited;
    expect(exited.code).toBe(1);
    const lines = ndjson(exited.stdout);
    expect(lines.map((line) => line.type)).toEqual(['result', 'summary']);
    expect(lines[0]).toMatchObject({ file: big.path, state: 'failed', error: { code: 'ERR_FILE_TOO_LARGE' } });
    expect(lines[1]).toMatchObject({ files: 2, completed: 1, failed: 1 });
  });
});

describe('Ctrl-C', () => {
  it('cancels the running upload on the hub (its stage sees the abort), prints its id and exits 130', async () => {
    // The upload runs until cancelled: its one stage waits for the abort. (Mid-upload, chunks
    // still in flight would race the cancel in the hub; the second Ctrl-C test below stops one
    // mid-upload.)
    const aborted: string[] = [];
    const hub = await startHub({
      pipeline: [{
        name: 'hold',
        run: (ctx) => new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', () => {
          aborted.push(ctx.upload.id);
          reject(ctx.signal.reason as Error);
        }, { once: true })),
      }],
    });
    const file = await randomFile(3 * MiB);
    const cli = startCli(['send', file.path, '--url', hub.url, '--json', '--fingerprints', await fingerprintFile()]);
    const line = await cli.line('stdout', (text) => isProgress(text) && text.includes('"stage":"hold"'));
    const id = (JSON.parse(line) as { id: string }).id;
    expect((await statusOf(hub.url, id)).state).toBe('processing');
    cli.child.kill('SIGINT');
    const exited = await cli.exited;
    expect(exited.code, exited.stderr).toBe(130);
    expect((await statusOf(hub.url, id)).state).toBe('cancelled');
    expect(aborted).toEqual([id]);
    expect(exited.stderr).toMatch(new RegExp(`cancelling on the hub .*: ${id} \\(${file.path}\\)`));
    expect(exited.stderr).toMatch(new RegExp(`cancelled on the hub: ${id}`));
    const lines = ndjson(exited.stdout);
    expect(lines.filter((text) => text.type === 'interrupted').map((text) => text.action)).toEqual(['cancelling', 'cancelled']);
    expect(lines.find((text) => text.type === 'result')).toMatchObject({ id, state: 'cancelled', error: { code: 'ERR_CANCELLED' } });
    expect(lines.at(-1)).toMatchObject({ type: 'summary', interrupted: true, cancelled: 1 });
  });

  it('twice exits at once and leaves the upload resumable on the hub', async () => {
    const hub = await startHub();
    const file = await randomFile(16 * MiB);
    const left = await interruptTwice(hub.url, file, await fingerprintFile());
    expect(left.status.state).toBe('uploading');
    expect(left.status.bytes).toBeGreaterThan(0);
    expect(left.status.bytes).toBeLessThan(file.size);
  });
});

describe('resume', () => {
  it('a second send of a file left unfinished continues its upload from the hub\'s offset, sending less than the file; --no-resume starts over', async () => {
    const hub = await startHub();
    const file = await randomFile(16 * MiB);
    const fingerprints = await fingerprintFile();
    const { id, status: left, proxy } = await interruptTwice(hub.url, file, fingerprints);
    expect(left.bytes).toBeLessThan(file.size);

    // Through the same proxy (an entry is resumed only on the hub it was made for), released now.
    const again = await startCli(['send', file.path, '--url', proxy.url, '--json', '--fingerprints', fingerprints]).exited;
    expect(again.code, again.stderr).toBe(0);
    const lines = ndjson(again.stdout);
    expect(lines.find((line) => line.type === 'result')).toMatchObject({ id, state: 'completed', sha256: file.sha256 });
    // It went on from the hub's offset: its first progress line starts there, and fewer bytes
    // than the file went over the second connection.
    expect(Number(lines.find((line) => line.type === 'progress')?.bytes)).toBeGreaterThanOrEqual(left.bytes);
    expect(proxy.sent.at(-1)).toBeLessThan(file.size - left.bytes / 2);
    expect(await sha256File(storedPath(hub, id))).toBe(file.sha256);

    // Sent and finished: nothing is left to resume, so the same file again is a new upload; and
    // --no-resume never resumes. Both send every byte.
    const fresh = await startCli(['send', file.path, '--url', proxy.url, '--json', '--no-resume', '--fingerprints', fingerprints]).exited;
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(ndjson(fresh.stdout).find((line) => line.type === 'result')?.id).not.toBe(id);
    expect(proxy.sent.at(-1)).toBeGreaterThan(file.size);
  });

  it('--no-resume starts a file left unfinished over, as a new upload', async () => {
    const hub = await startHub();
    const file = await randomFile(16 * MiB);
    const fingerprints = await fingerprintFile();
    const { id, proxy } = await interruptTwice(hub.url, file, fingerprints);
    const fresh = await startCli(['send', file.path, '--url', proxy.url, '--json', '--no-resume', '--fingerprints', fingerprints]).exited;
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(ndjson(fresh.stdout).find((line) => line.type === 'result')?.id).not.toBe(id);
    expect(proxy.sent.at(-1)).toBeGreaterThan(file.size);
  });

  it('the store is UPLOAD_HUB_FINGERPRINTS when --fingerprints is not given', async () => {
    const hub = await startHub();
    const file = await randomFile(16 * MiB);
    const store = await fingerprintFile();
    const proxy = await startGateProxy(hub.url, 4 * MiB);
    const cli = startCli(['send', file.path, '--url', proxy.url, '--json'], { UPLOAD_HUB_FINGERPRINTS: store });
    const id = (JSON.parse(await cli.line('stdout', isProgress)) as { id: string }).id;
    await proxy.holding;
    // The entry is written once the hub has taken the upload: it names the upload and the hub.
    await expect.poll(async () => (await readFile(store, 'utf8').catch(() => '')).includes(id), { timeout: 10_000 }).toBe(true);
    cli.child.kill('SIGKILL');
  });
});

/**
 * `send FILE` through a proxy that holds it after 4 MiB, then Ctrl-C twice: returns the upload
 * as the hub has it afterwards, and the proxy (released: it lets everything through now).
 */
async function interruptTwice(hubUrl: string, file: { path: string }, fingerprints: string) {
  const proxy = await startGateProxy(hubUrl, 4 * MiB);
  const cli = startCli(['send', file.path, '--url', proxy.url, '--json', '--fingerprints', fingerprints]);
  const id = (JSON.parse(await cli.line('stdout', isProgress)) as { id: string }).id;
  await proxy.holding;
  cli.child.kill('SIGINT');
  await cli.line('stderr', (line) => line.includes('cancelling on the hub'));
  const second = Date.now();
  cli.child.kill('SIGINT');
  const exited = await cli.exited;
  expect(exited.code, exited.stderr).toBe(130);
  // "At once": not after the 10 s the first Ctrl-C would wait for the hub. Generous for a loaded machine.
  expect(Date.now() - second).toBeLessThan(5_000);
  expect(exited.stderr).toMatch(new RegExp(`left resumable on the hub.*${id}`));
  // The held cancel died with the connection: the hub still has the upload.
  const status = await statusOf(hubUrl, id);
  proxy.release();
  return { id, status, proxy };
}

describe('send on a terminal', () => {
  it('draws a bar per file through upload and processing, stage warnings above them, and a summary', async () => {
    expect(await hasScript(), 'script (util-linux) gives the CLI a pseudo-terminal').toBe(true);
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const hub = await startHub({
      pipeline: [{
        name: 'inspect',
        run: async (ctx) => {
          ctx.log('warn', `odd bytes in ${ctx.upload.name}`);
          ctx.progress(1, 2);
          await held;
        },
      }],
    });
    const dir = await tempDir();
    const a = await randomFile(3 * MiB, dir);
    const b = await randomFile(5000, await tempDir());
    const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
    // A wide terminal, so the rows keep whole file names.
    const command = 'stty cols 200 rows 50 && ' + [process.execPath, '--import', 'tsx', 'server/main.ts', 'send', a.path, b.path, '--url', hub.url, '--fingerprints', join(dir, 'fp.json')].map(quote).join(' ');
    const cli = watchChild(spawn('script', ['-qefc', command, '/dev/null'], { cwd: repo, env: { ...process.env, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] }));
    // Both bars show the stage while it holds them: a row is name, bar, percent, ..., stage.
    const row = (name: string) => new RegExp(`${name.replace('.', '\\.')}\\s+[█░]+\\s+\\d+%.*inspect`);
    await cli.line('stdout', (line) => row('random-3145728.bin').test(line));
    await cli.line('stdout', (line) => row('random-5000.bin').test(line));
    release();
    const exited = await cli.exited;
    expect(exited.code, exited.stdout).toBe(0);
    expect(exited.stdout).toMatch(/WARN random-3145728\.bin \[inspect\]: odd bytes in random-3145728\.bin/);
    expect(exited.stdout).toMatch(/2\/2 files\s+█+\s+100%/);
    expect(exited.stdout).toMatch(/✔ random-3145728\.bin\s+3\.0 MiB in/);
    expect(exited.stdout).toMatch(/2 files: 2 completed; 3\.0 MiB in [\d.ms]+ \(/);
    expect(exited.stdout).not.toContain('{"type"');
  });
});
