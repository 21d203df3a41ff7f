/**
 * Example stage: a gzip copy of the upload (node:zlib), progress by bytes read. The output is
 * named by upload id, never by the client's file name.
 */
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Stage } from '../processing/Stage.js';

export interface GzipStageOptions {
  /** Weight in the processing share of the bar. Default 1. */
  weight?: number;
  /** zlib level 0-9. Default 6. */
  level?: number;
}

export function gzipStage(options: GzipStageOptions = {}): Stage {
  return {
    name: 'compress',
    weight: options.weight ?? 1,
    async run(ctx) {
      const output = join(await ctx.outputDir(), `${ctx.upload.id}.gz`);
      let read = 0;
      const total = ctx.upload.size;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          read += chunk.byteLength;
          ctx.progress(read, total);
          callback(null, chunk);
        },
      });
      await pipeline(ctx.createReadStream(), counter, createGzip({ level: options.level ?? 6 }), createWriteStream(output, { highWaterMark: 1024 * 1024 }), { signal: ctx.signal });
      const compressedBytes = (await stat(output)).size;
      ctx.log('info', `compressed ${total} bytes to ${compressedBytes}`);
      return { output: `${ctx.upload.id}.gz`, bytes: total, compressedBytes, ratio: total === 0 ? 1 : Math.round((compressedBytes / total) * 1000) / 1000 };
    },
  };
}
