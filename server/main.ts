#!/usr/bin/env node
/**
 * The `upload-hub` command.
 *
 *   upload-hub serve [--OPTION V]... run the hub (every option as a flag or an environment variable)
 *   upload-hub send FILE... [--url]  upload files, showing progress
 *   upload-hub watch [--url]         follow every upload live
 *
 * A failure to start prints one line per problem, `upload-hub: ...`, and exits 1: no stack
 * trace, which would bury the one line that says what to fix.
 */
import { runCli } from './cli.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    for (const line of message.split('\n')) process.stderr.write(`upload-hub: ${line.trim()}\n`);
    // Exit now: a half-started hub or a connection still trying (a blackholed address) would
    // otherwise keep the process alive after it has said it failed. Writes to stderr are
    // synchronous for files, pipes and terminals on Linux, so the lines are out.
    process.exit(1);
  },
);
