/**
 * Example stage: a gzip copy of the upload (node:zlib), progress by bytes read, made only where
 * it helps. Text-like files (by MIME type or extension) are compressed; any other file only when
 * a sample of its first bytes shrinks by `minSavings`; and a copy that came out no smaller than
 * the original is deleted, so the stage never makes a file bigger. The output is named by
 * upload id, never by the client's file name.
 */
import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import type { JsonValue } from '../../shared/messages.js';
import type { Stage, StageContext, StageUpload } from '../processing/Stage.js';

export interface GzipStageOptions {
  /** Weight in the processing share of the bar. Default 1. */
  weight?: number;
  /** zlib level 0-9. Default 6. */
  level?: number;
  /** Bytes from the start of a file that is not text-like, compressed to judge it. Default 64 KiB. */
  sampleBytes?: number;
  /** The sample must shrink by at least this fraction (0-1) for the file to be compressed. Default 0.1. */
  minSavings?: number;
}

const TEXT_TYPES = /^(text\/|application\/(json|ld\+json|x-ndjson|jsonl|xml|javascript|ecmascript|x-yaml|yaml|sql|csv|x-sh|graphql)|image\/svg\+xml)/i;
const TEXT_EXTENSIONS = /\.(txt|text|csv|tsv|json|ndjson|jsonl|log|xml|html?|md|svg|js|mjs|ts|css|ya?ml|sql|ini|toml)$/i;

/** Whether the upload is text-like by its declared type or its name: worth compressing unseen. */
export function isTextLike(upload: Pick<StageUpload, 'name' | 'mimeType'>): boolean {
  return TEXT_TYPES.test(upload.mimeType) || TEXT_EXTENSIONS.test(upload.name);
}

/** The first `limit` bytes of the stored file (fewer when it is shorter). */
async function sample(ctx: StageContext, limit: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let length = 0;
  const stream = ctx.createReadStream();
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      pieces.push(piece);
      length += piece.byteLength;
      if (length >= limit) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(pieces).subarray(0, limit);
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 1 : Math.round((part / whole) * 1000) / 1000;
}

export function gzipStage(options: GzipStageOptions = {}): Stage {
  const level = options.level ?? 6;
  const sampleBytes = options.sampleBytes ?? 64 * 1024;
  const minSavings = options.minSavings ?? 0.1;
  return {
    name: 'compress',
    weight: options.weight ?? 1,
    async run(ctx): Promise<JsonValue> {
      const total = ctx.upload.size;
      if (total === 0) {
        ctx.progress(1, 1);
        ctx.log('info', 'not compressed: the file is empty');
        return { skipped: 'empty', bytes: 0 };
      }
      if (!isTextLike(ctx.upload)) {
        const head = await sample(ctx, sampleBytes);
        const sampleRatio = ratio(gzipSync(head, { level }).byteLength, head.byteLength);
        if (sampleRatio > 1 - minSavings) {
          ctx.progress(1, 1);
          ctx.log('info', `not compressed: its first ${head.byteLength} bytes shrink only to ${Math.round(sampleRatio * 100)}%`);
          return { skipped: 'incompressible', bytes: total, sampleRatio };
        }
      }
      const name = `${ctx.upload.id}.gz`;
      const output = join(await ctx.outputDir(), name);
      let read = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          read += chunk.byteLength;
          ctx.progress(read, total);
          callback(null, chunk);
        },
      });
      await pipeline(ctx.createReadStream(), counter, createGzip({ level }), createWriteStream(output, { highWaterMark: 1024 * 1024 }), { signal: ctx.signal });
      const compressedBytes = (await stat(output)).size;
      if (compressedBytes >= total) {
        await rm(output, { force: true });
        ctx.log('info', `not compressed: gzip made ${total} bytes into ${compressedBytes}`);
        return { skipped: 'not smaller', bytes: total, compressedBytes };
      }
      ctx.log('info', `compressed ${total} bytes to ${compressedBytes}`);
      return { output: name, bytes: total, compressedBytes, ratio: ratio(compressedBytes, total) };
    },
  };
}
