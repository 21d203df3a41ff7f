// The example stages run on their own, with a StageContext over real temp files: row counts,
// bad-row warnings (line + reason), the gzip copy, and prompt stops on abort.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { JsonValue, LogLevel } from '../../shared/messages.js';
import type { Stage, StageContext } from '../../server/processing/Stage.js';
import { gzipStage } from '../../server/processors/gzip.js';
import { importRowsStage, rowFormat, splitLines } from '../../server/processors/importRows.js';
import { tempDir } from '../helpers.js';

interface Run {
  result: JsonValue | void;
  logs: { level: LogLevel; text: string }[];
  progress: number[];
  outDir: string;
}

interface Input {
  name: string;
  mimeType?: string;
  metadata?: Record<string, string>;
  content: string | Buffer;
  /** Small reads put line breaks and UTF-8 sequences across chunk boundaries. */
  readSize?: number;
}

async function contextFor(input: Input, signal: AbortSignal = new AbortController().signal, source?: () => Readable) {
  const dir = await tempDir();
  const path = join(dir, 'upload.data');
  const bytes = typeof input.content === 'string' ? Buffer.from(input.content) : input.content;
  await writeFile(path, bytes);
  const outDir = join(dir, 'outputs');
  const logs: Run['logs'] = [];
  const progress: number[] = [];
  let progressed = () => {};
  const firstProgress = new Promise<void>((resolve) => (progressed = resolve));
  const ctx: StageContext = {
    upload: { id: 'unit-test-upload', name: input.name, size: bytes.byteLength, mimeType: input.mimeType ?? 'application/octet-stream', metadata: input.metadata ?? {}, sha256: '' },
    createReadStream: source ?? (() => createReadStream(path, { highWaterMark: input.readSize ?? 64 * 1024 })),
    outputDir: async () => {
      await mkdir(outDir, { recursive: true });
      return outDir;
    },
    signal,
    progress: (done, total) => {
      progress.push(done / total);
      progressed();
    },
    log: (level, text) => logs.push({ level, text }),
    results: {},
  };
  return { ctx, logs, progress, outDir, firstProgress };
}

async function run(stage: Stage, input: Input): Promise<Run> {
  const { ctx, logs, progress, outDir } = await contextFor(input);
  const result = await stage.run(ctx);
  return { result, logs, progress, outDir };
}

async function outputRows(outDir: string): Promise<unknown[]> {
  const text = await readFile(join(outDir, 'rows.ndjson'), 'utf8');
  return text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as unknown);
}

function warnings(logs: Run['logs']): string[] {
  return logs.filter((line) => line.level === 'warn').map((line) => line.text);
}

function expectMonotonicToOne(progress: number[]): void {
  expect(progress.length).toBeGreaterThan(0);
  for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1] as number);
  expect(progress.at(-1)).toBe(1);
}

/** A source that delivers `head` and then nothing, ever: only an abort can end a stage reading it. */
function endlessSource(head: string): { source: Readable; factory: () => Readable } {
  const source = new Readable({ read() {} });
  source.push(head);
  return { source, factory: () => source };
}

describe('rowFormat', () => {
  it('takes metadata.format first, then the MIME type, then the extension', () => {
    expect(rowFormat({ name: 'a.bin', mimeType: 'application/octet-stream', metadata: { format: 'ndjson' } })).toBe('ndjson');
    expect(rowFormat({ name: 'a.ndjson', mimeType: 'application/octet-stream', metadata: { format: 'csv' } })).toBe('csv');
    expect(rowFormat({ name: 'a.bin', mimeType: 'text/csv', metadata: {} })).toBe('csv');
    expect(rowFormat({ name: 'a.bin', mimeType: 'application/x-ndjson', metadata: {} })).toBe('ndjson');
    expect(rowFormat({ name: 'A.CSV', mimeType: '', metadata: {} })).toBe('csv');
    expect(rowFormat({ name: 'a.jsonl', mimeType: '', metadata: {} })).toBe('ndjson');
    expect(rowFormat({ name: 'a.bin', mimeType: 'image/png', metadata: {} })).toBeUndefined();
  });

  it('decides whether the import stage runs', () => {
    const stage = importRowsStage();
    const upload = { id: 'x', size: 1, sha256: '', metadata: {} };
    expect(stage.when?.({ ...upload, name: 'rows.csv', mimeType: '' })).toBe(true);
    expect(stage.when?.({ ...upload, name: 'photo.jpg', mimeType: 'image/jpeg' })).toBe(false);
  });
});

describe('importRowsStage: CSV', () => {
  it('imports good rows, counts them, and logs each bad row with its line and reason', async () => {
    const csv = [
      'id,name,note', // line 1
      '1,Ada,"likes, commas"', // 2
      '2,Grace', // 3: short
      '3,Linus,"two', // 4: quoted field spanning
      'lines"', // 5
      '', // 6: empty, skipped
      '4,Ken,x,extra', // 7: long
      '5,Barbara,ok', // 8
    ].join('\r\n');
    const { result, logs, progress, outDir } = await run(importRowsStage(), { name: 'people.csv', content: `\uFEFF${csv}\r\n`, readSize: 7 });
    expect(result).toEqual({ format: 'csv', rows: 3, badRows: 2, output: 'rows.ndjson', columns: ['id', 'name', 'note'] });
    expect(warnings(logs)).toEqual(['line 3: expected 3 fields, found 2', 'line 7: expected 3 fields, found 4']);
    expect(await outputRows(outDir)).toEqual([
      { id: '1', name: 'Ada', note: 'likes, commas' },
      { id: '3', name: 'Linus', note: 'two\r\nlines' },
      { id: '5', name: 'Barbara', note: 'ok' },
    ]);
    expect(logs.at(-1)).toEqual({ level: 'info', text: 'imported 3 rows, skipped 2 bad rows' });
    expectMonotonicToOne(progress);
  });

  it('keeps going after a quoting error: a stray quote is data, an unclosed quote is a bad row', async () => {
    const csv = 'a,b\n1,2\n"x"y,3\n4,5\n6,"open\n';
    const { result, logs, outDir } = await run(importRowsStage(), { name: 'q.csv', content: csv });
    expect(result).toMatchObject({ rows: 3, badRows: 1 });
    expect(await outputRows(outDir)).toEqual([{ a: '1', b: '2' }, { a: '"x"y', b: '3' }, { a: '4', b: '5' }]);
    const [warning] = warnings(logs);
    expect(warning).toMatch(/^line 5: Quote Not Closed/);
  });

  it('logs an info line every logEvery rows', async () => {
    const csv = `n\n${Array.from({ length: 25 }, (_, i) => String(i)).join('\n')}\n`;
    const { logs } = await run(importRowsStage({ logEvery: 10 }), { name: 'n.csv', content: csv });
    expect(logs.filter((line) => line.level === 'info').map((line) => line.text)).toEqual([
      '10 rows imported', '20 rows imported', 'imported 25 rows, skipped 0 bad rows',
    ]);
  });

  it('stops reading and parsing at once when aborted', { timeout: 10_000 }, async () => {
    const controller = new AbortController();
    const { source, factory } = endlessSource('a,b\n1,2\n3,4\n5,');
    const { ctx, firstProgress } = await contextFor({ name: 'endless.csv', content: 'a,b\n' }, controller.signal, factory);
    const running = Promise.resolve(importRowsStage().run(ctx));
    // The stage is inside its read loop once it has reported progress.
    await firstProgress;
    controller.abort(new Error('cancelled by test'));
    await expect(running).rejects.toThrow();
    expect(source.destroyed).toBe(true);
  });
});

describe('importRowsStage: NDJSON', () => {
  it('imports objects, counts them, and logs each bad line with its number and reason', async () => {
    const lines = [
      '{"id":1,"name":"Zoë"}', // 1 (multi-byte, split across reads)
      '{"id":2', // 2: invalid JSON
      '', // 3: blank
      '[1,2]', // 4: not an object
      '{"id":3,"tags":["ü","€"]}', // 5
      '"text"', // 6: not an object
      '{"id":4}', // 7, no newline at the end
    ];
    const { result, logs, progress, outDir } = await run(importRowsStage(), {
      name: 'events.bin',
      metadata: { format: 'ndjson' },
      content: `\uFEFF${lines.join('\r\n')}`,
      readSize: 3,
    });
    expect(result).toEqual({ format: 'ndjson', rows: 3, badRows: 3, output: 'rows.ndjson' });
    const warned = warnings(logs);
    expect(warned).toHaveLength(3);
    expect(warned[0]).toMatch(/^line 2: invalid JSON \(/);
    expect(warned.slice(1)).toEqual(['line 4: not a JSON object', 'line 6: not a JSON object']);
    expect(await outputRows(outDir)).toEqual([{ id: 1, name: 'Zoë' }, { id: 3, tags: ['ü', '€'] }, { id: 4 }]);
    expectMonotonicToOne(progress);
  });

  it('reports an overlong line as bad and imports the lines after it', async () => {
    const long = `{"x":"${'a'.repeat(5000)}"}`;
    const content = `{"id":1}\n${long}\n{"id":2}\n`;
    const { result, logs, outDir } = await run(importRowsStage({ maxLineLength: 1000 }), { name: 'l.ndjson', content, readSize: 256 });
    expect(result).toMatchObject({ rows: 2, badRows: 1 });
    expect(warnings(logs)).toEqual(['line 2: line longer than 1000 characters']);
    expect(await outputRows(outDir)).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('stops at once when aborted', { timeout: 10_000 }, async () => {
    const controller = new AbortController();
    const { source, factory } = endlessSource('{"a":1}\n{"a":');
    const { ctx } = await contextFor({ name: 'endless.ndjson', content: '' }, controller.signal, factory);
    const running = Promise.resolve(importRowsStage().run(ctx));
    await new Promise<void>((resolve) => (source.readableLength === 0 ? resolve() : source.once('data', () => resolve())));
    controller.abort(new Error('cancelled by test'));
    await expect(running).rejects.toThrow();
    expect(source.destroyed).toBe(true);
  });
});

describe('splitLines', () => {
  it('numbers lines across chunk boundaries, strips CR and a leading BOM', async () => {
    const bad: string[] = [];
    const chunks = [Buffer.from('\uFEFFa\r'), Buffer.from('\nb'), Buffer.from('\n\nc')];
    const lines = [];
    for await (const item of splitLines(Readable.from(chunks), 100, (line, reason) => bad.push(`${line}: ${reason}`))) lines.push(item);
    expect(lines).toEqual([{ line: 1, text: 'a' }, { line: 2, text: 'b' }, { line: 3, text: '' }, { line: 4, text: 'c' }]);
    expect(bad).toEqual([]);
  });
});

describe('gzipStage', () => {
  it('writes a gzip copy that decompresses to the original, with progress by bytes', async () => {
    const original = Buffer.concat([randomBytes(300 * 1024), Buffer.alloc(300 * 1024, 'z')]);
    // Text-like by its name: compressed without a sample, though its first bytes are random.
    const { result, progress, outDir, logs } = await run(gzipStage(), { name: 'mixed.log', content: original, readSize: 64 * 1024 });
    expect(result).toMatchObject({ output: 'unit-test-upload.gz', bytes: original.byteLength });
    const compressed = await readFile(join(outDir, 'unit-test-upload.gz'));
    expect((result as { compressedBytes: number }).compressedBytes).toBe(compressed.byteLength);
    expect(gunzipSync(compressed).equals(original)).toBe(true);
    expect(progress.length).toBeGreaterThan(5);
    expectMonotonicToOne(progress);
    expect(logs).toEqual([{ level: 'info', text: `compressed ${original.byteLength} bytes to ${compressed.byteLength}` }]);
  });

  it('skips an empty file: gzip would make it bigger', async () => {
    const { result, outDir } = await run(gzipStage(), { name: 'empty.txt', content: Buffer.alloc(0) });
    expect(result).toEqual({ skipped: 'empty', bytes: 0 });
    await expect(readFile(join(outDir, 'unit-test-upload.gz'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('compresses a binary file whose sample shrinks, and skips one whose sample does not', async () => {
    const compressible = Buffer.alloc(512 * 1024, 'abcdefgh');
    const packed = await run(gzipStage(), { name: 'zeros.bin', content: compressible });
    expect(packed.result).toMatchObject({ output: 'unit-test-upload.gz', bytes: compressible.byteLength });
    expect(gunzipSync(await readFile(join(packed.outDir, 'unit-test-upload.gz'))).equals(compressible)).toBe(true);

    const random = randomBytes(512 * 1024);
    const skipped = await run(gzipStage(), { name: 'photo.jpg', mimeType: 'image/jpeg', content: random });
    expect(skipped.result).toMatchObject({ skipped: 'incompressible', bytes: random.byteLength });
    expect(skipped.progress.at(-1)).toBe(1);
    expect(skipped.logs[0]?.text).toMatch(/^not compressed: its first 65536 bytes shrink only to 10\d%$/);
    await expect(readFile(join(skipped.outDir, 'unit-test-upload.gz'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('never makes a file bigger: a text-like file that grows is not kept', async () => {
    const random = randomBytes(256 * 1024);
    const { result, outDir, logs } = await run(gzipStage(), { name: 'noise.txt', content: random });
    expect(result).toMatchObject({ skipped: 'not smaller', bytes: random.byteLength });
    expect((result as { compressedBytes: number }).compressedBytes).toBeGreaterThanOrEqual(random.byteLength);
    expect(logs.at(-1)?.text).toMatch(/^not compressed: gzip made/);
    await expect(readFile(join(outDir, 'unit-test-upload.gz'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stops at once when aborted', { timeout: 10_000 }, async () => {
    const controller = new AbortController();
    const { source, factory } = endlessSource('some bytes');
    const { ctx } = await contextFor({ name: 'endless.txt', content: 'x' }, controller.signal, factory);
    const running = Promise.resolve(gzipStage().run(ctx));
    await new Promise<void>((resolve) => (source.readableLength === 0 ? resolve() : source.once('data', () => resolve())));
    controller.abort(new Error('cancelled by test'));
    await expect(running).rejects.toThrow();
    expect(source.destroyed).toBe(true);
  });
});
