// Shared start/stop behaviour for the baseline servers (child processes of the bench).
import { removeBenchTempDir } from './tempDir.js';

/** The line proc.ts waits for; tempDir lets the parent clean up even if we are SIGKILLed. */
export function announceReady(port: number, tempDir: string): void {
  process.stdout.write(`${JSON.stringify({ port, tempDir })}\n`);
}

/**
 * Runs `close` once on SIGTERM/SIGINT, then removes the temp dir and exits. The temp dir is
 * also removed on any other exit (crash included), since 'exit' handlers run synchronously.
 */
export function cleanUpOnExit(tempDir: string, close: () => Promise<void>): void {
  process.on('exit', () => removeBenchTempDir(tempDir));
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    // Exit even if close() hangs (e.g. a stuck socket): the parent is waiting for us.
    setTimeout(() => process.exit(0), 2_000).unref();
    close()
      .catch((error: unknown) => console.error('bench server: close failed', error))
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
