// Client side of the multipart baseline (runs inside the bench process): POSTs one file part
// of `totalMiB`, generated on the fly from a reused block so nothing large sits in memory.
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Transfer } from '../lib/result.js';
import { payloadBlock } from '../lib/payload.js';
import { MiB } from '../lib/sizes.js';

export interface MultipartUploadOptions {
  url: string;
  totalMiB: number;
  fieldName?: string;
  fileName?: string;
}

const multipartDefaults = { fieldName: 'file', fileName: 'bench.bin' };

export async function uploadMultipart(
  options: MultipartUploadOptions,
  startMeasuring: () => Promise<void> = async () => {},
): Promise<Transfer> {
  const opts = { ...multipartDefaults, ...options };
  if (!Number.isInteger(opts.totalMiB) || opts.totalMiB < 1) throw new Error(`totalMiB must be a whole number, got ${opts.totalMiB}`);
  // Random bytes never contain a 24-byte random boundary in practice.
  const boundary = `bench-${randomBytes(24).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\n` +
      `Content-Disposition: form-data; name="${opts.fieldName}"; filename="${opts.fileName}"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const block = payloadBlock(MiB);
  const bodyBytes = head.length + opts.totalMiB * MiB + tail.length;

  await startMeasuring();
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const req = request(
      opts.url,
      {
        method: 'POST',
        // A fresh connection per upload, never one kept alive from an earlier run.
        agent: false,
        headers: {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(bodyBytes),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (res.statusCode === 200) resolve();
          else reject(new Error(`upload failed: ${res.statusCode} ${Buffer.concat(chunks).toString()}`));
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);

    let blocksLeft = opts.totalMiB;
    // Honour backpressure: write until the socket buffer is full, resume on 'drain'.
    const writeBody = (): void => {
      while (blocksLeft > 0) {
        blocksLeft -= 1;
        if (!req.write(block) && blocksLeft > 0) {
          req.once('drain', writeBody);
          return;
        }
      }
      req.end(tail);
    };
    req.write(head);
    writeBody();
  });
  return { payloadMiB: opts.totalMiB, seconds: (performance.now() - started) / 1000 };
}
