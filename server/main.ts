#!/usr/bin/env node
/**
 * The `upload-hub` command (server/cli.ts): `serve` (the default), `send`, `status`, `ls`,
 * `cancel`, `watch`; `upload-hub --help` lists them, and the README has the exit codes.
 *
 * A problem the user can fix prints one line per problem, `upload-hub: ...`, and exits with
 * its code (2 usage, 3 hub unreachable, 1 otherwise): no stack trace, which would bury the one
 * line that says what to fix.
 */
import { CliError, EXIT, runCli } from './cli.js';

/**
 * Exits once stdout and stderr have been written out. Exit now, not when the event loop drains:
 * after a second Ctrl-C the connection is left open on purpose (closing it would only fail the
 * uploads locally), and a socket still closing would hold the process. But not before the
 * output is out: writes to a pipe are asynchronous, and process.exit() drops what is queued.
 */
function exitWhenWritten(code: number): void {
  let pending = 2;
  const written = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', written);
  process.stderr.write('', written);
}

// A reader that went away (`upload-hub ls | head -1`) is not a failure of ours: stop quietly,
// not with an EPIPE stack trace. Uploads under way stay resumable on the hub.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => process.exit(error.code === 'EPIPE' ? EXIT.OK : EXIT.FAILED));
}

runCli(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) exitWhenWritten(code);
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    for (const line of message.split('\n')) process.stderr.write(`upload-hub: ${line.trim()}\n`);
    // A half-started hub or a connection still trying (a blackholed address) would otherwise
    // keep the process alive after it has said it failed.
    exitWhenWritten(error instanceof CliError ? error.exitCode : EXIT.FAILED);
  },
);
