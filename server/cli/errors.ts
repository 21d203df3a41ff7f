/**
 * How `upload-hub` ends: its exit codes (the README's table) and the error that carries one.
 * Scripts branch on the code, so each means one thing across commands.
 */

export const EXIT = {
  /** Everything asked for was done. */
  OK: 0,
  /** Some upload failed or was refused (send, cancel, status of an unknown id), or the hub could not start (serve). */
  FAILED: 1,
  /** The command line is wrong: an unknown command or flag, a bad value, a missing file. Nothing was sent. */
  USAGE: 2,
  /** The hub cannot be reached, or refused the token. */
  UNREACHABLE: 3,
  /** Ctrl-C (SIGINT) during send: 128 + signal 2, as shells report it. */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A problem the user can fix; main.ts prints each line after `upload-hub: ` and exits with `exitCode`. */
export class CliError extends Error {
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[], readonly exitCode: ExitCode = EXIT.FAILED) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('\n'));
    this.name = 'CliError';
    this.problems = list;
  }
}

/** A command line that cannot work as typed (exit 2). */
export function usageError(problems: string | readonly string[]): CliError {
  return new CliError(problems, EXIT.USAGE);
}
