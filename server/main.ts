#!/usr/bin/env node
/**
 * The `upload-hub` command.
 *
 *   upload-hub serve                 run the hub (PORT, HOST, DATA_DIR from the environment or flags)
 *   upload-hub send FILE... [--url]  upload files, showing progress
 *   upload-hub watch [--url]         follow every upload live
 */
import { runCli } from './cli.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
