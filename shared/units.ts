/**
 * Numbers as people read them, for every surface that shows them (the pages, the CLI): one
 * definition of binary sizes and of a bar's percent. No `node:` imports: it runs in browsers.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 1536 -> "1.5 KiB": binary units, one decimal below 10 of a unit; `unknown` for a bad number. */
export function formatBytes(bytes: number, unknown = '—'): string {
  if (!Number.isFinite(bytes) || bytes < 0) return unknown;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 || value >= 10 ? 0 : 1)} ${UNITS[unit]}`;
}

/** The bar's text: whole percent, except that anything short of done never reads 100%. */
export function formatPercent(percent: number): string {
  const clamped = Math.min(100, Math.max(0, percent));
  return `${clamped < 100 ? Math.min(99, Math.floor(clamped)) : 100}%`;
}
