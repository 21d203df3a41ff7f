/**
 * Streaming writers (the multipart route, and later any HTTP PATCH route) hand the hub a
 * readable body and wait for the bytes to be stored; they never see offsets or windows. This
 * drives the hub's own writer API for them: attach, chunks within the granted window, the end.
 */
import { UploadHubError, toHubError } from '../../shared/errors.js';
import type { UploadStatus } from '../../shared/messages.js';
import type { Principal } from './auth.js';
import type { ChunkResult, UploadHub } from './UploadHub.js';
import type { Writer } from './Upload.js';

export interface IngestOptions {
  /** false: the size given at create was an upper bound, and the stream's end sets it. Default true. */
  exactSize?: boolean;
  /** Fails the upload with its reason at once (bytes removed); ingest then rejects with it. */
  signal?: AbortSignal;
}

type WriterApi = Pick<UploadHub, 'attach' | 'receive' | 'endOfStream' | 'abort' | 'status' | 'options'>;

export async function ingest(hub: WriterApi, principal: Principal, id: string, source: AsyncIterable<Uint8Array>, options: IngestOptions = {}): Promise<UploadStatus> {
  let taken: UploadHubError | undefined;
  /** Let go without an error: the hub finalizes the upload (its last byte is in), or another writer took it. */
  let released = false;
  const writer: Writer = {
    detached: (_uploadId, reason) => {
      if (reason) taken ??= reason;
      else released = true;
    },
  };
  const { signal } = options;
  const reasonOf = (): UploadHubError => toHubError(signal?.reason, 'ERR_UPLOAD_ABORTED');
  const attached = await hub.attach(principal, id, writer);
  if (attached.window === 0 && attached.offset < attached.upload.size) throw taken ?? new UploadHubError('ERR_UPLOAD_STATE', `Upload ${id} takes no more bytes`);
  // An abort fails the upload at once, so its bytes go while the rest of the body still arrives.
  let aborting: Promise<void> | undefined;
  const onAbort = (): void => {
    aborting ??= hub.abort(writer, id, reasonOf());
    aborting.catch(() => undefined);
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const check = (): void => {
    if (signal?.aborted) throw reasonOf();
    if (taken) throw taken;
  };
  const inFlight: Array<Promise<ChunkResult>> = [];
  let position = attached.offset;
  let limit = attached.offset + attached.window;
  let committed = attached.offset;
  const settleOldest = async (): Promise<void> => {
    const outcome = await inFlight.shift();
    if (!outcome) return;
    if (!outcome.ok) throw outcome.error;
    committed = Math.max(committed, outcome.committed);
    limit = Math.max(limit, outcome.committed + outcome.window);
  };
  try {
    const maxChunk = hub.options.maxChunkSize;
    for await (const piece of source) {
      let rest = piece;
      while (rest.byteLength > 0) {
        check();
        // At most the window in flight: past it, wait for the oldest chunk's commit.
        while (position >= limit && inFlight.length > 0) await settleOldest();
        check();
        if (position >= limit) throw new UploadHubError('ERR_UPLOAD_STATE', 'The hub granted no window for this upload');
        const size = Math.min(rest.byteLength, limit - position, maxChunk);
        inFlight.push(hub.receive(writer, principal, id, position, rest.subarray(0, size)));
        position += size;
        rest = rest.subarray(size);
      }
    }
    while (inFlight.length > 0) await settleOldest();
    check();
    if (options.exactSize !== false && committed !== attached.upload.size) {
      throw new UploadHubError('ERR_UPLOAD_ABORTED', `The body ended at ${committed} of ${attached.upload.size} bytes`);
    }
    // The upload is as long as what was committed; finalized (hash checked, processing handed).
    try {
      await hub.endOfStream(writer, id);
    } catch (error) {
      if (!released || toHubError(error).code !== 'ERR_NOT_ATTACHED') throw error;
      // Finalized (and maybe ended) already; or another writer has it and its bytes are not all in.
      const status = await hub.status(principal, id);
      if (status.state === 'created' || status.state === 'uploading') throw new UploadHubError('ERR_NOT_ATTACHED', 'Another writer took the upload over');
    }
  } catch (error) {
    // Replies still coming are failures of the same cause; nobody else waits for them.
    for (const pending of inFlight) void pending.catch(() => undefined);
    const failure = toHubError(error, 'ERR_UPLOAD_ABORTED');
    // The caller hears of the failure once the upload is failed for everyone (a failed write is
    // failed before its chunk is answered; an abort, here).
    aborting ??= taken ? undefined : hub.abort(writer, id, failure);
    await aborting?.catch(() => undefined);
    throw failure;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return hub.status(principal, id);
}
