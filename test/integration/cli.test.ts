/** The `upload-hub` command: `send` uploads files and prints results; `serve` is covered by the restart test. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { randomFile, sha256File, startHub } from '../helpers.js';

const run = promisify(execFile);
const repo = new URL('../..', import.meta.url).pathname;

describe('upload-hub CLI', () => {
  it('send uploads each file and prints one JSON result line per file', async () => {
    const hub = await startHub();
    const a = await randomFile(2 * 1024 * 1024 + 5);
    const b = await randomFile(1000);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'server/main.ts', 'send', a.path, b.path, '--url', hub.url], { cwd: repo });
    const results = stdout.trim().split('\n').map((line) => JSON.parse(line) as { file: string; id: string; sha256: string });
    expect(results.map((r) => r.file).sort()).toEqual([a.path, b.path].sort());
    for (const result of results) {
      const expected = result.file === a.path ? a.sha256 : b.sha256;
      expect(result.sha256).toBe(expected);
      expect(await sha256File(hub.hub.dataPath(result.id))).toBe(expected);
    }
  });

  it('send exits 1 and names the code when an upload fails', async () => {
    const hub = await startHub({ options: { maxFileSize: 10 } });
    const big = await randomFile(100);
    const failed = await run(process.execPath, ['--import', 'tsx', 'server/main.ts', 'send', big.path, '--url', hub.url], { cwd: repo }).catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain('ERR_FILE_TOO_LARGE');
  });
});
