import { describe, expect, it } from 'vitest';
import { Backlog } from '../../server/core/Backlog.js';

/** A backlog over a fake connection: `buffered` is what the test says is unsent. */
function harness(maxBytes = 1000) {
  const state = { buffered: 0, sent: [] as string[], congestion: [] as boolean[], overflows: [] as number[] };
  const backlog = new Backlog<string>(maxBytes, () => state.buffered, {
    send: (message) => {
      state.sent.push(message);
      state.buffered += message.length;
    },
    congestion: (congested) => state.congestion.push(congested),
    overflow: (bytes) => state.overflows.push(bytes),
  });
  return { backlog, state };
}

describe('Backlog', () => {
  it('is congested past a quarter of the cap and drained again at a sixteenth, not in between', () => {
    const { backlog, state } = harness();
    backlog.send('x'.repeat(250));
    expect(backlog.congested).toBe(false);
    backlog.send('x');
    expect(backlog.congested).toBe(true);
    state.buffered = 100;
    backlog.drain();
    expect(backlog.congested).toBe(true);
    state.buffered = 62;
    backlog.drain();
    expect(backlog.congested).toBe(false);
    expect(state.congestion).toEqual([true, false]);
  });

  it('sends queued messages only while not congested, the rest on drain', () => {
    const { backlog, state } = harness();
    backlog.enqueue(['a'.repeat(200), 'b'.repeat(200), 'c'.repeat(200)]);
    expect(state.sent.map((m) => m[0])).toEqual(['a', 'b']);
    expect(backlog.queued).toBe(1);
    state.buffered = 0;
    backlog.drain();
    expect(state.sent.map((m) => m[0])).toEqual(['a', 'b', 'c']);
    expect(backlog.queued).toBe(0);
  });

  it('overflows once past the cap, then sends nothing and drops what waited', () => {
    const { backlog, state } = harness();
    backlog.enqueue(['a'.repeat(300), 'b']);
    backlog.send('c'.repeat(701));
    expect(state.overflows).toEqual([1001]);
    backlog.send('d');
    backlog.check();
    state.buffered = 0;
    backlog.drain();
    expect(state.sent.map((m) => m[0])).toEqual(['a', 'c']);
    expect(state.overflows).toHaveLength(1);
    expect(backlog.queued).toBe(0);
  });

  it('applies the rules to output written past it (check)', () => {
    const { backlog, state } = harness();
    state.buffered = 400;
    backlog.check();
    expect(backlog.congested).toBe(true);
    state.buffered = 2000;
    backlog.check();
    expect(state.overflows).toEqual([2000]);
  });
});
