/**
 * Who may do what: the one place the hub's access rules live. Every transport and route asks
 * the core, which asks these functions, so a rule means the same over ws, Socket.IO and HTTP.
 *
 * | role       | create | see / watch     | resume / cancel |
 * | ---------- | ------ | --------------- | --------------- |
 * | `uploader` | yes    | its own uploads | its own uploads |
 * | `watcher`  | no     | every upload    | nothing         |
 * | `admin`    | yes    | every upload    | every upload    |
 */

export const ROLES = ['uploader', 'watcher', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is on the other end of a connection or request. */
export interface Principal {
  /** Stable id; uploads record it as their owner. */
  id: string;
  /** What the principal may do (see the table above). Default 'uploader'. */
  role?: Role;
  /** The same as `role: 'admin'`, for hooks written before roles. Default false. */
  admin?: boolean;
}

/**
 * Turns a token (from `hello`, the Socket.IO handshake, a header, cookie or query) into a
 * principal. Return null to refuse (ERR_UNAUTHORIZED); throw an UploadHubError for another code.
 *
 * @example
 * const authenticate: Authenticate = (token) => (token === process.env.OPS_TOKEN ? { id: 'ops', role: 'admin' } : null);
 */
export type Authenticate = (token: string | undefined) => Principal | null | Promise<Principal | null>;

/** The principal of every connection when no authenticate hook is configured. */
export const ANONYMOUS: Principal = Object.freeze({ id: 'anonymous' });

export function roleOf(principal: Principal): Role {
  return principal.role ?? (principal.admin === true ? 'admin' : 'uploader');
}

/** Sees every upload, whoever owns it (watchers and admins). */
export function seesAll(principal: Principal): boolean {
  return roleOf(principal) !== 'uploader';
}

/** Whether `principal` may see (status, list, events) an upload owned by `owner`. */
export function maySee(principal: Principal, owner: string): boolean {
  return seesAll(principal) || principal.id === owner;
}

/** Whether `principal` may write (resume, send chunks, cancel) an upload owned by `owner`. */
export function mayWrite(principal: Principal, owner: string): boolean {
  const role = roleOf(principal);
  return role === 'admin' || (role === 'uploader' && principal.id === owner);
}

/** Whether `principal` may create uploads. */
export function mayCreate(principal: Principal): boolean {
  return roleOf(principal) !== 'watcher';
}
