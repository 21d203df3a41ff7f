import { describe, expect, it } from 'vitest';
import type { HubEvent } from '../../shared/messages.js';
import { EventBus } from '../../server/core/EventBus.js';

const log = (uploadId: string, text: string) => ({ type: 'log', uploadId, level: 'info', text }) as const;

describe('EventBus', () => {
  it('gives events increasing ids and replays what came after an id', () => {
    const bus = new EventBus(10, () => 1000);
    const a = bus.publish(log('u1', 'a'));
    const b = bus.publish(log('u1', 'b'));
    expect(b.id).toBe(a.id + 1);
    expect(bus.since(a.id)?.map((e) => e.id)).toEqual([b.id]);
    expect(bus.since(b.id)).toEqual([]);
  });

  it('says an id is too old once it fell out of the bounded history', () => {
    const bus = new EventBus(3, () => 1000);
    const first = bus.publish(log('u1', '0'));
    for (let i = 1; i < 5; i++) bus.publish(log('u1', String(i)));
    expect(bus.since(first.id)).toBeUndefined();
    expect(bus.since(first.id + 1)?.length).toBe(3);
    // An id from the future (another process) is unknown too.
    expect(bus.since(first.id + 100)).toBeUndefined();
  });

  it('tells a fresh process that an id from before its start is too old, not caught up', () => {
    const bus = new EventBus(10, () => 1000);
    expect(bus.since(bus.lastId)).toEqual([]);
    expect(bus.since(bus.lastId - 5)).toBeUndefined();
  });

  it('keeps replay exact across many wraps of the ring', () => {
    const bus = new EventBus(7, () => 1000);
    const ids = Array.from({ length: 50 }, (_, i) => bus.publish(log('u1', String(i))).id);
    expect(bus.since(ids[45] as number)?.map((e) => e.id)).toEqual(ids.slice(46));
    expect(bus.since(ids[42] as number)?.map((e) => e.id)).toEqual(ids.slice(43));
    expect(bus.since(ids[41] as number)).toBeUndefined();
  });

  it('delivers to subscribers of the upload and to "all" subscribers once each', () => {
    const bus = new EventBus(10);
    const seen: string[] = [];
    const one = bus.subscribe({ deliver: (e: HubEvent) => seen.push(`one:${e.uploadId}`) });
    one.add('u1');
    const all = bus.subscribe({ all: true, deliver: (e: HubEvent) => seen.push(`all:${e.uploadId}`) });
    all.add('u1');
    bus.publish(log('u1', 'x'));
    bus.publish(log('u2', 'y'));
    expect(seen).toEqual(['one:u1', 'all:u1', 'all:u2']);
    one.close();
    all.close();
    expect(bus.subscriberCount).toBe(0);
  });

  it('applies the accepts filter', () => {
    const bus = new EventBus(10);
    const seen: string[] = [];
    bus.subscribe({ all: true, accepts: (e) => e.uploadId !== 'secret', deliver: (e) => seen.push(e.uploadId) });
    bus.publish(log('secret', 'x'));
    bus.publish(log('open', 'y'));
    expect(seen).toEqual(['open']);
  });
});
