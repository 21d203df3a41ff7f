/** The Origin rule (server/transports/origin.ts) and how its two options are read from the environment and flags. */
import { describe, expect, it } from 'vitest';
import { OptionsError, optionsFromEnv, resolveOptions } from '../../server/config.js';
import { canonicalOrigin, originAllowed, originRefusal, type OriginOptions } from '../../server/transports/origin.js';

const NONE: OriginOptions = { allowedOrigins: [], corsOrigins: [] };

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof OptionsError) return error.problems;
    throw error;
  }
  throw new Error('expected an OptionsError');
}

describe('originAllowed', () => {
  it('allows a request without Origin, and the hub\'s own origin: the host and port of Host, scheme http or https', () => {
    expect(originAllowed({ host: '127.0.0.1:3000' }, NONE)).toBe(true);
    expect(originAllowed({ origin: 'http://127.0.0.1:3000', host: '127.0.0.1:3000' }, NONE)).toBe(true);
    expect(originAllowed({ origin: 'https://hub.example', host: 'hub.example' }, NONE)).toBe(true);
    // A default port written out in Host is the same origin; names compare case-insensitively.
    expect(originAllowed({ origin: 'https://hub.example', host: 'HUB.example:443' }, NONE)).toBe(true);
    expect(originAllowed({ origin: 'http://[::1]:8080', host: '[::1]:8080' }, NONE)).toBe(true);
  });

  it('refuses another host, another port, the opaque origin null, anything malformed, and a request without Host', () => {
    const refused = [
      { origin: 'https://evil.example', host: 'hub.example' },
      { origin: 'http://127.0.0.1:3001', host: '127.0.0.1:3000' },
      { origin: 'https://hub.example', host: 'hub.example:8443' },
      { origin: 'http://localhost:3000', host: '127.0.0.1:3000' },
      { origin: 'null', host: '127.0.0.1:3000' },
      { origin: '', host: '127.0.0.1:3000' },
      { origin: 'ftp://127.0.0.1:3000', host: '127.0.0.1:3000' },
      { origin: 'http://127.0.0.1:3000/page', host: '127.0.0.1:3000' },
      { origin: 'http://127.0.0.1:3000, http://127.0.0.1:3000', host: '127.0.0.1:3000' },
      { origin: 'http://127.0.0.1:3000', host: 'evil.example@127.0.0.1:3000' },
      { origin: 'http://127.0.0.1:3000' },
    ];
    for (const headers of refused) expect(originAllowed(headers, NONE), JSON.stringify(headers)).toBe(false);
  });

  it('allows listed origins (allowedOrigins and corsOrigins alike) and, with *, every origin', () => {
    const headers = { origin: 'https://app.example', host: 'hub.example' };
    expect(originAllowed(headers, { allowedOrigins: ['https://app.example'], corsOrigins: [] })).toBe(true);
    expect(originAllowed(headers, { allowedOrigins: [], corsOrigins: ['https://app.example'] })).toBe(true);
    expect(originAllowed(headers, { allowedOrigins: ['https://other.example'], corsOrigins: [] })).toBe(false);
    expect(originAllowed({ origin: 'null', host: 'hub.example' }, { allowedOrigins: ['*'], corsOrigins: [] })).toBe(true);
    expect(originAllowed(headers, { allowedOrigins: [], corsOrigins: ['*'] })).toBe(true);
  });

  it('names the refused origin in ERR_ORIGIN_NOT_ALLOWED (403, close code 4403), cut when absurdly long', () => {
    const error = originRefusal({ origin: 'https://evil.example', host: 'hub.example' }, NONE);
    expect(error).toMatchObject({ code: 'ERR_ORIGIN_NOT_ALLOWED', status: 403, closeCode: 4403 });
    expect(error?.message).toContain('https://evil.example');
    expect(originRefusal({ origin: `https://${'a'.repeat(5000)}.example`, host: 'hub.example' }, NONE)?.message.length).toBeLessThan(400);
    expect(originRefusal({ host: 'hub.example' }, NONE)).toBeUndefined();
  });
});

describe('canonicalOrigin', () => {
  it('writes an origin as browsers send it, and refuses what is not one', () => {
    expect(canonicalOrigin('HTTPS://App.Example:443/')).toBe('https://app.example');
    expect(canonicalOrigin('http://app.example:8080')).toBe('http://app.example:8080');
    for (const text of ['app.example', 'null', 'ws://app.example', 'https://app.example/path', 'https://app.example?', 'https://app.example#x', 'https://user@app.example', '*']) {
      expect(canonicalOrigin(text), text).toBeUndefined();
    }
  });
});

describe('allowedOrigins and corsOrigins as options', () => {
  it('default to none', () => {
    expect(resolveOptions({})).toMatchObject({ allowedOrigins: [], corsOrigins: [] });
  });

  it('are comma-separated lists in ALLOWED_ORIGINS / CORS_ORIGINS and their flags, kept as canonical origins', () => {
    const options = optionsFromEnv({ ALLOWED_ORIGINS: ' https://App.example/ , http://b.example:8080,', CORS_ORIGINS: '*' });
    expect(options.allowedOrigins).toEqual(['https://app.example', 'http://b.example:8080']);
    expect(options.corsOrigins).toEqual(['*']);
    // The flag wins over the variable.
    expect(optionsFromEnv({ ALLOWED_ORIGINS: 'https://a.example' }, { 'allowed-origins': 'https://c.example' }).allowedOrigins).toEqual(['https://c.example']);
  });

  it('refuse a bad origin naming the variable or flag and the item', () => {
    const [problem] = problemsOf(() => optionsFromEnv({ ALLOWED_ORIGINS: 'https://a.example,app.example' }));
    expect(problem).toMatch(/^ALLOWED_ORIGINS="https:\/\/a\.example,app\.example": .*"app\.example" is not an origin/);
    expect(problemsOf(() => optionsFromEnv({}, { 'cors-origins': 'https://a.example/x' }))[0]).toMatch(/^--cors-origins "https:\/\/a\.example\/x": .*is not an origin/);
    expect(problemsOf(() => optionsFromEnv({ CORS_ORIGINS: '' }))[0]).toMatch(/^CORS_ORIGINS="": empty/);
    expect(problemsOf(() => resolveOptions({ allowedOrigins: ['ftp://a.example'] }))[0]).toMatch(/^allowedOrigins: .*is not an origin/);
  });
});
