/**
 * Real Chromium for the page tests: Debian's /usr/bin/chromium (installed by
 * .ci/install-chromium) driven by playwright-core. Playwright's own browser download does not
 * work on these machines, so nothing here calls `playwright install`.
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

/**
 * Under CI the browser tests always run (a missing Chromium fails them); elsewhere they run
 * whenever Chromium is installed.
 */
export const BROWSER_TESTS_ENABLED = process.env.CI === 'true' || existsSync(CHROMIUM_PATH);

export const BROWSER_SKIP_REASON = `${CHROMIUM_PATH} is missing: run .ci/install-chromium (or set CI=true to make its absence a failure)`;

export interface ChromiumSession {
  context: BrowserContext;
  /** A new tab; `errors` collects what its scripts throw uncaught. */
  newPage(): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

/** Chromium with a fresh profile in a temp dir (removed on close). */
export async function launchChromium(): Promise<ChromiumSession> {
  const userDataDir = await mkdtemp(join(tmpdir(), 'upload-hub-chromium-'));
  let context: BrowserContext;
  try {
    // A persistent context is how playwright takes a --user-data-dir of our choosing.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport: { width: 1100, height: 760 },
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      // Errors in the page's own scripts would otherwise only show as a test timing out.
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      return { page, errors };
    },
    async close() {
      await context.close().catch(() => undefined);
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy on 127.0.0.1 between a page and a hub, so a test can take the page's connection
 * away while the hub goes on (or is replaced by another on the same data directory).
 */
export interface PageProxy {
  /** http://127.0.0.1:port: open pages here, so their sockets and requests go through the proxy. */
  url: string;
  /** Closes every connection through the proxy and refuses new ones until restore(). */
  cut(): void;
  restore(): void;
  /** Forwards new connections to another port (a restarted hub). */
  retarget(port: number): void;
  close(): Promise<void>;
  /** Bytes the page sent toward the hub (every connection, headers and frames included) since the start or resetCount(). */
  readonly bytesToHub: number;
  resetCount(): void;
}

export async function startPageProxy(targetPort: number): Promise<PageProxy> {
  let target = targetPort;
  let refusing = false;
  let bytesToHub = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // A reset from either side only ends this pair; the proxy itself never throws.
    socket.on('error', () => socket.destroy());
  };
  const server = createServer((incoming) => {
    track(incoming);
    if (refusing) {
      incoming.destroy();
      return;
    }
    const outgoing = connect(target, '127.0.0.1');
    track(outgoing);
    incoming.on('data', (chunk: Buffer) => (bytesToHub += chunk.byteLength));
    incoming.pipe(outgoing);
    outgoing.pipe(incoming);
    incoming.once('close', () => outgoing.destroy());
    outgoing.once('close', () => incoming.destroy());
  });
  server.on('error', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      refusing = true;
      dropAll();
    },
    restore() {
      refusing = false;
    },
    retarget(port) {
      target = port;
    },
    async close() {
      refusing = true;
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    get bytesToHub() {
      return bytesToHub;
    },
    resetCount() {
      bytesToHub = 0;
    },
  };
}
