/**
 * The one mapping from a store's failure (an errno from the filesystem, or anything a store
 * throws) to the hub's codes: a full disk is ERR_STORAGE_FULL (507), so clients and operators
 * can tell "make room" from "the disk is broken" (ERR_STORAGE, 500).
 */
import { UploadHubError } from '../../shared/errors.js';

/** errno codes that mean "no room": the disk or the user's quota is full. */
const FULL_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/**
 * @param action what was being done, for the message ("Writing the upload", "Saving the record").
 * @example throw storageError(error, 'Saving the record');
 */
export function storageError(error: unknown, action: string): UploadHubError {
  if (error instanceof UploadHubError) return error;
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const detail = errno ?? (error instanceof Error ? error.message : String(error));
  if (errno !== undefined && FULL_CODES.has(errno)) {
    return new UploadHubError('ERR_STORAGE_FULL', `${action} failed: the hub's storage is full (${errno})`, { cause: error });
  }
  return new UploadHubError('ERR_STORAGE', `${action} failed: ${detail}`, { cause: error });
}
