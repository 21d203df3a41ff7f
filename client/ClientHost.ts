/**
 * What an upload task and a watcher need from the client that runs them: the connection (opened
 * on demand, reconnected by the client), a way to give up on one that stopped answering, word of
 * a drop, and letting go. UploadClient implements it; UploadTask and Watcher know only this, so
 * the client's modules import one another without a cycle (test/unit/client-imports.test.ts).
 */
import type { UploadHubError } from '../shared/errors.js';
import type { HubEvent } from '../shared/messages.js';
import type { ClientConnection } from './connection/ClientConnection.js';

/** Whatever the client routes hub events to (a watcher, an upload task). */
export interface EventFollower {
  onEvent(event: HubEvent): void;
}

export interface ClientHost {
  /** Chunk size the hub recommends (from its welcome), in bytes. */
  readonly hubChunkSize: number;
  /**
   * The open connection, opening one if needed. One attempt: when it fails and may succeed later
   * (isRetryable), the client's reconnect loop resumes the caller once it connects, or fails it
   * once it gives up.
   */
  connect(): Promise<ClientConnection>;
  /** `connection` stopped answering (a request timed out): treat it as dropped and reconnect. */
  abandon(connection: ClientConnection, reason: UploadHubError): void;
  /**
   * `listener` is called synchronously as the connection drops, before anything of the next one
   * arrives. Returns the function that removes it.
   */
  on(name: 'disconnected', listener: (reason: UploadHubError) => void): () => void;
  /** `watcher` stopped: no more events are routed to it, nothing resumes it. */
  forgetWatcher(watcher: EventFollower): void;
}

/**
 * Whether `error` ends a connection rather than what was asked on it: the connection was lost,
 * stopped answering (ERR_TIMEOUT), or its hub node is shutting down (ERR_SHUTTING_DOWN: a node
 * that drains closes its sockets with 4503 and refuses what it is asked meanwhile, so that its
 * clients go to another node), cannot reach Redis (ERR_UNAVAILABLE) or lost the upload to
 * another node (ERR_LEASE_LOST). The task or watcher lets go of the connection (abandon) and the
 * client's reconnect loop resumes it on a new one, or fails it once it gives up.
 */
export function meansReconnect(error: UploadHubError): boolean {
  return RECONNECT_CODES.has(error.code);
}

/**
 * Codes after which another connection may succeed: the connection is gone or silent, the hub
 * node drains, or (several nodes) the node cannot reach Redis or another node holds the upload
 * now — the balancer sends the new connection where it can go on.
 */
const RECONNECT_CODES: ReadonlySet<string> = new Set(['ERR_CONNECTION_LOST', 'ERR_TIMEOUT', 'ERR_SHUTTING_DOWN', 'ERR_UNAVAILABLE', 'ERR_LEASE_LOST']);

/**
 * Whether connecting again may help. A refused token or protocol version will be refused again;
 * anything else (nothing listening, a name that does not resolve, a server that is not the hub,
 * a hub shutting down, no answer in time) may be gone on the next attempt.
 */
export function isRetryable(error: UploadHubError): boolean {
  return error.code !== 'ERR_UNAUTHORIZED' && error.code !== 'ERR_UNSUPPORTED_VERSION';
}
