/**
 * `upload-hub token --id alice --role uploader`: a new random token, and the entry that admits
 * it, for the tokens file. The token is printed once and stored nowhere; the file keeps only
 * its sha256.
 */
import { InvalidArgumentError } from 'commander';
import { ROLES, type Role } from '../core/auth.js';
import { newToken } from '../auth/TokensFile.js';
import { EXIT } from './errors.js';

export interface TokenFlags {
  id: string;
  role: Role;
}

/** commander's parser for --role: one of the roles, or a usage error naming them. */
export function parseRole(value: string): Role {
  if ((ROLES as readonly string[]).includes(value)) return value as Role;
  throw new InvalidArgumentError(`expected one of ${ROLES.join(', ')}`);
}

/**
 * Prints two lines on stdout: the token, then the entry to add to the tokens file (so
 * `head -1` gives a script the token); how to use them goes to stderr.
 */
export function token(flags: TokenFlags): number {
  const made = newToken(flags.id, flags.role);
  process.stdout.write(`${made.token}\n${JSON.stringify(made.entry)}\n`);
  process.stderr.write('Give the first line to the client (--token, UPLOAD_HUB_TOKEN); add the second to the tokens file (TOKENS_FILE) and reload the hub (kill -HUP <pid>).\n');
  return EXIT.OK;
}
