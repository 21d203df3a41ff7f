/**
 * The browser pages: `/` (upload page) and `/dashboard` (live view of active uploads), and the
 * assets they load from `/assets/`. Their scripts are client/web/*.ts bundled by esbuild for the
 * browser. `npm run build` (run by `npm install`, and by `npm start` when the build is stale)
 * writes the bundles to dist/web, and a compiled hub serves them from there; run from source
 * (tsx, the tests), the hub bundles them in memory on first use, so they always match
 * client/web. Either way they are kept in memory for the life of the process.
 *
 * Not a wire protocol, but it rides on the hub's HTTP server like one, so it is a
 * TransportFactory: one line in app.ts's TRANSPORTS, nothing in the core.
 *
 * The browser build of the client library is served the same way: `npm run build` writes it to
 * dist/web/assets, and from source it is built on first use (its types take the TypeScript
 * compiler some seconds, so they are built apart from the script).
 *
 * Routes:
 *   GET /                         upload.html
 *   GET /dashboard                dashboard.html
 *   GET /assets/upload.js         bundle of client/web/upload.ts (+ .map)
 *   GET /assets/dashboard.js      bundle of client/web/dashboard.ts (+ .map)
 *   GET /assets/styles.css
 *   GET /assets/upload-hub.js     the client library: ESM bundle of client/index.ts (+ .map)
 *   GET /assets/upload-hub.d.ts   its types, one self-contained declaration file
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Request, Response } from 'express';
import { bundleDeclarations } from './clientTypes.js';
import type { Transport, TransportContext } from './Transport.js';

/** The page entry points under client/web, by the bundle name they are served as. */
const ENTRIES = { 'upload.js': 'upload.ts', 'dashboard.js': 'dashboard.ts' } as const;
const PAGES = { '/': 'upload.html', '/dashboard': 'dashboard.html' } as const;
const STATIC = { 'styles.css': 'text/css; charset=utf-8' } as const;
/** The client library's files under /assets/, and the subdirectory of dist/web the build writes them to. */
const LIBRARY = { script: 'upload-hub.js', map: 'upload-hub.js.map', types: 'upload-hub.d.ts' } as const;
const LIBRARY_DIR = 'assets';
/**
 * The library is public code an app on another origin may load as a module script, which
 * browsers fetch with CORS; nothing else under /assets/ is offered across origins.
 */
const LIBRARY_HEADERS = { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' } as const;

/**
 * What the pages may load: their own scripts, styles and sockets (ws: to the same origin is
 * 'self' in CSP 3). Everything the scripts put on the page goes through textContent.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface PageAsset {
  body: Buffer;
  contentType: string;
}

/**
 * client/web relative to this module: ../../client/web from the TypeScript source
 * (server/transports/pages.ts), ../../../client/web from a compiled dist/server/transports/pages.js.
 */
export function webSourceDir(): string {
  const candidates = ['../../client/web/', '../../../client/web/'].map((relative) => fileURLToPath(new URL(relative, import.meta.url)));
  return candidates.find((dir) => existsSync(join(dir, 'upload.html'))) ?? (candidates[0] as string);
}

/**
 * Where `npm run build` writes the bundles: dist/web, beside dist/server. Only a compiled hub
 * (dist/server/transports/pages.js) reads them; from source there is none, so a test never
 * serves bundles older than client/web.
 */
export function prebuiltDir(): string | undefined {
  return import.meta.url.endsWith('.js') ? fileURLToPath(new URL('../../web/', import.meta.url)) : undefined;
}

function contentTypeOf(name: string): string {
  if (name.endsWith('.d.ts')) return 'application/typescript; charset=utf-8';
  return name.endsWith('.map') ? 'application/json; charset=utf-8' : 'text/javascript; charset=utf-8';
}

/** Bundles per source directory, shared by every hub in the process (tests start many). */
const bundles = new Map<string, Promise<Map<string, PageAsset>>>();

/**
 * Bundles every page entry for the browser: ESM, ES2022, minified, with linked source maps.
 * platform 'browser' makes a `node:` import anywhere in the graph a build error, which keeps
 * client/index.ts honest.
 */
export function bundlePages(webDir: string = webSourceDir()): Promise<Map<string, PageAsset>> {
  return bundle(Object.fromEntries(Object.entries(ENTRIES).map(([out, source]) => [out.replace(/\.js$/, ''), join(webDir, source)])));
}

/**
 * One esbuild run for the browser (ESM, ES2022, minified, linked source map), kept in memory:
 * each output file by its name. Loaded on first use: hubs that never serve a page never start esbuild.
 */
async function bundle(entryPoints: Record<string, string>): Promise<Map<string, PageAsset>> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    outdir: '/assets',
    write: false,
    logLevel: 'silent',
  });
  const assets = new Map<string, PageAsset>();
  for (const file of result.outputFiles) {
    const name = file.path.slice(file.path.lastIndexOf('/') + 1);
    assets.set(name, { body: Buffer.from(file.contents), contentType: contentTypeOf(name) });
  }
  return assets;
}

/** client/index.ts, beside client/web. */
function libraryEntry(webDir: string): string {
  return join(webDir, '..', 'index.ts');
}

/**
 * The client library for browsers and apps' bundlers: client/index.ts as one ESM module, ES2022,
 * minified, with a linked source map. Its dependencies (socket.io-client) are inside.
 */
export function bundleLibrary(webDir: string = webSourceDir()): Promise<Map<string, PageAsset>> {
  return bundle({ 'upload-hub': libraryEntry(webDir) });
}

/** The library's types: one declaration file (see clientTypes.ts). */
export async function libraryTypes(webDir: string = webSourceDir()): Promise<PageAsset> {
  return { body: Buffer.from(await bundleDeclarations(libraryEntry(webDir))), contentType: contentTypeOf(LIBRARY.types) };
}

/** The build step for the library: its bundle, map and types into `outDir`/assets (dist/web/assets). */
export async function writeLibraryBundle(outDir: string | undefined = prebuiltDir(), webDir: string = webSourceDir()): Promise<string[]> {
  if (outDir === undefined) throw new Error('writeLibraryBundle needs an output directory when run from source');
  const [assets, types] = await Promise.all([bundleLibrary(webDir), libraryTypes(webDir)]);
  assets.set(LIBRARY.types, types);
  const dir = join(outDir, LIBRARY_DIR);
  await mkdir(dir, { recursive: true });
  await Promise.all([...assets].map(([name, asset]) => writeFile(join(dir, name), asset.body)));
  return [...assets.keys()].map((name) => `${LIBRARY_DIR}/${name}`);
}

/** The build step: bundles every page entry into `outDir` (dist/web), where a compiled hub finds them. */
export async function writePageBundles(outDir: string | undefined = prebuiltDir(), webDir: string = webSourceDir()): Promise<string[]> {
  if (outDir === undefined) throw new Error('writePageBundles needs an output directory when run from source');
  const assets = await bundlePages(webDir);
  await mkdir(outDir, { recursive: true });
  await Promise.all([...assets].map(([name, asset]) => writeFile(join(outDir, name), asset.body)));
  return [...assets.keys()];
}

/** The bundles `npm run build` wrote, or undefined when any is missing (a build by tsc alone). */
async function readPrebuilt(dir: string): Promise<Map<string, PageAsset> | undefined> {
  const assets = new Map<string, PageAsset>();
  for (const name of Object.keys(ENTRIES).flatMap((entry) => [entry, `${entry}.map`])) {
    try {
      assets.set(name, { body: await readFile(join(dir, name)), contentType: contentTypeOf(name) });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }
  return assets;
}

async function loadBundles(webDir: string): Promise<Map<string, PageAsset>> {
  const dir = prebuiltDir();
  return (dir === undefined ? undefined : await readPrebuilt(dir)) ?? bundlePages(webDir);
}

function cachedBundles(webDir: string): Promise<Map<string, PageAsset>> {
  let pending = bundles.get(webDir);
  if (!pending) {
    pending = loadBundles(webDir);
    // A failed build is retried on the next request (after the source is fixed).
    pending.catch(() => bundles.delete(webDir));
    bundles.set(webDir, pending);
  }
  return pending;
}

/** The library's files, prebuilt or built on first use; the script and the types apart, so the script never waits for tsc. */
const library = new Map<string, Promise<PageAsset | undefined>>();

async function readLibraryFile(name: string): Promise<PageAsset | undefined> {
  const dir = prebuiltDir();
  if (dir === undefined) return undefined;
  try {
    return { body: await readFile(join(dir, LIBRARY_DIR, name)), contentType: contentTypeOf(name) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

const libraryBundles = new Map<string, Promise<Map<string, PageAsset>>>();

/** One build of the script and its map, however many of the two are asked for. */
function cachedLibraryBundle(webDir: string): Promise<Map<string, PageAsset>> {
  let pending = libraryBundles.get(webDir);
  if (!pending) {
    pending = bundleLibrary(webDir);
    pending.catch(() => libraryBundles.delete(webDir));
    libraryBundles.set(webDir, pending);
  }
  return pending;
}

function cachedLibraryFile(webDir: string, name: string): Promise<PageAsset | undefined> {
  const key = `${webDir}\0${name}`;
  let pending = library.get(key);
  if (!pending) {
    pending = (async () => {
      const prebuilt = await readLibraryFile(name);
      if (prebuilt) return prebuilt;
      if (name === LIBRARY.types) return libraryTypes(webDir);
      return (await cachedLibraryBundle(webDir)).get(name);
    })();
    pending.catch(() => library.delete(key));
    library.set(key, pending);
  }
  return pending;
}

function send(req: Request, res: Response, asset: PageAsset, extraHeaders: Record<string, string> = {}): void {
  res.set({
    'Content-Type': asset.contentType,
    // Revalidate every time (express answers 304 on a matching ETag), so a restarted hub's new
    // bundle is picked up at once.
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    ...extraHeaders,
  });
  if (req.method === 'HEAD') res.end();
  else res.send(asset.body);
}

export function pagesTransport({ app, logger }: TransportContext): Transport {
  const webDir = webSourceDir();
  const files = new Map<string, Promise<Buffer>>();
  const readCached = (name: string) => {
    let pending = files.get(name);
    if (!pending) {
      pending = readFile(join(webDir, name));
      pending.catch(() => files.delete(name));
      files.set(name, pending);
    }
    return pending;
  };
  const fail = (res: Response, what: string, error: unknown) => {
    logger.error({ err: error, what }, 'serving a page failed');
    if (!res.headersSent) res.status(500).type('text/plain').send(`Upload Hub could not serve ${what}: ${error instanceof Error ? error.message : String(error)}`);
  };

  for (const [path, file] of Object.entries(PAGES)) {
    app.get(path, (req, res) => {
      readCached(file).then(
        (body) => send(req, res, { body, contentType: 'text/html; charset=utf-8' }, { 'Content-Security-Policy': CONTENT_SECURITY_POLICY }),
        (error: unknown) => fail(res, path, error),
      );
    });
  }

  app.get('/assets/:file', (req, res, next) => {
    const name = req.params.file;
    if (typeof name !== 'string') return next();
    if ((Object.values(LIBRARY) as string[]).includes(name)) {
      cachedLibraryFile(webDir, name).then(
        (asset) => (asset ? send(req, res, asset, LIBRARY_HEADERS) : next()),
        (error: unknown) => fail(res, name, error),
      );
      return;
    }
    if (Object.hasOwn(STATIC, name)) {
      readCached(name).then(
        (body) => send(req, res, { body, contentType: STATIC[name as keyof typeof STATIC] }),
        (error: unknown) => fail(res, name, error),
      );
      return;
    }
    const entry = name.replace(/\.map$/, '');
    if (!Object.hasOwn(ENTRIES, entry)) return next();
    cachedBundles(webDir).then(
      (assets) => {
        const asset = assets.get(name);
        if (asset) send(req, res, asset);
        else next();
      },
      (error: unknown) => fail(res, name, error),
    );
  });

  return {
    name: 'pages',
    connections: () => 0,
    // Nothing to end: page requests are plain HTTP, closed with the server.
    close: async () => {},
  };
}
