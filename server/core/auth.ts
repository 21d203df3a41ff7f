/** Who is on the other end of a connection or request. */
export interface Principal {
  /** Stable id; uploads record it as their owner. */
  id: string;
  /** Sees and may cancel every upload (operators, dashboards). Default false. */
  admin?: boolean;
}

/**
 * Turns a token (from `hello`, the Socket.IO handshake, a header, cookie or query) into a
 * principal. Return null to refuse (ERR_UNAUTHORIZED); throw an UploadHubError for another code.
 *
 * @example
 * const authenticate: Authenticate = (token) => (token === process.env.ADMIN_TOKEN ? { id: 'ops', admin: true } : null);
 */
export type Authenticate = (token: string | undefined) => Principal | null | Promise<Principal | null>;

/** The principal of every connection when no authenticate hook is configured. */
export const ANONYMOUS: Principal = Object.freeze({ id: 'anonymous' });

/** Whether `principal` may see (and cancel) an upload owned by `owner`. The one visibility rule. */
export function mayAccess(principal: Principal, owner: string): boolean {
  return principal.admin === true || principal.id === owner;
}
