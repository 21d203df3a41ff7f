/**
 * The `upload-hub` command line, on commander: one subcommand per job, each in server/cli/.
 *
 *   serve            run the hub (the default command)            server/cli/serve.ts
 *   send FILE...     upload files with bars or NDJSON; Ctrl-C      server/cli/send.ts
 *   status ID, ls, cancel ID...   the REST routes                 server/cli/inspect.ts
 *   watch            follow every upload live                      server/cli/watch.ts
 *   token            a new token and its tokens-file entry         server/cli/token.ts
 *
 * Every way it ends is an exit code (server/cli/errors.ts, the README's table): commander's own
 * usage errors are turned into one `upload-hub: ...` line and exit 2, not its exit 1.
 */
import { Command, CommanderError, Option } from 'commander';
import { UPLOAD_STATES } from '../shared/messages.js';
import { EXIT, usageError } from './cli/errors.js';
import { DEFAULT_URL, TRANSPORTS } from './cli/hub.js';
import { cancel, collectStates, list, status, type ListFlags, type OutputFlags } from './cli/inspect.js';
import { collectMetadata, DEFAULT_CONCURRENCY, MAX_CONCURRENCY, parseConcurrency, send, type SendFlags } from './cli/send.js';
import { serveCommand } from './cli/serve.js';
import { watch } from './cli/watch.js';
import { parseRole, token, type TokenFlags } from './cli/token.js';

export { CliError, EXIT } from './cli/errors.js';

const COMMANDS = ['serve', 'send', 'status', 'ls', 'cancel', 'watch', 'token', 'help'];

/** --url, --token, --transport: the same on every client command. */
function withHub(command: Command, transport: boolean): Command {
  command
    .option('--url <url>', `the hub's http(s) address (default: ${DEFAULT_URL}, env: UPLOAD_HUB_URL)`)
    .option('--token <token>', 'sent to the hub\'s authenticate hook (env: UPLOAD_HUB_TOKEN)');
  if (transport) command.option('--transport <name>', `socket to use: ${TRANSPORTS.join(' or ')} (default: "ws")`);
  return command;
}

const EXIT_HELP = `
Exit codes:
  0    everything asked for was done
  1    some upload failed (send), an id was refused (status, cancel), or the hub could not start (serve)
  2    usage error: unknown command or flag, bad value, missing file; nothing was sent
  3    the hub cannot be reached, or refused the token
  130  interrupted by Ctrl-C (send)`;

/** Usage errors as one `upload-hub: ...` line (commander's say `error: ...`), pointing at the command's --help. */
function houseOutput(command: Command, help: string): Command {
  return command.configureOutput({
    writeOut: (text) => process.stdout.write(text),
    writeErr: (text) => process.stderr.write(text),
    outputError: (text, write) => write(`upload-hub: ${text.replace(/^error: /, '').trimEnd()} (${help})\n`),
  });
}

function program(env: NodeJS.ProcessEnv, finish: (code: number | undefined) => void): Command {
  const root = houseOutput(new Command('upload-hub'), 'upload-hub --help')
    .description('Real-time upload hub: run it, send files to it, watch it.')
    .exitOverride()
    .showSuggestionAfterError(true)
    .addHelpText('after', EXIT_HELP);

  // Subcommands made by root.command() inherit exitOverride and the output; serve is made apart.
  root.addCommand(houseOutput(serveCommand(env, finish).exitOverride(), 'upload-hub serve --help'), { isDefault: true });

  withHub(root.command('send').description('upload files, with a bar each on a terminal and NDJSON otherwise; Ctrl-C cancels them on the hub').argument('<files...>'), true)
    .addOption(new Option('--metadata <key=value>', 'metadata for every file; repeat for more').argParser(collectMetadata).default({}, 'none'))
    .addOption(new Option('--concurrency <n>', `files sent at once, 1 to ${MAX_CONCURRENCY} (the hub takes maxUploadsPerConnection at once)`).argParser(parseConcurrency).default(DEFAULT_CONCURRENCY))
    .option('--json', 'NDJSON on stdout even on a terminal (the default when stdout is not one)')
    .option('--quiet', 'no bars or progress lines: only errors and the summary')
    .option('--no-resume', 'start every file over instead of resuming an upload of it left unfinished')
    .option('--fingerprints <file>', 'where unfinished uploads are remembered, by file fingerprint (env: UPLOAD_HUB_FINGERPRINTS; default: ~/.upload-hub/fingerprints.json)')
    .action(async (files: string[], flags: SendFlags) => finish(await send(files, flags, env)));

  // Upload ids may start with "-" (they are base64url): an "unknown option" there is an id.
  withHub(root.command('status').description('print one upload\'s status').argument('<id>').allowUnknownOption(), false)
    .option('--json', 'JSON even on a terminal (the default when stdout is not one)')
    .action(async (id: string, flags: OutputFlags) => finish(await status(id, flags, env)));

  withHub(root.command('ls').description('list the uploads the token may see, oldest first (every page)'), false)
    .addOption(new Option('--state <state>', `only uploads in this state; repeat or comma-separate for several: ${UPLOAD_STATES.join(', ')}`).argParser(collectStates).default([], 'all'))
    .option('--json', 'one JSON status per line even on a terminal (the default when stdout is not one)')
    .action(async (flags: ListFlags) => finish(await list(flags, env)));

  withHub(root.command('cancel').description('cancel uploads on the hub (an upload that already ended keeps its state)').argument('<ids...>').allowUnknownOption(), false)
    .option('--json', 'one JSON line per id even on a terminal (the default when stdout is not one)')
    .action(async (ids: string[], flags: OutputFlags) => finish(await cancel(ids, flags, env)));

  withHub(root.command('watch').description('follow every upload the token may see, live, until Ctrl-C'), true)
    .option('--json', 'NDJSON (a snapshot, then every event) even on a terminal (the default when stdout is not one)')
    .action(async (flags: OutputFlags) => finish(await watch(flags, env)));

  root.command('token').description('make a new random token and print it with the line to add to the tokens file (TOKENS_FILE)')
    .requiredOption('--id <id>', 'the principal the token stands for (uploads record it as their owner)')
    .addOption(new Option('--role <role>', 'uploader (creates, sees its own), watcher (sees all, changes nothing) or admin (everything)').argParser(parseRole).default('uploader'))
    .action((flags: TokenFlags) => finish(token(flags)));

  for (const command of root.commands) if (command.name() !== 'serve') houseOutput(command, `upload-hub ${command.name()} --help`);
  return root;
}

/**
 * Runs one command line. Resolves with the exit code, or undefined while something keeps
 * running (serve). Throws CliError for what the user can fix; main.ts prints it.
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  // With serve as the default command, commander would read an unknown command as an argument
  // of serve ("too many arguments"); name it for what it is.
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-') && !COMMANDS.includes(first)) {
    throw usageError(`unknown command ${JSON.stringify(first)}: use ${COMMANDS.filter((name) => name !== 'help').join(', ')} (upload-hub --help)`);
  }
  let code: number | undefined = EXIT.OK;
  try {
    await program(env, (result) => (code = result)).parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // --help, --version: printed already, and not a mistake.
    if (error.exitCode === 0) return EXIT.OK;
    // A usage error, printed already by outputError.
    return EXIT.USAGE;
  }
  return code;
}
