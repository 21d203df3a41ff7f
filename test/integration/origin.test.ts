/**
 * The Origin check: a page on another web origin cannot drive the hub (no raw WebSocket, no
 * Socket.IO over either Engine.IO transport, no state-changing HTTP request, a multipart form
 * post included), while the hub's own pages, origins listed in allowedOrigins or corsOrigins and
 * clients that send no Origin (curl, Node) go on working. CORS for the HTTP API answers only the
 * origins in corsOrigins. Real sockets, real Chromium.
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// Not named WebSocket: the page functions below use the browser's own.
import WsClient from 'ws';
import { io as ioClient } from 'socket.io-client';
import { PROTOCOL_VERSION, type UploadStatus } from '../../shared/messages.js';
import type { HubServer } from '../../server/app.js';
import { BROWSER_SKIP_REASON, BROWSER_TESTS_ENABLED, launchChromium } from '../browserHelpers.js';
import { onCleanup, startHub } from '../helpers.js';

const EVIL = 'https://evil.example';
const APP = 'https://app.example';

if (!BROWSER_TESTS_ENABLED) console.warn(`browser part skipped: ${BROWSER_SKIP_REASON}`);

type Handshake = { opened: true } | { opened: false; status: number; body: unknown };

/** A raw WebSocket handshake: opened, or refused with the HTTP answer's status and JSON body. */
function wsHandshake(url: string, origin?: string): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const ws = new WsClient(url, origin === undefined ? {} : { headers: { Origin: origin } });
    let settled = false;
    onCleanup(() => ws.terminate());
    ws.on('error', (error) => {
      if (!settled) reject(error);
    });
    ws.on('open', () => {
      settled = true;
      resolve({ opened: true });
    });
    ws.on('unexpected-response', (_request, response) => {
      const pieces: Buffer[] = [];
      response.on('data', (piece: Buffer) => pieces.push(piece));
      response.on('error', reject);
      response.on('end', () => {
        settled = true;
        const text = Buffer.concat(pieces).toString('utf8');
        resolve({ opened: false, status: response.statusCode ?? 0, body: text === '' ? null : (JSON.parse(text) as unknown) });
      });
    });
  });
}

type SocketIoOutcome = { connected: true } | { connected: false; description: string };

/** A socket.io-client connection over one Engine.IO transport, sending `origin` as its Origin. */
function socketIoConnect(url: string, transport: 'websocket' | 'polling', origin?: string): Promise<SocketIoOutcome> {
  const socket = ioClient(url, {
    auth: { version: PROTOCOL_VERSION },
    transports: [transport],
    reconnection: false,
    forceNew: true,
    ...(origin === undefined ? {} : { extraHeaders: { Origin: origin } }),
  });
  onCleanup(() => void socket.disconnect());
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ connected: true }));
    socket.once('connect_error', (error: Error & { description?: unknown }) => {
      // Polling reports the HTTP status; websocket the `ws` error event, whose message names it.
      const cause = error.description as { message?: unknown } | number | undefined;
      const description = typeof cause === 'object' && typeof cause.message === 'string' ? cause.message : String(cause);
      resolve({ connected: false, description });
    });
  });
}

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  const json = response.headers.get('content-type')?.includes('json') === true;
  return { status: response.status, headers: response.headers, body: json ? (JSON.parse(text) as unknown) : text };
}

const wsUrl = (hub: HubServer) => `${hub.url.replace(/^http/, 'ws')}/ws`;
const rawSocketIoUrl = (hub: HubServer) => `${hub.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;

function createJson(origin?: string): RequestInit {
  return {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(origin === undefined ? {} : { Origin: origin }) },
    body: JSON.stringify({ name: 'a.bin', size: 10 }),
  };
}

function form(text: string): FormData {
  const body = new FormData();
  body.append('note', 'hello');
  body.append('file', new Blob([text], { type: 'text/plain' }), 'form.txt');
  return body;
}

/** What the hub lists and holds on disk, asked without an Origin. */
async function stored(hub: HubServer & { dataDir: string }): Promise<{ listed: number; dataFiles: string[] }> {
  const list = await call(`${hub.url}/api/uploads`);
  const files = await readdir(join(hub.dataDir, 'uploads')).catch(() => [] as string[]);
  return { listed: (list.body as { uploads: unknown[] }).uploads.length, dataFiles: files.filter((name) => name.endsWith('.data')) };
}

const refusal = { error: { code: 'ERR_ORIGIN_NOT_ALLOWED', message: expect.stringContaining(EVIL) } };

describe('Origin check on the default anonymous hub', () => {
  it('raw WebSocket: a cross-origin handshake gets 403 ERR_ORIGIN_NOT_ALLOWED before any WebSocket; same-origin and no Origin open', async () => {
    const hub = await startHub();
    expect(await wsHandshake(wsUrl(hub), EVIL)).toEqual({ opened: false, status: 403, body: refusal });
    // The opaque origin of sandboxed frames and file: pages is no origin of the hub's.
    expect(await wsHandshake(wsUrl(hub), 'null')).toMatchObject({ opened: false, status: 403 });
    // Same host, another port: another origin.
    const otherPort = new URL(hub.url);
    otherPort.port = String(hub.port === 65535 ? 1 : hub.port + 1);
    expect(await wsHandshake(wsUrl(hub), otherPort.origin)).toMatchObject({ opened: false, status: 403 });
    expect(hub.transports.find((transport) => transport.name === 'ws')?.connections()).toBe(0);

    expect(await wsHandshake(wsUrl(hub), hub.url)).toEqual({ opened: true });
    expect(await wsHandshake(wsUrl(hub))).toEqual({ opened: true });
  });

  it('Socket.IO: a cross-origin connection is refused over websocket and polling (403); same-origin and no Origin connect', async () => {
    const hub = await startHub();
    for (const transport of ['websocket', 'polling'] as const) {
      const refused = await socketIoConnect(hub.url, transport, EVIL);
      expect(refused, transport).toMatchObject({ connected: false, description: expect.stringContaining('403') });
      expect(await socketIoConnect(hub.url, transport, hub.url), transport).toEqual({ connected: true });
      expect(await socketIoConnect(hub.url, transport), transport).toEqual({ connected: true });
    }
    // The answers themselves: the upgrade gets the hub's coded 403, the polling handshake Engine.IO's.
    expect(await wsHandshake(rawSocketIoUrl(hub), EVIL)).toEqual({ opened: false, status: 403, body: refusal });
    const polling = await call(`${hub.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: EVIL } });
    expect(polling.status).toBe(403);
    expect(JSON.stringify(polling.body)).toContain('ERR_ORIGIN_NOT_ALLOWED');
  });

  it('multipart: a cross-origin form post gets 403 and stores nothing; the same form from the hub\'s origin or without Origin is stored', async () => {
    const hub = await startHub();
    const refused = await call(`${hub.url}/api/uploads/multipart`, { method: 'POST', headers: { Origin: EVIL }, body: form('from another site') });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual(refusal);
    expect(await stored(hub)).toEqual({ listed: 0, dataFiles: [] });

    for (const headers of [{ Origin: hub.url }, {}] as Record<string, string>[]) {
      const accepted = await call(`${hub.url}/api/uploads/multipart`, { method: 'POST', headers, body: form('from the hub itself') });
      expect(accepted.status).toBe(200);
    }
    expect((await stored(hub)).listed).toBe(2);
  });

  it('REST: a cross-origin create and cancel get 403 and change nothing; same-origin and no Origin work', async () => {
    const hub = await startHub();
    const refused = await call(`${hub.url}/api/uploads`, createJson(EVIL));
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual(refusal);
    expect((await stored(hub)).listed).toBe(0);

    const created = await call(`${hub.url}/api/uploads`, createJson());
    expect(created.status).toBe(201);
    const id = (created.body as UploadStatus).id;
    const cancel = await call(`${hub.url}/api/uploads/${id}`, { method: 'DELETE', headers: { Origin: EVIL } });
    expect(cancel.status).toBe(403);
    expect(cancel.body).toEqual(refusal);
    expect(((await call(`${hub.url}/api/uploads/${id}`)).body as UploadStatus).state).toBe('created');
    // Reading is not refused: without CORS the browser keeps the answer from the other page anyway.
    expect((await call(`${hub.url}/api/uploads/${id}`, { headers: { Origin: EVIL } })).status).toBe(200);

    expect((await call(`${hub.url}/api/uploads`, createJson(hub.url))).status).toBe(201);
    const own = await call(`${hub.url}/api/uploads/${id}`, { method: 'DELETE', headers: { Origin: hub.url } });
    expect(own.status).toBe(200);
    expect((own.body as UploadStatus).state).toBe('cancelled');
  });
});

describe('allowedOrigins and corsOrigins', () => {
  it('an origin in allowedOrigins may open sockets and send requests; others still may not; * allows every origin', async () => {
    const hub = await startHub({ options: { allowedOrigins: [APP] } });
    expect(await wsHandshake(wsUrl(hub), APP)).toEqual({ opened: true });
    expect(await socketIoConnect(hub.url, 'websocket', APP)).toEqual({ connected: true });
    expect(await socketIoConnect(hub.url, 'polling', APP)).toEqual({ connected: true });
    expect((await call(`${hub.url}/api/uploads`, createJson(APP))).status).toBe(201);
    expect((await call(`${hub.url}/api/uploads/multipart`, { method: 'POST', headers: { Origin: APP }, body: form('allowed') })).status).toBe(200);
    expect(await wsHandshake(wsUrl(hub), EVIL)).toMatchObject({ opened: false, status: 403 });
    expect((await call(`${hub.url}/api/uploads`, createJson(EVIL))).status).toBe(403);
    // Allowed is not CORS: no Access-Control-Allow-Origin for it.
    expect((await call(`${hub.url}/api/uploads`, createJson(APP))).headers.get('access-control-allow-origin')).toBeNull();

    const open = await startHub({ options: { allowedOrigins: ['*'] } });
    expect(await wsHandshake(wsUrl(open), EVIL)).toEqual({ opened: true });
    expect((await call(`${open.url}/api/uploads`, createJson(EVIL))).status).toBe(201);
  });

  it('an origin in corsOrigins gets its preflight answered and CORS headers on the API, and passes the Origin check; others, and every origin by default, get neither', async () => {
    const hub = await startHub({ options: { corsOrigins: [APP] } });
    const preflightHeaders = (origin: string) => ({ Origin: origin, 'Access-Control-Request-Method': 'DELETE', 'Access-Control-Request-Headers': 'authorization, content-type' });
    const preflight = await call(`${hub.url}/api/uploads/AbCdEfGhIjKlMnOpQrStUv`, { method: 'OPTIONS', headers: preflightHeaders(APP) });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(APP);
    expect(preflight.headers.get('access-control-allow-methods')).toMatch(/\bDELETE\b/);
    expect(preflight.headers.get('access-control-allow-methods')).toMatch(/\bPOST\b/);
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toMatch(/\bauthorization\b.*\bcontent-type\b|\bcontent-type\b.*\bauthorization\b/);
    expect(preflight.headers.get('vary')).toMatch(/\bOrigin\b/);

    const created = await call(`${hub.url}/api/uploads`, createJson(APP));
    expect(created.status).toBe(201);
    expect(created.headers.get('access-control-allow-origin')).toBe(APP);
    expect(created.headers.get('access-control-expose-headers')).toMatch(/\bLocation\b/);
    expect(created.headers.get('vary')).toMatch(/\bOrigin\b/);
    const listed = await call(`${hub.url}/api/uploads`, { headers: { Origin: APP } });
    expect(listed.headers.get('access-control-allow-origin')).toBe(APP);
    // A CORS origin is an allowed origin for the sockets too.
    expect(await wsHandshake(wsUrl(hub), APP)).toEqual({ opened: true });

    const evilPreflight = await call(`${hub.url}/api/uploads/AbCdEfGhIjKlMnOpQrStUv`, { method: 'OPTIONS', headers: preflightHeaders(EVIL) });
    expect(evilPreflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(evilPreflight.headers.get('access-control-allow-methods')).toBeNull();
    expect((await call(`${hub.url}/api/uploads`, { headers: { Origin: EVIL } })).headers.get('access-control-allow-origin')).toBeNull();
    expect((await call(`${hub.url}/api/uploads`, createJson(EVIL))).status).toBe(403);

    // CORS is off by default: not even a listed allowed origin gets a preflight answer.
    const plain = await startHub({ options: { allowedOrigins: [APP] } });
    const plainPreflight = await call(`${plain.url}/api/uploads`, { method: 'OPTIONS', headers: preflightHeaders(APP) });
    expect(plainPreflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(plainPreflight.headers.get('access-control-allow-methods')).toBeNull();
    expect((await call(`${plain.url}/api/uploads`, { headers: { Origin: APP } })).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('Socket.IO long-polling answers a CORS origin with Access-Control-Allow-Origin, and no other', async () => {
    const hub = await startHub({ options: { corsOrigins: [APP] } });
    const handshake = `${hub.url}/socket.io/?EIO=4&transport=polling`;
    const allowed = await fetch(handshake, { headers: { Origin: APP } });
    await allowed.text();
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(APP);
    const plain = await startHub();
    const none = await fetch(`${plain.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: plain.url } });
    await none.text();
    expect(none.status).toBe(200);
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe.runIf(BROWSER_TESTS_ENABLED)('Origin check in Chromium', () => {
  it('a page from another origin cannot open /ws or post a form to the hub; the hub\'s own page can', async () => {
    const hub = await startHub();
    const hubWs = wsUrl(hub);
    // Another origin: the same host on another port, serving one page with a form aimed at the hub.
    const page = `<!doctype html><meta charset="utf-8"><title>elsewhere</title>
<form method="post" enctype="multipart/form-data" action="${hub.url}/api/uploads/multipart">
<input type="file" name="file" id="file"><button id="send" type="submit">send</button></form>`;
    const other = createServer((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      response.end(page);
    });
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    onCleanup(() => new Promise<void>((resolve) => {
      other.close(() => resolve());
      other.closeAllConnections();
    }));
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}/`;

    const chromium = await launchChromium();
    onCleanup(() => chromium.close());
    const elsewhere = (await chromium.newPage()).page;
    expect((await elsewhere.goto(otherUrl))?.status()).toBe(200);

    const socket = await elsewhere.evaluate((url) => new Promise<string>((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => {
        ws.close();
        resolve('open');
      };
      ws.onclose = (event) => resolve(`closed ${event.code}`);
    }), hubWs);
    expect(socket).toBe('closed 1006');

    await elsewhere.setInputFiles('#file', { name: 'elsewhere.txt', mimeType: 'text/plain', buffer: Buffer.from('posted from another site') });
    const [answer] = await Promise.all([
      elsewhere.waitForResponse((response) => response.url().startsWith(`${hub.url}/api/uploads/multipart`)),
      elsewhere.click('#send'),
    ]);
    expect(answer.status()).toBe(403);
    expect(await answer.json()).toEqual({ error: { code: 'ERR_ORIGIN_NOT_ALLOWED', message: expect.stringContaining(new URL(otherUrl).origin) } });
    expect(await stored(hub)).toEqual({ listed: 0, dataFiles: [] });

    // The hub's own page: its socket goes live, and a form post from it is stored.
    const { page: own, errors } = await chromium.newPage();
    expect((await own.goto(`${hub.url}/`))?.status()).toBe(200);
    await own.locator('body[data-ready="true"]').waitFor();
    await own.locator('#connection[data-connection="live"]').waitFor();
    const status = await own.evaluate(async () => {
      const body = new FormData();
      body.append('file', new Blob(['posted from the hub\'s own page']), 'own.txt');
      return (await fetch('/api/uploads/multipart', { method: 'POST', body })).status;
    });
    expect(status).toBe(200);
    expect((await stored(hub)).listed).toBe(1);
    expect(errors).toEqual([]);
  });
});
