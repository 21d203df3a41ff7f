/**
 * One run of a piece of work per key at a time: a caller while it runs joins it (same promise,
 * same outcome) instead of starting it again; once it settles the next caller starts afresh.
 * Cancels and takeovers of one upload use it.
 */
export function joinOrStart<T>(running: Map<string, Promise<T>>, key: string, start: () => Promise<T>): Promise<T> {
  let work = running.get(key);
  if (!work) {
    work = start().finally(() => running.delete(key));
    running.set(key, work);
  }
  return work;
}
