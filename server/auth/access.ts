/**
 * How the standalone hub decides who may connect: the embedder's `authenticate` hook when
 * given; else the tokens file (`tokensFile`), re-read on SIGHUP; else nobody is asked and every
 * connection is `anonymous` — which is only safe on loopback, so a hub without tokens refuses
 * to listen anywhere else unless `insecure` says the operator knows.
 */
import type { Logger } from 'pino';
import type { HubOptions } from '../config.js';
import type { Authenticate, Principal } from '../core/auth.js';
import { TokensFile } from './TokensFile.js';

export interface Access {
  authenticate?: Authenticate;
  revalidate?: (principal: Principal) => Principal | null;
  /** Stops listening for SIGHUP. */
  close(): void;
}

/** Whether `host` accepts connections from this machine only. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare) || bare === '::ffff:127.0.0.1';
}

export async function configureAccess(options: HubOptions, hooks: { authenticate?: Authenticate }, logger: Logger): Promise<Access> {
  if (hooks.authenticate) return { authenticate: hooks.authenticate, close: () => undefined };
  if (options.tokensFile !== undefined) {
    const tokens = await TokensFile.load(options.tokensFile);
    logger.info({ tokensFile: options.tokensFile, principals: tokens.size }, 'tokens loaded');
    const reload = (): void => {
      tokens.reload().then(
        () => logger.info({ tokensFile: options.tokensFile, principals: tokens.size }, 'tokens reloaded (SIGHUP)'),
        (error: unknown) => logger.error({ tokensFile: options.tokensFile, err: (error as Error).message }, 'tokens not reloaded; the previous ones stay in force'),
      );
    };
    process.on('SIGHUP', reload);
    return { authenticate: tokens.authenticate, revalidate: (principal) => tokens.current(principal), close: () => void process.off('SIGHUP', reload) };
  }
  if (!isLoopback(options.host) && !options.insecure) {
    throw new Error(
      `HOST ${options.host} is not a loopback address and no tokens are configured: anyone who reaches the hub could upload, list and cancel. ` +
        'Set TOKENS_FILE (make entries with `upload-hub token --id NAME --role uploader`), or INSECURE=true to allow it anyway.',
    );
  }
  return { close: () => undefined };
}
