/**
 * The `upload-hub` command line, parsed with node:util parseArgs (built in; nothing to add).
 * `serve` takes every hub option as a flag and as an environment variable, both generated from
 * the options schema (OPTION_SPELLINGS), so a new option needs no line here.
 *
 * A mistake of the user's (a bad flag or variable, a URL without scheme, an unreachable hub)
 * is a CliError: one line per problem on stderr, no stack, exit code 1.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createHubServer } from './app.js';
import { OPTION_SPELLINGS, OptionsError, optionsFromEnv, type HubOptions } from './config.js';
import { createLogger, LOG_LEVELS, parseLogLevel, type LogLevelName } from './logger.js';
import { defaultPipeline } from './processors/index.js';
import { DataDirError } from './store/DataDirLock.js';
import { UploadClient } from '../client/node.js';
import type { TransportName } from '../client/UploadClient.js';
import { toHubError } from '../shared/errors.js';

/** A problem the user can fix; main.ts prints each line after `upload-hub: `. */
export class CliError extends Error {
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[]) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('\n'));
    this.name = 'CliError';
    this.problems = list;
  }
}

const TRANSPORTS: readonly TransportName[] = ['ws', 'socket.io'];
const DEFAULT_URL = 'http://127.0.0.1:3000';
/**
 * How long send and watch wait for the hub's first answer. An address that drops packets gives
 * no error at all, only the kernel's connect timeout (two minutes on Linux).
 */
const CONNECT_TIMEOUT_MS = 10_000;

type Flags = NonNullable<ParseArgsConfig['options']>;

const HELP: Flags = { help: { type: 'boolean', short: 'h' } };
const SERVE_FLAGS: Flags = {
  ...Object.fromEntries(OPTION_SPELLINGS.map((spelling) => [spelling.flag, { type: spelling.kind === 'boolean' ? 'boolean' : 'string' } as const])),
  'log-level': { type: 'string' },
  'no-processing': { type: 'boolean' },
  ...HELP,
};
const CLIENT_FLAGS: Flags = { url: { type: 'string' }, token: { type: 'string' }, transport: { type: 'string' }, ...HELP };

function usage(): string {
  const width = Math.max(...OPTION_SPELLINGS.map((spelling) => spelling.flag.length)) + 2;
  const options = OPTION_SPELLINGS.map((spelling) => `  --${spelling.flag.padEnd(width)}${spelling.env} (${String(spelling.defaultValue)})`);
  return `Usage:
  upload-hub serve [--OPTION VALUE]... [--log-level L] [--no-processing]
  upload-hub send FILE... [--url URL] [--token T] [--transport ws|socket.io]
  upload-hub watch [--url URL] [--token T] [--transport ws|socket.io]

serve: every hub option, as a flag or an environment variable (a flag wins), with its default:
${options.join('\n')}
  --${'log-level'.padEnd(width)}LOG_LEVEL (info): ${LOG_LEVELS.join(', ')}

send, watch: --url or UPLOAD_HUB_URL (${DEFAULT_URL}), --token or UPLOAD_HUB_TOKEN.`;
}

/** Flag values by name; no flag is declared `multiple`, so none is an array. */
type Values = Readonly<Record<string, string | boolean | undefined>>;

function parse(command: string, args: string[], options: Flags): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (error) {
    // Node's message for an unknown option goes on to explain `--`: keep its first sentence.
    const message = (error instanceof Error ? error.message : String(error)).split('. ')[0] as string;
    throw new CliError(`${command}: ${message} (upload-hub --help lists them)`);
  }
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  const named = argv[0] !== undefined && !argv[0].startsWith('-');
  const command = named ? (argv[0] as string) : 'serve';
  const args = named ? argv.slice(1) : argv;
  switch (command) {
    case 'serve': {
      const { values, positionals } = parse(command, args, SERVE_FLAGS);
      if (values.help) return help();
      if (positionals.length > 0) throw new CliError(`serve takes no arguments, got ${JSON.stringify(positionals[0])}`);
      return serve(values, env);
    }
    case 'send':
    case 'watch': {
      const { values, positionals } = parse(command, args, CLIENT_FLAGS);
      if (values.help) return help();
      const flags = clientFlags(values, env);
      if (command === 'watch') {
        if (positionals.length > 0) throw new CliError(`watch takes no arguments, got ${JSON.stringify(positionals[0])}`);
        return watch(flags);
      }
      if (positionals.length === 0) throw new CliError('send needs at least one FILE (upload-hub --help)');
      return send(positionals, flags);
    }
    default:
      throw new CliError(`unknown command ${JSON.stringify(command)}: use serve, send or watch (upload-hub --help)`);
  }
}

function help(): number {
  process.stdout.write(`${usage()}\n`);
  return 0;
}

async function serve(values: Values, env: NodeJS.ProcessEnv): Promise<undefined> {
  // Every bad variable and flag is reported at once, not one per attempt.
  const problems: string[] = [];
  let level: LogLevelName = 'info';
  try {
    const flag = values['log-level'];
    if (typeof flag === 'string') level = parseLogLevel(flag, `--log-level ${JSON.stringify(flag)}`);
    else if (env.LOG_LEVEL !== undefined) level = parseLogLevel(env.LOG_LEVEL);
  } catch (error) {
    problems.push((error as Error).message);
  }
  let options: HubOptions | undefined;
  try {
    options = optionsFromEnv(env, values);
  } catch (error) {
    if (!(error instanceof OptionsError)) throw error;
    problems.push(...error.problems);
  }
  if (problems.length > 0 || options === undefined) throw new CliError(problems);

  const logger = createLogger(level);
  let hub: Awaited<ReturnType<typeof createHubServer>>;
  try {
    hub = await createHubServer({ options, logger, ...(values['no-processing'] ? {} : { pipeline: defaultPipeline() }) });
  } catch (error) {
    if (error instanceof DataDirError) throw new CliError(error.message);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new CliError(`cannot listen on ${options.host}:${options.port}: ${(error as Error).message} (set PORT/--port or HOST/--host)`);
    }
    throw error;
  }
  logger.info({ url: hub.url, port: hub.port, dataDir: hub.hub.options.dataDir }, `listening on ${hub.url}`);
  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    void hub.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return undefined;
}

interface ClientFlags {
  url: string;
  token?: string;
  transport: TransportName;
}

function clientFlags(values: Values, env: NodeJS.ProcessEnv): ClientFlags {
  const problems: string[] = [];
  const urlFlag = values.url;
  const [url, urlLabel] = typeof urlFlag === 'string' ? [urlFlag, '--url'] : env.UPLOAD_HUB_URL !== undefined ? [env.UPLOAD_HUB_URL, 'UPLOAD_HUB_URL'] : [DEFAULT_URL, 'url'];
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  // 'localhost:3000' parses, as scheme "localhost:": only http(s) is a hub's address.
  if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') {
    problems.push(`${urlLabel} ${JSON.stringify(url)} is not a hub URL: it needs a scheme, http:// or https:// (e.g. ${DEFAULT_URL})`);
  }
  const transport = values.transport ?? 'ws';
  if (!(TRANSPORTS as readonly unknown[]).includes(transport)) {
    problems.push(`--transport ${JSON.stringify(transport)} is not a transport: use ${TRANSPORTS.join(' or ')}`);
  }
  if (problems.length > 0) throw new CliError(problems);
  const token = typeof values.token === 'string' ? values.token : env.UPLOAD_HUB_TOKEN;
  return { url, transport: transport as TransportName, ...(token === undefined ? {} : { token }) };
}

/**
 * Opens the client's connection once, bounded by CONNECT_TIMEOUT_MS, and says in one line why
 * it failed. Without this an unreachable hub would be tried for the client's whole reconnect
 * budget before anything is printed.
 */
async function reach(client: UploadClient, flags: ClientFlags): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
  });
  try {
    await Promise.race([client.ping(), timeout]);
  } catch (error) {
    const hubError = toHubError(error, 'ERR_CONNECTION_LOST');
    const what = hubError.code === 'ERR_CONNECTION_LOST' ? 'cannot reach the hub' : 'the hub refused the connection';
    throw new CliError(`${what} at ${flags.url} (${flags.transport}): ${hubError.code} ${hubError.message}`);
  } finally {
    clearTimeout(timer);
  }
}

async function send(files: string[], flags: ClientFlags): Promise<number> {
  const client = new UploadClient(flags);
  let failures = 0;
  try {
    await reach(client, flags);
    await Promise.all(files.map(async (file) => {
      const upload = client.upload(file);
      let last = -1;
      upload.on('progress', (p) => {
        const whole = Math.floor(p.percent);
        if (whole === last) return;
        last = whole;
        const where = p.phase === 'processing' ? ` ${p.stage ?? 'processing'}` : '';
        process.stderr.write(`${file}: ${whole}%${where}\n`);
      });
      try {
        const result = await upload.done;
        process.stdout.write(`${JSON.stringify({ file, ...result })}\n`);
      } catch (error) {
        failures++;
        const hubError = toHubError(error);
        process.stderr.write(`${file}: ${hubError.code} ${hubError.message}\n`);
      }
    }));
  } finally {
    client.close();
  }
  return failures === 0 ? 0 : 1;
}

/** Prints a snapshot, then every event, as NDJSON until SIGINT/SIGTERM (exit 0) or the hub is lost for good (exit 1). */
async function watch(flags: ClientFlags): Promise<number> {
  const client = new UploadClient(flags);
  try {
    await reach(client, flags);
    const watcher = client.watch();
    let started = false;
    watcher.on('snapshot', (uploads) => {
      started = true;
      process.stdout.write(`${JSON.stringify({ type: 'snapshot', uploads })}\n`);
    });
    watcher.on('event', (event) => process.stdout.write(`${JSON.stringify(event)}\n`));
    return await new Promise<number>((resolve) => {
      const end = (code: number) => {
        process.off('SIGINT', stopped);
        process.off('SIGTERM', stopped);
        resolve(code);
      };
      const stopped = () => end(0);
      process.once('SIGINT', stopped);
      process.once('SIGTERM', stopped);
      watcher.on('error', (error) => {
        process.stderr.write(`upload-hub: ${error.code} ${error.message}\n`);
        // Before the first snapshot nothing is being watched; ERR_CONNECTION_LOST after it
        // means the client gave up reconnecting. Either way nothing more will come.
        if (!started || error.code === 'ERR_CONNECTION_LOST' || error.code === 'ERR_UNAUTHORIZED') end(1);
      });
    });
  } finally {
    client.close();
  }
}
