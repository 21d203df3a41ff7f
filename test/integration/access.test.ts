/**
 * Access control through every surface: tokens from a tokens file, roles (uploader, watcher,
 * admin), every route and socket request tried by an unauthenticated caller, by another
 * uploader and by a watcher — each refused with its code, and nothing of another principal's
 * uploads in any answer. Tokens re-read on SIGHUP; a revoked writer cannot complete; a hub
 * without tokens stays on loopback.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Role } from '../../server/core/auth.js';
import { newToken } from '../../server/auth/TokensFile.js';
import { createHubServer } from '../../server/app.js';
import type { UploadStatus } from '../../shared/messages.js';
import type { UploadProgress } from '../../client/UploadClient.js';
import type { RequestMessage } from '../../client/connection/ClientConnection.js';
import { capturedLogger, onCleanup, startClient, startHub, tempDir, waitFor } from '../helpers.js';
import { gatedStream, openConnection, TRANSPORT_NAMES } from '../protocolHelpers.js';

const MiB = 1024 * 1024;

/** A tokens file admitting the given principals; returns it and each one's token. */
async function tokensFile(principals: Record<string, Role>): Promise<{ path: string; tokens: Record<string, string> }> {
  const tokens: Record<string, string> = {};
  const entries = Object.entries(principals).map(([id, role]) => {
    const made = newToken(id, role);
    tokens[id] = made.token;
    return made.entry;
  });
  const path = join(await tempDir(), 'tokens.json');
  await writeFile(path, JSON.stringify(entries));
  return { path, tokens };
}

async function setup() {
  const file = await tokensFile({ alice: 'uploader', bob: 'uploader', wendy: 'watcher', root: 'admin' });
  const hub = await startHub({ options: { tokensFile: file.path } });
  const auth = (who: string): Record<string, string> => ({ authorization: `Bearer ${file.tokens[who]}` });
  const created = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { ...auth('alice'), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'alice-secret.bin', size: 1000 }) });
  expect(created.status).toBe(201);
  const secret = (await created.json()) as UploadStatus;
  return { hub, file, auth, secret };
}

async function code(response: Response): Promise<string> {
  return ((await response.json()) as { error: { code: string } }).error.code;
}

function multipart(): FormData {
  const form = new FormData();
  form.append('file', new Blob([randomBytes(100)]), 'x.bin');
  return form;
}

describe('access: HTTP routes', () => {
  it('refuses every route without a token or with a bad one (401 ERR_UNAUTHORIZED)', async () => {
    const { hub, secret } = await setup();
    const routes: Array<[string, string, { headers?: Record<string, string>; body?: string | FormData }?]> = [
      ['POST', '/api/uploads', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', size: 1 }) }],
      ['GET', '/api/uploads'],
      ['GET', `/api/uploads/${secret.id}`],
      ['DELETE', `/api/uploads/${secret.id}`],
      ['POST', '/api/uploads/multipart', { body: multipart() }],
      ['GET', '/api/events'],
      ['GET', `/api/uploads/${secret.id}/events`],
    ];
    const anonymous: Array<Record<string, string>> = [{}, { authorization: 'Bearer not-a-token' }];
    for (const headers of anonymous) {
      for (const [method, path, init] of routes) {
        const response = await fetch(`${hub.url}${path}`, { method, ...(init?.body === undefined ? {} : { body: init.body }), headers: { ...init?.headers, ...headers } });
        expect(response.status, `${method} ${path}`).toBe(401);
        const text = await response.text();
        expect(JSON.parse(text).error.code, `${method} ${path}`).toBe('ERR_UNAUTHORIZED');
        expect(text).not.toContain(secret.id);
      }
    }
    expect((await hub.hub.status({ id: 'alice' }, secret.id)).state).toBe('created');
  });

  it("another uploader gets nothing of alice's uploads: 404 to status, cancel and events, absent from lists and streams", async () => {
    const { hub, auth, secret } = await setup();
    for (const [method, path] of [['GET', `/api/uploads/${secret.id}`], ['DELETE', `/api/uploads/${secret.id}`], ['GET', `/api/uploads/${secret.id}/events`]] as const) {
      const response = await fetch(`${hub.url}${path}`, { method, headers: auth('bob') });
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(await code(response)).toBe('ERR_NOT_FOUND');
    }
    const list = await fetch(`${hub.url}/api/uploads`, { headers: auth('bob') });
    expect(await list.text()).not.toContain(secret.id);
    // The all-uploads stream's snapshot, then an event of alice's upload: bob hears neither.
    const controller = new AbortController();
    const stream = await fetch(`${hub.url}/api/events`, { headers: { ...auth('bob'), accept: 'application/x-ndjson' }, signal: controller.signal });
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"snapshot"');
    expect(first).not.toContain(secret.id);
    await fetch(`${hub.url}/api/uploads/${secret.id}`, { method: 'DELETE', headers: auth('alice') });
    const bobsOwn = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { ...auth('bob'), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bob.bin', size: 1 }) });
    const bobsId = ((await bobsOwn.json()) as UploadStatus).id;
    let seen = '';
    while (!seen.includes(bobsId)) seen += new TextDecoder().decode((await reader.read()).value);
    expect(seen).not.toContain(secret.id);
    controller.abort();
    expect((await hub.hub.status({ id: 'alice' }, secret.id)).state).toBe('cancelled');
  });

  it('a watcher sees and watches everything but creates and cancels nothing (403 ERR_FORBIDDEN); an admin may cancel', async () => {
    const { hub, auth, secret } = await setup();
    const status = await fetch(`${hub.url}/api/uploads/${secret.id}`, { headers: auth('wendy') });
    expect(status.status).toBe(200);
    expect(await (await fetch(`${hub.url}/api/uploads`, { headers: auth('wendy') })).text()).toContain(secret.id);
    const create = await fetch(`${hub.url}/api/uploads`, { method: 'POST', headers: { ...auth('wendy'), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'w', size: 1 }) });
    expect(create.status).toBe(403);
    expect(await code(create)).toBe('ERR_FORBIDDEN');
    const form = await fetch(`${hub.url}/api/uploads/multipart`, { method: 'POST', headers: auth('wendy'), body: multipart() });
    expect(form.status).toBe(403);
    expect(await code(form)).toBe('ERR_FORBIDDEN');
    const cancel = await fetch(`${hub.url}/api/uploads/${secret.id}`, { method: 'DELETE', headers: auth('wendy') });
    expect(cancel.status).toBe(403);
    expect(await code(cancel)).toBe('ERR_FORBIDDEN');
    expect((await hub.hub.list({ id: 'root', role: 'admin' })).map((upload) => upload.name)).toEqual(['alice-secret.bin']);

    const byAdmin = await fetch(`${hub.url}/api/uploads/${secret.id}`, { method: 'DELETE', headers: auth('root') });
    expect(byAdmin.status).toBe(200);
    expect(((await byAdmin.json()) as UploadStatus).state).toBe('cancelled');
  });
});

describe.each(TRANSPORT_NAMES)('access: socket requests (%s)', (transport) => {
  it('refuses a connection without a valid token', async () => {
    const { hub } = await setup();
    await expect(openConnection(transport, hub.url)).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED' });
    await expect(openConnection(transport, hub.url, 'not-a-token')).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED' });
  });

  it("another uploader: every request about alice's upload is ERR_NOT_FOUND, and watching all shows none of it", async () => {
    const { hub, file, secret } = await setup();
    const bob = await openConnection(transport, hub.url, file.tokens.bob);
    const requests: RequestMessage[] = [{ type: 'resume', uploadId: secret.id }, { type: 'cancel', uploadId: secret.id }, { type: 'watch', uploadIds: [secret.id] }];
    for (const request of requests) {
      await expect(bob.connection.request(request), request.type).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    }
    expect(await bob.connection.sendChunk(secret.id, 0, randomBytes(10))).toEqual({ type: 'error', code: 'ERR_NOT_FOUND', message: `No upload ${secret.id}`, uploadId: secret.id, chunkOffset: 0 });
    const watching = await bob.connection.request({ type: 'watch' });
    expect(JSON.stringify(watching)).not.toContain(secret.id);
    expect(await hub.hub.status({ id: 'alice' }, secret.id)).toMatchObject({ state: 'created', bytes: 0 });
  });

  it('a watcher may watch but not create, resume or cancel (ERR_FORBIDDEN); an admin may cancel', async () => {
    const { hub, file, secret } = await setup();
    const wendy = await openConnection(transport, hub.url, file.tokens.wendy);
    await expect(wendy.connection.request({ type: 'create', name: 'w.bin', size: 1 })).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' });
    await expect(wendy.connection.request({ type: 'resume', uploadId: secret.id })).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' });
    await expect(wendy.connection.request({ type: 'cancel', uploadId: secret.id })).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' });
    const watching = await wendy.connection.request({ type: 'watch', uploadIds: [secret.id] });
    expect(watching.uploads.map((upload) => upload.id)).toEqual([secret.id]);
    expect((await hub.hub.status({ id: 'alice' }, secret.id)).state).toBe('created');

    const root = await openConnection(transport, hub.url, file.tokens.root);
    const cancelled = await root.connection.request({ type: 'cancel', uploadId: secret.id });
    expect(cancelled.upload.state).toBe('cancelled');
  });
});

describe('tokens file', () => {
  it('is re-read on SIGHUP: a removed token is refused, and its writer cannot complete the upload it had started', async () => {
    const file = await tokensFile({ alice: 'uploader', bob: 'uploader' });
    const log = capturedLogger();
    const listeners = process.listenerCount('SIGHUP');
    const hub = await createHubServer({ logger: log.logger, options: { port: 0, host: '127.0.0.1', dataDir: await tempDir(), tokensFile: file.path } });
    onCleanup(async () => {
      await hub.close();
      expect(process.listenerCount('SIGHUP')).toBe(listeners);
    });

    const client = startClient({ url: hub.url, transport: 'ws', token: file.tokens.alice });
    const bytes = randomBytes(4 * MiB);
    const gated = gatedStream(bytes, 1 * MiB);
    const upload = client.upload(gated.stream, { size: bytes.byteLength, name: 'revoked.bin' });
    const done = upload.done.catch((error: unknown) => error);
    await waitFor<UploadProgress>((fn) => upload.on('progress', fn), (p) => p.bytes >= 1 * MiB);

    // Alice's token goes; bob's stays.
    await writeFile(file.path, JSON.stringify([newToken('bob', 'uploader').entry]));
    const reloaded = log.next('tokens reloaded (SIGHUP)');
    process.kill(process.pid, 'SIGHUP');
    await reloaded;
    await expect(openConnection('ws', hub.url, file.tokens.alice)).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED' });

    gated.release();
    expect(await done).toMatchObject({ code: 'ERR_UNAUTHORIZED' });
    expect(await hub.hub.list({ id: 'root', role: 'admin' })).toMatchObject([{ name: 'revoked.bin', state: 'failed', error: { code: 'ERR_UNAUTHORIZED' } }]);
    // The tokens themselves are never logged.
    expect(JSON.stringify(log.lines)).not.toContain(file.tokens.alice);
  });

  it('a bad tokens file on reload keeps the tokens in force and says why', async () => {
    const file = await tokensFile({ alice: 'uploader' });
    const log = capturedLogger();
    const hub = await createHubServer({ logger: log.logger, options: { port: 0, host: '127.0.0.1', dataDir: await tempDir(), tokensFile: file.path } });
    onCleanup(() => hub.close());
    await writeFile(file.path, '[{"id": "alice", "role": "root"}]');
    const refused = log.next('tokens not reloaded; the previous ones stay in force');
    process.kill(process.pid, 'SIGHUP');
    expect(String((await refused).err)).toMatch(/TOKENS_FILE .* is invalid at 0\.role/);
    const alice = await openConnection('ws', hub.url, file.tokens.alice);
    expect(alice.connection).toBeDefined();
  });

  it('a bad tokens file at start stops the hub with one line naming it', async () => {
    const path = join(await tempDir(), 'tokens.json');
    await writeFile(path, '{"not": "a list"}');
    await expect(startHub({ options: { tokensFile: path } })).rejects.toThrow(/^TOKENS_FILE .*tokens\.json is invalid: /);
    await expect(startHub({ options: { tokensFile: join(path, 'missing') } })).rejects.toThrow(/^TOKENS_FILE .* cannot be read: ENOTDIR/);
  });
});

describe('upload-hub token', () => {
  it('prints a new token and the tokens-file entry that admits it with its role', async () => {
    const { execFile } = await import('node:child_process');
    const run = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'server/main.ts', ...args], { cwd: new URL('../..', import.meta.url).pathname }, (error, stdout, stderr) => {
        resolve({ code: error ? (error as { code?: number }).code ?? 1 : 0, stdout, stderr });
      });
    });
    const made = await run(['token', '--id', 'wendy', '--role', 'watcher']);
    expect(made.code).toBe(0);
    const [token, entryLine] = made.stdout.trim().split('\n') as [string, string];
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.parse(entryLine)).toEqual({ id: 'wendy', role: 'watcher', tokenSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(entryLine).not.toContain(token);

    const path = join(await tempDir(), 'tokens.json');
    await writeFile(path, `[${entryLine}]`);
    const hub = await startHub({ options: { tokensFile: path } });
    const wendy = await openConnection('ws', hub.url, token);
    expect((await wendy.connection.request({ type: 'watch' })).uploads).toEqual([]);
    await expect(wendy.connection.request({ type: 'create', name: 'x', size: 1 })).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' });

    expect((await run(['token', '--id', 'x', '--role', 'root'])).code).toBe(2);
    expect((await run(['token'])).code).toBe(2);
  });
});

describe('a hub without tokens', () => {
  it('refuses to listen on a non-loopback host unless insecure', async () => {
    await expect(startHub({ options: { host: '0.0.0.0' } })).rejects.toThrow(/^HOST 0\.0\.0\.0 is not a loopback address and no tokens are configured/);
    const insecure = await startHub({ options: { host: '0.0.0.0', insecure: true } });
    expect((await fetch(`${insecure.url}/healthz`)).status).toBe(200);
    const loopback = await startHub({ options: { host: '127.0.0.1' } });
    expect((await fetch(`${loopback.url}/healthz`)).status).toBe(200);
  });
});
