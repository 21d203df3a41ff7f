// One reusable block of random bytes: incompressible like real uploads, and allocated once
// so the client spends its CPU on sending, not on generating data.
import { randomBytes } from 'node:crypto';
import { MiB } from './sizes.js';

let block: Buffer = randomBytes(MiB);

/** `bytes` random bytes, the same ones on every call (callers must not modify them). */
export function payloadBlock(bytes: number = MiB): Buffer {
  if (block.length < bytes) block = randomBytes(bytes);
  return block.subarray(0, bytes);
}
