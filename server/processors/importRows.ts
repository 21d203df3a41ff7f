/**
 * Example stage: imports a CSV (header row first) or NDJSON file record by record into
 * `rows.ndjson` in the upload's output directory. Progress by bytes read; every bad row is
 * logged as a warning with its line number and the reason, and skipped.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Transform, type Readable } from 'node:stream';
import { once } from 'node:events';
import { parse } from 'csv-parse';
import type { JsonValue } from '../../shared/messages.js';
import type { Stage, StageUpload } from '../processing/Stage.js';

export type RowFormat = 'csv' | 'ndjson';

export function rowFormat(upload: Pick<StageUpload, 'name' | 'mimeType' | 'metadata'>): RowFormat | undefined {
  const declared = upload.metadata.format;
  if (declared === 'csv' || declared === 'ndjson') return declared;
  const type = upload.mimeType.toLowerCase();
  const name = upload.name.toLowerCase();
  if (type === 'text/csv' || name.endsWith('.csv')) return 'csv';
  if (type === 'application/x-ndjson' || type === 'application/jsonl' || name.endsWith('.ndjson') || name.endsWith('.jsonl')) return 'ndjson';
  return undefined;
}

export interface ImportStageOptions {
  weight?: number;
  /** A progress log line every this many rows. Default 10,000. */
  logEvery?: number;
}

export function importRowsStage(options: ImportStageOptions = {}): Stage {
  return {
    name: 'import',
    weight: options.weight ?? 2,
    when: (upload) => rowFormat(upload) !== undefined,
    async run(ctx) {
      const format = rowFormat(ctx.upload) as RowFormat;
      const outputName = 'rows.ndjson';
      const out = createWriteStream(join(await ctx.outputDir(), outputName), { highWaterMark: 1024 * 1024 });
      let read = 0;
      const counted = ctx.createReadStream().pipe(new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          read += chunk.byteLength;
          callback(null, chunk);
        },
      }));
      const counts = { rows: 0, badRows: 0 };
      const write = async (record: JsonValue) => {
        if (!out.write(`${JSON.stringify(record)}\n`)) await once(out, 'drain');
        counts.rows++;
        ctx.progress(read, ctx.upload.size);
        if (counts.rows % (options.logEvery ?? 10_000) === 0) ctx.log('info', `${counts.rows} rows imported`);
      };
      const bad = (line: number, reason: string) => {
        counts.badRows++;
        ctx.log('warn', `line ${line}: ${reason}`);
      };
      const onAbort = () => counted.destroy(ctx.signal.reason as Error);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const columns = format === 'csv' ? await importCsv(counted, write, bad) : (await importNdjson(counted, write, bad), undefined);
        ctx.signal.throwIfAborted();
        out.end();
        await once(out, 'finish');
        ctx.progress(ctx.upload.size, ctx.upload.size);
        ctx.log('info', `imported ${counts.rows} rows, skipped ${counts.badRows} bad rows`);
        const result: Record<string, JsonValue> = { format, rows: counts.rows, badRows: counts.badRows, output: outputName };
        if (columns) result.columns = columns;
        return result;
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        out.destroy();
      }
    },
  };
}

type Write = (record: JsonValue) => Promise<void>;
type Bad = (line: number, reason: string) => void;

async function importNdjson(input: Readable, write: Write, bad: Bad): Promise<void> {
  let line = 0;
  for await (const text of createInterface({ input, crlfDelay: Infinity })) {
    line++;
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      bad(line, `invalid JSON (${(error as Error).message})`);
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      bad(line, 'not a JSON object');
      continue;
    }
    await write(value as JsonValue);
  }
}

async function importCsv(input: Readable, write: Write, bad: Bad): Promise<string[] | undefined> {
  // relax_column_count: a short or long row is reported as bad instead of ending the import.
  const parser = input.pipe(parse({ relax_column_count: true, skip_empty_lines: true, info: true, bom: true }));
  let columns: string[] | undefined;
  for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    if (!columns) {
      columns = record;
      continue;
    }
    if (record.length !== columns.length) {
      bad(info.lines, `expected ${columns.length} fields, found ${record.length}`);
      continue;
    }
    const row: Record<string, string> = {};
    columns.forEach((column, i) => (row[column] = record[i] as string));
    await write(row);
  }
  return columns;
}

