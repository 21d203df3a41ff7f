import { describe, expect, it } from 'vitest';
import type { HubEvent } from '../../shared/messages.js';
import { EventBus } from '../../server/core/EventBus.js';

const log = (uploadId: string, text: string) => ({ type: 'log', uploadId, level: 'info', text }) as const;

/** Publishes as `owner` and returns the id the bus stamped the event with (publish returns nothing). */
function publish(bus: EventBus, body: ReturnType<typeof log>, owner = 'anonymous'): number {
  bus.publish(body, owner);
  return bus.lastId;
}

describe('EventBus', () => {
  it('gives events increasing ids and replays what came after an id', async () => {
    const bus = new EventBus(10, () => 1000);
    const a = publish(bus, log('u1', 'a'));
    const b = publish(bus, log('u1', 'b'));
    expect(b).toBe(a + 1);
    expect((await bus.since(a))?.map((e) => e.id)).toEqual([b]);
    expect(await bus.since(b)).toEqual([]);
  });

  it('says an id is too old once it fell out of the bounded history', async () => {
    const bus = new EventBus(3, () => 1000);
    const first = publish(bus, log('u1', '0'));
    for (let i = 1; i < 5; i++) publish(bus, log('u1', String(i)));
    expect(await bus.since(first)).toBeUndefined();
    expect((await bus.since(first + 1))?.length).toBe(3);
    // An id from the future (another process) is unknown too.
    expect(await bus.since(first + 100)).toBeUndefined();
  });

  it('tells a fresh process that an id from before its start is too old, not caught up', async () => {
    const bus = new EventBus(10, () => 1000);
    expect(await bus.since(bus.lastId)).toEqual([]);
    expect(await bus.since(bus.lastId - 5)).toBeUndefined();
  });

  it('keeps replay exact across many wraps of the ring', async () => {
    const bus = new EventBus(7, () => 1000);
    const ids = Array.from({ length: 50 }, (_, i) => publish(bus, log('u1', String(i))));
    expect((await bus.since(ids[45] as number))?.map((e) => e.id)).toEqual(ids.slice(46));
    expect((await bus.since(ids[42] as number))?.map((e) => e.id)).toEqual(ids.slice(43));
    expect(await bus.since(ids[41] as number)).toBeUndefined();
  });

  it('replays events stamped elsewhere (deliver) whose ids are not consecutive', async () => {
    const bus = new EventBus(3, () => 1000);
    const stamped = [10, 15, 40, 41, 90].map((id) => ({ ...log('u1', String(id)), id, at: 0 }) as HubEvent);
    for (const event of stamped) bus.deliver(event, 'alice');
    expect(bus.lastId).toBe(90);
    expect((await bus.since(40))?.map((e) => e.id)).toEqual([41, 90]);
    // Between two kept ids: what follows the gap.
    expect((await bus.since(60))?.map((e) => e.id)).toEqual([90]);
    expect(await bus.since(90)).toEqual([]);
    // 15 fell out of the ring: what came after it cannot be told.
    expect(await bus.since(15)).toBeUndefined();
  });

  it('delivers to subscribers of the upload and to "all" subscribers once each', () => {
    const bus = new EventBus(10);
    const seen: string[] = [];
    const one = bus.subscribe({ deliver: (e: HubEvent) => seen.push(`one:${e.uploadId}`) });
    one.add('u1');
    const all = bus.subscribe({ all: true, deliver: (e: HubEvent) => seen.push(`all:${e.uploadId}`) });
    all.add('u1');
    bus.publish(log('u1', 'x'), 'alice');
    bus.publish(log('u2', 'y'), 'alice');
    expect(seen).toEqual(['one:u1', 'all:u1', 'all:u2']);
    one.close();
    all.close();
    expect(bus.subscriberCount).toBe(0);
  });

  it('applies the accepts filter', () => {
    const bus = new EventBus(10);
    const seen: string[] = [];
    bus.subscribe({ all: true, accepts: (e) => e.uploadId !== 'secret', deliver: (e) => seen.push(e.uploadId) });
    bus.publish(log('secret', 'x'), 'alice');
    bus.publish(log('open', 'y'), 'alice');
    expect(seen).toEqual(['open']);
  });

  it("hands accepts, deliver and since's filter the owner of each event's upload", async () => {
    const bus = new EventBus(10);
    const mark = bus.lastId;
    const seen: string[] = [];
    bus.subscribe({ all: true, accepts: (_e, owner) => owner === 'alice', deliver: (e, owner) => seen.push(`${owner}:${e.uploadId}`) });
    bus.publish(log('a1', 'x'), 'alice');
    bus.publish(log('b1', 'y'), 'bob');
    expect(seen).toEqual(['alice:a1']);
    expect((await bus.since(mark, (_e, owner) => owner === 'bob'))?.map((e) => e.uploadId)).toEqual(['b1']);
  });
});
