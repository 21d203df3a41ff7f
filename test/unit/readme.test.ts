/** The README's error table and options table are checked against the code, so they cannot drift. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERROR_CODE_LIST } from '../../shared/errors.js';
import { hubOptionsSchema } from '../../server/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function tableRows(firstCell: RegExp): string[][] {
  return readme
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()))
    .filter((cells) => firstCell.test(cells[0] ?? ''));
}

describe('README', () => {
  it('starts with the install-and-start and install-and-test commands', () => {
    const blocks = [...readme.matchAll(/```sh\n([^`]+)```/g)].map((m) => (m[1] as string).trim());
    expect(blocks.slice(0, 2)).toEqual(['npm install && npm start', 'npm install && npm test']);
  });

  it('lists every error code with its HTTP status, close code and a fix', () => {
    const rows = tableRows(/^`ERR_/);
    const listed = new Map(rows.map((cells) => [(cells[0] as string).replace(/`/g, ''), cells]));
    expect([...listed.keys()].sort()).toEqual([...ERROR_CODE_LIST].sort());
    for (const code of ERROR_CODE_LIST) {
      const cells = listed.get(code) as string[];
      expect(cells[1], code).toBe(String(ERROR_CODES[code].status));
      expect(cells[2], code).toBe(String(ERROR_CODES[code].closeCode));
      expect((cells[4] ?? '').length, `${code} needs a fix`).toBeGreaterThan(10);
    }
  });

  it('lists every option with its real default', () => {
    const defaults = hubOptionsSchema.parse({}) as Record<string, unknown>;
    const rows = tableRows(/^`[a-z][A-Za-z]+`$/).filter((cells) => Object.hasOwn(defaults, (cells[0] as string).replace(/`/g, '')));
    const listed = new Map(rows.map((cells) => [(cells[0] as string).replace(/`/g, ''), (cells[1] as string).split(' ')[0]]));
    expect([...listed.keys()].sort()).toEqual(Object.keys(defaults).sort());
    for (const [name, value] of Object.entries(defaults)) expect(listed.get(name), name).toBe(String(value));
  });
});
