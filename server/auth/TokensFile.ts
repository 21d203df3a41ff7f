/**
 * Tokens from configuration, for the standalone hub: a JSON file listing who may connect and
 * in which role, with each token stored only as its sha256.
 *
 * ```json
 * [{ "id": "alice", "role": "uploader", "tokenSha256": "<hex sha256 of the token>" }]
 * ```
 *
 * A presented token is hashed and compared against every entry in constant time, so neither
 * the file nor the timing of a refusal tells anything about the tokens. The file is read at
 * start (a bad file stops the hub with one line naming it) and again on `reload()` (SIGHUP);
 * a bad file on reload keeps the entries in force and says why.
 *
 * @example
 * const tokens = await TokensFile.load('/etc/upload-hub/tokens.json');
 * const hub = await createHubServer({ authenticate: tokens.authenticate });
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ROLES, type Principal, type Role } from '../core/auth.js';

const entrySchema = z.object({
  id: z.string().min(1).max(256),
  role: z.enum(ROLES),
  tokenSha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (the sha256 of the token)'),
}).strict();
const fileSchema = z.array(entrySchema);

export type TokenEntry = z.infer<typeof entrySchema>;

interface Loaded {
  principal: Principal;
  digest: Buffer;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** A new random token (256 bits, base64url) and the entry that admits it. */
export function newToken(id: string, role: Role): { token: string; entry: TokenEntry } {
  const token = randomBytes(32).toString('base64url');
  return { token, entry: { id, role, tokenSha256: sha256(token).toString('hex') } };
}

export class TokensFile {
  private entries: Loaded[] = [];

  private constructor(readonly path: string) {}

  /** Reads the file; rejects with one line naming the file and what is wrong with it. */
  static async load(path: string): Promise<TokensFile> {
    const file = new TokensFile(path);
    file.entries = await file.read();
    return file;
  }

  /** How many principals the file admits. */
  get size(): number {
    return this.entries.length;
  }

  /** Reads the file again; on failure the entries in force stay and the error says why. */
  async reload(): Promise<void> {
    this.entries = await this.read();
  }

  /** The hub's authenticate hook: the principal whose token hashes to the presented one. */
  readonly authenticate = (token: string | undefined): Principal | null => {
    if (token === undefined || token === '') return null;
    const digest = sha256(token);
    let found: Principal | null = null;
    // Every entry is compared, whatever matched, so the time taken says nothing of the tokens.
    for (const entry of this.entries) if (timingSafeEqual(digest, entry.digest) && !found) found = entry.principal;
    return found;
  };

  /** The principal as the file says now (its role may have changed), or null when it was removed. */
  current(principal: Principal): Principal | null {
    return this.entries.find((entry) => entry.principal.id === principal.id)?.principal ?? null;
  }

  private async read(): Promise<Loaded[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      throw new Error(`TOKENS_FILE ${this.path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new Error(`TOKENS_FILE ${this.path} is not JSON: ${(error as Error).message}`);
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
      throw new Error(`TOKENS_FILE ${this.path} is invalid${where}: ${issue?.message ?? 'schema mismatch'} (expected [{ "id", "role": ${ROLES.map((r) => `"${r}"`).join(' | ')}, "tokenSha256" }])`);
    }
    const ids = new Set<string>();
    for (const entry of parsed.data) {
      if (ids.has(entry.id)) throw new Error(`TOKENS_FILE ${this.path} is invalid: the id ${JSON.stringify(entry.id)} is listed twice`);
      ids.add(entry.id);
    }
    return parsed.data.map((entry) => ({ principal: Object.freeze({ id: entry.id, role: entry.role }), digest: Buffer.from(entry.tokenSha256, 'hex') }));
  }
}
