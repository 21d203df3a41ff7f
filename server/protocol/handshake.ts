/**
 * The one handshake check of the socket protocol, for both socket transports: the client's
 * protocol version, then its token. A raw WebSocket client sends them in `hello`; a Socket.IO
 * client in its handshake's `auth`.
 */
import { UploadHubError } from '../../shared/errors.js';
import { PROTOCOL_VERSION } from '../../shared/messages.js';
import type { Principal } from '../core/auth.js';
import type { UploadHub } from '../core/UploadHub.js';

export async function handshake(hub: UploadHub, version: number, token: string | undefined): Promise<Principal> {
  if (version !== PROTOCOL_VERSION) {
    throw new UploadHubError('ERR_UNSUPPORTED_VERSION', `Protocol version ${version} is not supported; this hub speaks ${PROTOCOL_VERSION}`);
  }
  return hub.authenticate(token);
}
