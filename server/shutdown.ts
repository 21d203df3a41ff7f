/**
 * How a hub process stops on SIGTERM or SIGINT: it drains (HubServer.drain: /healthz not
 * ready, writers sent elsewhere, uploads released, stages given until shutdownTimeoutMs) and
 * exits 0. A second signal, or a drain that overruns its deadline by 5 s, exits 1 at once.
 * `upload-hub serve` and the test fixtures use this one function.
 */
import type { Logger } from 'pino';
import type { HubServer } from './app.js';

/** Slack past shutdownTimeoutMs before the process gives up on a clean exit, in ms. */
const OVERRUN_MS = 5_000;

export function installShutdown(server: HubServer, logger: Logger, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting for the drain');
      exit(1);
      return;
    }
    stopping = true;
    const deadlineMs = server.hub.options.shutdownTimeoutMs;
    logger.info({ signal, node: server.nodeId, deadlineMs }, 'shutting down: draining');
    const overrun = setTimeout(() => {
      logger.error({ node: server.nodeId }, `drain still running ${OVERRUN_MS} ms past shutdownTimeoutMs; exiting`);
      exit(1);
    }, deadlineMs + OVERRUN_MS);
    overrun.unref();
    server.drain().then(
      () => {
        clearTimeout(overrun);
        logger.info({ node: server.nodeId }, 'drained; exiting');
        exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'drain failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return () => {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  };
}
