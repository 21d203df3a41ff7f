/**
 * Example stage: imports a CSV (header row first) or NDJSON file record by record into
 * `rows.ndjson` in the upload's output directory. Progress by bytes read; every bad row is
 * logged as a warning with its line number and the reason, and skipped.
 *
 * Everything runs in one stream pipeline with the stage's AbortSignal, so a cancel stops the
 * read, the parser and the write at once and the stage settles without waiting for the deadline.
 *
 * @example
 * new Pipeline([importRowsStage({ logEvery: 50_000 })]);
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { parse, type CsvError } from 'csv-parse';
import type { JsonValue } from '../../shared/messages.js';
import type { Stage, StageUpload } from '../processing/Stage.js';

export type RowFormat = 'csv' | 'ndjson';

/** metadata.format wins; then the MIME type; then the file name's extension. */
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
  /** Weight in the processing share of the bar. Default 2. */
  weight?: number;
  /** An info log line every this many rows. Default 10,000. */
  logEvery?: number;
  /** A longer line (NDJSON) or record (CSV) is a bad row, so one huge line cannot fill memory. In characters. Default 1 MiB. */
  maxLineLength?: number;
}

const OUTPUT_NAME = 'rows.ndjson';

export function importRowsStage(options: ImportStageOptions = {}): Stage {
  const logEvery = options.logEvery ?? 10_000;
  const maxLineLength = options.maxLineLength ?? 1024 * 1024;
  return {
    name: 'import',
    weight: options.weight ?? 2,
    when: (upload) => rowFormat(upload) !== undefined,
    async run(ctx) {
      const format = rowFormat(ctx.upload) as RowFormat;
      const out = createWriteStream(join(await ctx.outputDir(), OUTPUT_NAME), { highWaterMark: 1024 * 1024 });
      let read = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          read += chunk.byteLength;
          callback(null, chunk);
        },
      });
      const counts = { rows: 0, badRows: 0 };
      const row = (record: JsonValue): string => {
        counts.rows++;
        ctx.progress(read, ctx.upload.size);
        if (counts.rows % logEvery === 0) ctx.log('info', `${counts.rows} rows imported`);
        return `${JSON.stringify(record)}\n`;
      };
      const bad = (line: number, reason: string): void => {
        counts.badRows++;
        ctx.log('warn', `line ${line}: ${reason}`);
      };
      let columns: string[] | undefined;
      if (format === 'csv') {
        // csv-parse counts a CRLF inside a quoted field as two lines; the correction so far.
        let overcount = 0;
        const parser = parse({
          bom: true,
          info: true,
          skip_empty_lines: true,
          // A short or long row is reported as bad by csvRows instead of ending the import.
          relax_column_count: true,
          // A stray quote inside a field is kept as data: without this, csv-parse stays in
          // quoted mode after the error and silently swallows the rows that follow.
          relax_quotes: true,
          // What still cannot be parsed (an unclosed quote, an oversized record) is a bad row.
          skip_records_with_error: true,
          on_skip: (error: CsvError | undefined) => {
            if (error) bad(typeof error.lines === 'number' ? error.lines - overcount : 0, error.message);
            return undefined;
          },
          max_record_size: maxLineLength,
        });
        const toRows = async function* (records: AsyncIterable<{ record: string[]; info: { lines: number } }>): AsyncGenerator<string> {
          for await (const { record, info } of records) {
            for (const field of record) if (field.includes('\r\n')) overcount += field.split('\r\n').length - 1;
            const line = info.lines - overcount;
            if (!columns) {
              columns = record;
              continue;
            }
            if (record.length !== columns.length) {
              bad(line, `expected ${columns.length} fields, found ${record.length}`);
              continue;
            }
            const object: Record<string, string> = {};
            columns.forEach((column, i) => (object[column] = record[i] as string));
            yield row(object);
          }
        };
        await pipeline(ctx.createReadStream(), counter, parser, toRows, out, { signal: ctx.signal });
      } else {
        const toRows = async function* (chunks: AsyncIterable<Buffer>): AsyncGenerator<string> {
          for await (const { line, text } of splitLines(chunks, maxLineLength, bad)) {
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
            yield row(value as JsonValue);
          }
        };
        await pipeline(ctx.createReadStream(), counter, toRows, out, { signal: ctx.signal });
      }
      ctx.progress(ctx.upload.size, ctx.upload.size);
      ctx.log('info', `imported ${counts.rows} rows, skipped ${counts.badRows} bad rows`);
      return summary(format, counts, columns);
    },
  };
}

function summary(format: RowFormat, counts: { rows: number; badRows: number }, columns: string[] | undefined): Record<string, JsonValue> {
  const result: Record<string, JsonValue> = { format, rows: counts.rows, badRows: counts.badRows, output: OUTPUT_NAME };
  if (columns) result.columns = columns;
  return result;
}

/**
 * UTF-8 lines with their 1-based numbers, without the line break (LF or CRLF) and without a
 * leading byte-order mark. A line longer than `maxLength` is reported through `bad` and skipped.
 */
export async function* splitLines(
  chunks: AsyncIterable<Buffer>,
  maxLength: number,
  bad: (line: number, reason: string) => void,
): AsyncGenerator<{ line: number; text: string }> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let line = 0;
  let skipping = false;
  const emit = (text: string): { line: number; text: string } | undefined => {
    line++;
    if (skipping) {
      skipping = false;
      return undefined;
    }
    let clean = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (line === 1 && clean.startsWith('\uFEFF')) clean = clean.slice(1);
    return { line, text: clean };
  };
  const pending: { line: number; text: string }[] = [];
  /** Queues the complete lines of `text` in `pending`; returns the incomplete rest. */
  const take = (text: string): string => {
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      const item = emit(text.slice(start, end));
      if (item) pending.push(item);
      start = end + 1;
    }
    return text.slice(start);
  };
  for await (const chunk of chunks) {
    rest = take(rest + decoder.write(chunk));
    yield* pending.splice(0);
    if (!skipping && rest.length > maxLength) {
      bad(line + 1, `line longer than ${maxLength} characters`);
      skipping = true;
    }
    if (skipping) rest = '';
  }
  rest = take(rest + decoder.end());
  yield* pending.splice(0);
  if (rest !== '') {
    const item = emit(rest);
    if (item) yield item;
  }
}
