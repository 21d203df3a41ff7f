/**
 * `upload-hub serve`: every hub option as a flag and an environment variable, both generated
 * from the options schema (OPTION_SPELLINGS in server/config.ts, with each option's description,
 * unit and default), so a new option needs no line here.
 *
 * commander only lists and reads the flags: the values go through optionsFromEnv, which knows
 * which one wins (flag, then variable, then default) and names a bad one as it was typed
 * (`PORT="abc"`, `--port "abc"`).
 */
import { Command, Option } from 'commander';
import { createHubServer } from '../app.js';
import { OPTION_SPELLINGS, OptionsError, optionsFromEnv, type HubOptions, type OptionSpelling } from '../config.js';
import { createLogger, LOG_LEVELS, parseLogLevel, type LogLevelName } from '../logger.js';
import { defaultPipeline } from '../processors/index.js';
import { DataDirError } from '../store/DataDirLock.js';
import { installShutdown } from '../shutdown.js';
import { ClusterError } from '../store/redis/ClusterError.js';
import { CliError, usageError } from './errors.js';
import { formatDefault } from './format.js';

/** How --help writes the flag: `--max-file-size <bytes>`, `--insecure`. */
export function flagOf(spelling: OptionSpelling): string {
  return spelling.kind === 'boolean' ? `--${spelling.flag}` : `--${spelling.flag} <${spelling.placeholder}>`;
}

function optionFlag(spelling: OptionSpelling): Option {
  const option = new Option(flagOf(spelling), spelling.description);
  // An option without a default (unset means off) shows none.
  if (spelling.defaultValue !== undefined) option.default(spelling.defaultValue, formatDefault(spelling.defaultValue, spelling.unit));
  // Shown in --help; the value commander reads from it is ignored (see serveOptions).
  option.envVar = spelling.env;
  return option;
}

/** `finish` is told `undefined` once the hub listens: the process goes on running it. */
export function serveCommand(env: NodeJS.ProcessEnv, finish: (code: undefined) => void): Command {
  const command = new Command('serve')
    .description('run the hub (the default command); every option is also an environment variable, and the flag wins over the variable')
    .addOption(new Option('--log-level <level>', `least level logged, as JSON lines on stdout: ${LOG_LEVELS.join(', ')}`).default('info').env('LOG_LEVEL'))
    .option('--no-processing', 'run no processing stages: an upload completes once its bytes are in');
  for (const spelling of OPTION_SPELLINGS) command.addOption(optionFlag(spelling));
  command.action(async (_options: unknown, self: Command) => {
    await serve(self, env);
    finish(undefined);
  });
  return command;
}

/** What was typed on the command line, keyed by flag name; defaults and variables are optionsFromEnv's business. */
function typedFlags(command: Command): Record<string, string | boolean | undefined> {
  const values = command.opts<Record<string, string | boolean | undefined>>();
  const flags: Record<string, string | boolean | undefined> = {};
  for (const spelling of OPTION_SPELLINGS) {
    if (command.getOptionValueSource(spelling.key) === 'cli') flags[spelling.flag] = values[spelling.key];
  }
  return flags;
}

async function serve(command: Command, env: NodeJS.ProcessEnv): Promise<void> {
  // Every bad variable and flag is reported at once, not one per attempt.
  const problems: string[] = [];
  let level: LogLevelName = 'info';
  try {
    const flag = command.getOptionValueSource('logLevel') === 'cli' ? (command.opts().logLevel as string) : undefined;
    if (flag !== undefined) level = parseLogLevel(flag, `--log-level ${JSON.stringify(flag)}`);
    else if (env.LOG_LEVEL !== undefined) level = parseLogLevel(env.LOG_LEVEL);
  } catch (error) {
    problems.push((error as Error).message);
  }
  let options: HubOptions | undefined;
  try {
    options = optionsFromEnv(env, typedFlags(command));
  } catch (error) {
    if (!(error instanceof OptionsError)) throw error;
    problems.push(...error.problems);
  }
  if (problems.length > 0 || options === undefined) throw usageError(problems);

  const logger = createLogger(level);
  const processing = command.opts().processing !== false;
  let hub: Awaited<ReturnType<typeof createHubServer>>;
  try {
    hub = await createHubServer({ options, logger, ...(processing ? { pipeline: defaultPipeline() } : {}) });
  } catch (error) {
    if (error instanceof DataDirError || error instanceof ClusterError) throw new CliError(error.message);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new CliError(`cannot listen on ${options.host}:${options.port}: ${(error as Error).message} (set PORT/--port or HOST/--host)`);
    }
    throw error;
  }
  logger.info({ url: hub.url, port: hub.port, node: hub.nodeId, dataDir: hub.hub.options.dataDir, cluster: hub.hub.registry.clustered }, `listening on ${hub.url}`);
  installShutdown(hub, logger);
}
