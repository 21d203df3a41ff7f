/**
 * The `upload-hub` command against a real hub: send's results, status, ls (every page), cancel,
 * watch, and serve --help generated from the options schema. `send`'s output modes and Ctrl-C
 * are in cli-send.test.ts; refusals and exit codes 2 and 3 in cli-errors.test.ts.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPTION_SPELLINGS } from '../../server/config.js';
import { formatDefault } from '../../server/cli/format.js';
import { flagOf } from '../../server/cli/serve.js';
import type { UploadStatus } from '../../shared/messages.js';
import { randomFile, sha256File, startClient, startHub, tempDir, storedPath } from '../helpers.js';
import { hasScript, ndjson, repo, startCli, watchChild } from './cli-helpers.js';

async function create(url: string, name: string, size = 10): Promise<UploadStatus> {
  const response = await fetch(`${url}/api/uploads`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name, size }) });
  expect(response.status).toBe(201);
  return (await response.json()) as UploadStatus;
}

describe('upload-hub send', () => {
  it('uploads each file and prints one JSON result line per file', async () => {
    const hub = await startHub();
    const a = await randomFile(2 * 1024 * 1024 + 5);
    const b = await randomFile(1000);
    const exited = await startCli(['send', a.path, b.path, '--url', hub.url, '--fingerprints', join(await tempDir(), 'fp.json')]).exited;
    expect(exited.code, exited.stderr).toBe(0);
    const results = ndjson(exited.stdout).filter((line) => line.type === 'result') as unknown as Array<{ file: string; id: string; sha256: string }>;
    expect(results.map((r) => r.file).sort()).toEqual([a.path, b.path].sort());
    for (const result of results) {
      const expected = result.file === a.path ? a.sha256 : b.sha256;
      expect(result.sha256).toBe(expected);
      expect(await sha256File(storedPath(hub, result.id))).toBe(expected);
    }
  });

  it('exits 1 and names the code when an upload fails', async () => {
    const hub = await startHub({ options: { maxFileSize: 10 } });
    const big = await randomFile(100);
    const exited = await startCli(['send', big.path, '--url', hub.url, '--fingerprints', join(await tempDir(), 'fp.json')]).exited;
    expect(exited.code).toBe(1);
    expect(exited.stderr).toContain('ERR_FILE_TOO_LARGE');
    expect(ndjson(exited.stdout).at(-1)).toMatchObject({ type: 'summary', failed: 1, failures: [{ file: big.path, code: 'ERR_FILE_TOO_LARGE' }] });
  });
});

describe('upload-hub status, ls, cancel', () => {
  it('status prints the hub\'s status as JSON; an unknown id is exit 1', async () => {
    const hub = await startHub();
    const upload = await create(hub.url, 'one.bin');
    const exited = await startCli(['status', upload.id, '--url', hub.url]).exited;
    expect(exited.code, exited.stderr).toBe(0);
    expect(JSON.parse(exited.stdout)).toMatchObject({ id: upload.id, name: 'one.bin', state: 'created', size: 10 });

    const missing = await startCli(['status', 'NoSuchUpload123', '--url', hub.url]).exited;
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ERR_NOT_FOUND');
    // Ids are base64url: one may start with "-" and is still an id, not a flag.
    const dashed = await startCli(['status', '-NoSuchUpload1', '--url', hub.url]).exited;
    expect(dashed.code, dashed.stderr).toBe(1);
    expect(dashed.stderr).toContain('-NoSuchUpload1: ERR_NOT_FOUND');
  });

  it('ls follows nextCursor through every page, and filters by state', async () => {
    // 131 unfinished uploads of one principal, created at once: past the default abuse limits.
    const hub = await startHub({ options: { maxOpenUploadsPerPrincipal: 0, createsPerMinutePerPrincipal: 0 } });
    // The hub's page is 100 by default: 130 uploads need two pages.
    const created: string[] = [];
    for (let i = 0; i < 130; i++) created.push((await create(hub.url, `f${i}.bin`)).id);
    const done = startClient({ url: hub.url }).upload(Buffer.from('done'), { name: 'done.txt' });
    const doneId = (await done.done).id;

    const all = await startCli(['ls', '--url', hub.url]).exited;
    expect(all.code, all.stderr).toBe(0);
    const listed = ndjson(all.stdout) as unknown as UploadStatus[];
    expect(listed.map((upload) => upload.id).sort()).toEqual([...created, doneId].sort());

    const waiting = await startCli(['ls', '--state', 'created', '--url', hub.url]).exited;
    expect((ndjson(waiting.stdout) as unknown as UploadStatus[]).map((upload) => upload.id).sort()).toEqual([...created].sort());
    const finished = await startCli(['ls', '--state', 'completed,failed', '--url', hub.url]).exited;
    expect((ndjson(finished.stdout) as unknown as UploadStatus[]).map((upload) => upload.id)).toEqual([doneId]);
  });

  it('cancel cancels each id on the hub; an unknown id makes it exit 1', async () => {
    const hub = await startHub();
    const a = await create(hub.url, 'a.bin');
    const b = await create(hub.url, 'b.bin');
    const exited = await startCli(['cancel', a.id, b.id, '--url', hub.url]).exited;
    expect(exited.code, exited.stderr).toBe(0);
    expect(ndjson(exited.stdout)).toEqual([{ id: a.id, state: 'cancelled' }, { id: b.id, state: 'cancelled' }]);
    for (const id of [a.id, b.id]) expect(((await (await fetch(`${hub.url}/api/uploads/${id}`)).json()) as UploadStatus).state).toBe('cancelled');

    const c = await create(hub.url, 'c.bin');
    const partly = await startCli(['cancel', 'NoSuchUpload123', c.id, '--url', hub.url]).exited;
    expect(partly.code).toBe(1);
    expect(partly.stderr).toContain('NoSuchUpload123: ERR_NOT_FOUND');
    expect(((await (await fetch(`${hub.url}/api/uploads/${c.id}`)).json()) as UploadStatus).state).toBe('cancelled');
  });
});

describe('upload-hub watch', () => {
  it('--json prints a snapshot, then the events of an upload as they happen; Ctrl-C ends it with 0', async () => {
    const hub = await startHub();
    const cli = startCli(['watch', '--json', '--url', hub.url]);
    await cli.line('stdout', (line) => line.startsWith('{"type":"snapshot"'));
    const upload = startClient({ url: hub.url }).upload(Buffer.alloc(300_000, 1), { name: 'watched.bin' });
    const { id } = await upload.done;
    await cli.line('stdout', (line) => line.includes('"type":"completed"') && line.includes(id));
    cli.child.kill('SIGINT');
    const exited = await cli.exited;
    expect(exited.code, exited.stderr).toBe(0);
    const events = ndjson(exited.stdout).slice(1) as unknown as Array<{ type: string; uploadId: string }>;
    const types = events.filter((event) => event.uploadId === id).map((event) => event.type);
    expect(types[0]).toBe('created');
    expect(types).toContain('progress');
    expect(types.at(-1)).toBe('completed');
  });
});

describe('upload-hub watch on a terminal', () => {
  it('prints one readable line per change: time, file, state, stage, percent', async () => {
    expect(await hasScript(), 'script (util-linux) gives the CLI a pseudo-terminal').toBe(true);
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const hub = await startHub({ pipeline: [{ name: 'scan', run: async (ctx) => { ctx.progress(1, 2); await held; } }] });
    const command = [process.execPath, '--import', 'tsx', 'server/main.ts', 'watch', '--url', hub.url].map((part) => `'${part}'`).join(' ');
    const cli = watchChild(spawn('script', ['-qefc', command, '/dev/null'], { cwd: repo, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] }));
    await cli.line('stdout', (line) => line.includes('watching 0 active uploads'));
    const upload = startClient({ url: hub.url }).upload(Buffer.alloc(200_000, 7), { name: 'watched.bin' });
    const clock = '\\d\\d:\\d\\d:\\d\\d';
    await cli.line('stdout', (line) => new RegExp(`^${clock}  watched\\.bin\\s+processing\\s+scan\\s+\\d+%`).test(line.trim()));
    release();
    await upload.done;
    await cli.line('stdout', (line) => new RegExp(`^${clock}  watched\\.bin\\s+completed\\s+\\S+\\s+100%`).test(line.trim()));
    expect(cli.stdout()).not.toContain('{"type"');
  });
});

describe('upload-hub serve --help', () => {
  it('lists every option of the schema as a flag with its unit, description, default and variable', async () => {
    const exited = await startCli(['serve', '--help']).exited;
    expect(exited.code).toBe(0);
    const help = exited.stdout.replace(/\s+/g, ' ');
    for (const spelling of OPTION_SPELLINGS) {
      const shown = spelling.defaultValue === undefined ? `(env: ${spelling.env})` : `(default: ${formatDefault(spelling.defaultValue, spelling.unit)}, env: ${spelling.env})`;
      expect(help, spelling.key).toContain(`${flagOf(spelling)} ${spelling.description} ${shown}`);
    }
    expect(help).toContain('--no-processing');
    expect(help).toContain('--max-file-size <bytes> largest file accepted (default: 10737418240 = 10 GiB, env: MAX_FILE_SIZE)');
  });
});
