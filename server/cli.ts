/**
 * The `upload-hub` command line, parsed with node:util parseArgs (built in; nothing to add).
 */
import { parseArgs } from 'node:util';
import { createHubServer } from './app.js';
import { optionsFromEnv } from './config.js';
import { createLogger } from './logger.js';
import { defaultPipeline } from './processors/index.js';
import { UploadClient } from '../client/node.js';

const USAGE = `Usage:
  upload-hub serve [--port N] [--host H] [--data-dir DIR] [--no-processing]
  upload-hub send FILE... [--url URL] [--token T] [--transport ws|socket.io]
  upload-hub watch [--url URL] [--token T] [--transport ws|socket.io]

Environment: PORT (3000), HOST (127.0.0.1), DATA_DIR (./data), LOG_LEVEL (info), UPLOAD_HUB_URL, UPLOAD_HUB_TOKEN.`;

export async function runCli(argv: string[]): Promise<number | undefined> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'no-processing': { type: 'boolean' },
      url: { type: 'string' },
      token: { type: 'string' },
      transport: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command = 'serve', ...files] = positionals;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const url = values.url ?? process.env.UPLOAD_HUB_URL ?? 'http://127.0.0.1:3000';
  const token = values.token ?? process.env.UPLOAD_HUB_TOKEN;
  const transport = values.transport === 'socket.io' ? 'socket.io' : 'ws';
  switch (command) {
    case 'serve':
      return serve(values);
    case 'send':
      if (files.length === 0) throw new Error(`send needs at least one FILE\n${USAGE}`);
      return send(files, { url, transport, ...(token === undefined ? {} : { token }) });
    case 'watch':
      return watch({ url, transport, ...(token === undefined ? {} : { token }) });
    default:
      throw new Error(`Unknown command ${command}\n${USAGE}`);
  }
}

async function serve(values: { port?: string; host?: string; 'data-dir'?: string; 'no-processing'?: boolean }): Promise<undefined> {
  const logger = createLogger();
  const options = optionsFromEnv();
  if (values.port !== undefined) options.port = Number(values.port);
  if (values.host !== undefined) options.host = values.host;
  if (values['data-dir'] !== undefined) options.dataDir = values['data-dir'];
  const hub = await createHubServer({ options, logger, ...(values['no-processing'] ? {} : { pipeline: defaultPipeline() }) });
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
  transport: 'ws' | 'socket.io';
}

async function send(files: string[], flags: ClientFlags): Promise<number> {
  const client = new UploadClient(flags);
  let failures = 0;
  try {
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
        process.stderr.write(`${file}: ${(error as Error & { code?: string }).code ?? 'ERROR'} ${(error as Error).message}\n`);
      }
    }));
  } finally {
    client.close();
  }
  return failures === 0 ? 0 : 1;
}

async function watch(flags: ClientFlags): Promise<undefined> {
  const client = new UploadClient(flags);
  const watcher = client.watch();
  watcher.on('snapshot', (uploads) => process.stdout.write(`${JSON.stringify({ type: 'snapshot', uploads })}\n`));
  watcher.on('event', (event) => process.stdout.write(`${JSON.stringify(event)}\n`));
  watcher.on('error', (error) => process.stderr.write(`${error.code} ${error.message}\n`));
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  client.close();
  return undefined;
}
