/**
 * The one table of error codes. Server, client, HTTP routes and socket transports all take
 * their codes, HTTP statuses and WebSocket close codes from here; the README's error table
 * is this table in prose.
 *
 * Close codes are 4000 + the HTTP status, so a close code alone tells the class of failure.
 * A close code is only used when the error ends the connection; most errors leave it open.
 */
export const ERROR_CODES = {
  ERR_BAD_MESSAGE: { status: 400, closeCode: 4400, message: 'Malformed message: not JSON, or fields fail the schema' },
  ERR_UNKNOWN_MESSAGE: { status: 400, closeCode: 4400, message: 'Unknown message type' },
  ERR_MESSAGE_TOO_LARGE: { status: 413, closeCode: 4413, message: 'Control message exceeds maxMessageBytes' },
  ERR_BAD_FRAME: { status: 400, closeCode: 4400, message: 'Binary frame cannot be parsed' },
  ERR_UNSUPPORTED_VERSION: { status: 400, closeCode: 4400, message: 'Protocol version not supported' },
  ERR_HELLO_REQUIRED: { status: 401, closeCode: 4401, message: 'The first message must be hello' },
  ERR_UNAUTHORIZED: { status: 401, closeCode: 4401, message: 'Token missing or refused' },
  ERR_FORBIDDEN: { status: 403, closeCode: 4403, message: 'The upload belongs to another principal' },
  ERR_ORIGIN_NOT_ALLOWED: { status: 403, closeCode: 4403, message: 'The request comes from a web origin that may not use this hub' },
  ERR_NOT_FOUND: { status: 404, closeCode: 4404, message: 'No such upload' },
  ERR_NOT_ATTACHED: { status: 409, closeCode: 4409, message: 'Chunk for an upload this connection has not created or resumed' },
  ERR_UPLOAD_STATE: { status: 409, closeCode: 4409, message: 'The upload is not in a state that allows this' },
  ERR_FLOW_CONTROL: { status: 400, closeCode: 4400, message: 'Chunk exceeds the granted window' },
  ERR_SIZE_MISMATCH: { status: 400, closeCode: 4400, message: 'Chunk extends past the declared file size' },
  ERR_FILE_TOO_LARGE: { status: 413, closeCode: 4413, message: 'File exceeds maxFileSize' },
  ERR_CHUNK_TOO_LARGE: { status: 413, closeCode: 4413, message: 'Chunk exceeds maxChunkSize' },
  ERR_TOO_MANY_FILES: { status: 413, closeCode: 4413, message: 'Too many files in one multipart request' },
  ERR_TOO_MANY_FIELDS: { status: 413, closeCode: 4413, message: 'Too many or too large form fields' },
  ERR_TOO_MANY_UPLOADS: { status: 429, closeCode: 4429, message: 'Too many unfinished uploads: on this connection (maxUploadsPerConnection) or of this principal (maxOpenUploadsPerPrincipal)' },
  ERR_IDLE_TIMEOUT: { status: 408, closeCode: 4408, message: 'No chunk arrived within idleTimeoutMs; resume to continue' },
  ERR_CHECKSUM_MISMATCH: { status: 422, closeCode: 4422, message: 'sha256 of the received bytes differs from the declared one' },
  ERR_UPLOAD_ABORTED: { status: 400, closeCode: 4400, message: 'The request ended before the file was complete' },
  ERR_CANCELLED: { status: 409, closeCode: 4409, message: 'The upload was cancelled' },
  ERR_EXPIRED: { status: 410, closeCode: 4410, message: 'The upload expired before it was completed' },
  ERR_STAGE_FAILED: { status: 500, closeCode: 4500, message: 'A processing stage failed' },
  ERR_STAGE_TIMEOUT: { status: 504, closeCode: 4504, message: 'A processing stage exceeded its time limit' },
  ERR_SHUTTING_DOWN: { status: 503, closeCode: 4503, message: 'The hub is shutting down' },
  ERR_UNAVAILABLE: { status: 503, closeCode: 4503, message: 'The hub cannot reach its shared state (Redis); try again shortly' },
  ERR_LEASE_LOST: { status: 409, closeCode: 4409, message: 'Another hub node took this upload over' },
  ERR_STORAGE_FULL: { status: 507, closeCode: 4507, message: 'The hub has no room left to store the upload' },
  ERR_STORAGE: { status: 500, closeCode: 4500, message: 'The hub could not read or write its storage' },
  ERR_SLOW_CONSUMER: { status: 503, closeCode: 4503, message: 'The watcher did not read its events; its unsent output passed watcherMaxBufferedBytes' },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, closeCode: 4415, message: 'The request body has the wrong Content-Type' },
  ERR_REQUEST_TIMEOUT: { status: 408, closeCode: 4408, message: 'The request body did not arrive within requestTimeoutMs' },
  ERR_TOO_SLOW: { status: 408, closeCode: 4408, message: 'The upload body arrived slower than minUploadRate' },
  ERR_RATE_LIMITED: { status: 429, closeCode: 4429, message: 'Too many creates: the principal passed createsPerMinutePerPrincipal' },
  ERR_TOO_MANY_CONNECTIONS: { status: 429, closeCode: 4429, message: 'Too many connections and streams from this address (maxConnectionsPerIp)' },
  ERR_METADATA_TOO_LARGE: { status: 413, closeCode: 4413, message: 'Metadata exceeds maxMetadataBytes or 64 keys' },
  ERR_TYPE_NOT_ALLOWED: { status: 415, closeCode: 4415, message: 'The file type is not in allowedTypes' },
  ERR_INTERNAL: { status: 500, closeCode: 4500, message: 'Internal error' },
  // Raised by the client library only; the server never sends them.
  ERR_CONNECTION_LOST: { status: 503, closeCode: 4503, message: 'Connection lost and could not be re-established' },
  ERR_TIMEOUT: { status: 504, closeCode: 4504, message: 'The hub did not answer in time' },
  ERR_SOURCE: { status: 400, closeCode: 4400, message: 'The upload source could not be read' },
} as const satisfies Record<string, { status: number; closeCode: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/**
 * The error every layer throws and every client receives. `status` and `closeCode` come from
 * ERROR_CODES, so a code means the same thing over HTTP, WebSocket and Socket.IO.
 *
 * @example throw new UploadHubError('ERR_NOT_FOUND', `No upload ${id}`)
 */
export class UploadHubError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly closeCode: number;
  /** The processing stage the error happened in, when it did. */
  readonly stage: string | undefined;
  /** When trying again may succeed, in ms (ERR_RATE_LIMITED): HTTP sends it as `Retry-After`. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; stage?: string; retryAfterMs?: number }) {
    super(message ?? ERROR_CODES[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UploadHubError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.closeCode = ERROR_CODES[code].closeCode;
    this.stage = options?.stage;
    this.retryAfterMs = options?.retryAfterMs;
  }

  toJSON(): { code: ErrorCode; message: string; stage?: string } {
    return this.stage === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, stage: this.stage };
  }
}

/** Wraps anything thrown into an UploadHubError, keeping a coded error as it is. */
export function toHubError(error: unknown, fallback: ErrorCode = 'ERR_INTERNAL'): UploadHubError {
  if (error instanceof UploadHubError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new UploadHubError(fallback, message, { cause: error });
}
