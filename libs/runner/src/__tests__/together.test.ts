import { mapTogether, readTogether } from '../together';

/** A promise and the hands to settle it. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('readTogether', () => {
  it('returns the values in the order given', async () => {
    const a = deferred<number>();
    const b = deferred<string>();
    const both = readTogether([a.promise, b.promise] as const);
    b.resolve('b');
    a.resolve(1);
    await expect(both).resolves.toEqual([1, 'b']);
  });

  it('waits for every read before throwing, and throws the first failure in the order given', async () => {
    const a = deferred<number>();
    const b = deferred<number>();
    const c = deferred<number>();
    let settled = false;
    const all = readTogether([a.promise, b.promise, c.promise]).finally(() => (settled = true));
    all.catch(() => undefined);
    c.reject(new Error('c failed'));
    b.reject(new Error('b failed'));
    await tick();
    expect(settled).toBe(false); // a still runs
    a.resolve(1);
    await expect(all).rejects.toThrow('b failed');
  });
});

describe('mapTogether', () => {
  it('starts items in order, never more than the limit at once, results in item order', async () => {
    const pending = new Map<number, ReturnType<typeof deferred<string>>>();
    const started: number[] = [];
    let inFlight = 0;
    let most = 0;
    const all = mapTogether([0, 1, 2, 3, 4], (item) => {
      started.push(item);
      inFlight++;
      most = Math.max(most, inFlight);
      const d = deferred<string>();
      pending.set(item, d);
      return d.promise.finally(() => inFlight--);
    }, { limit: 2 });
    await tick();
    expect(started).toEqual([0, 1]);
    pending.get(1)!.resolve('one');
    await tick();
    expect(started).toEqual([0, 1, 2]);
    pending.get(0)!.resolve('zero');
    pending.get(2)!.resolve('two');
    await tick();
    expect(started).toEqual([0, 1, 2, 3, 4]);
    pending.get(4)!.resolve('four');
    pending.get(3)!.resolve('three');
    await expect(all).resolves.toEqual(['zero', 'one', 'two', 'three', 'four']);
    expect(most).toBe(2);
  });

  it('without a limit starts everything at once', async () => {
    const started: number[] = [];
    const gates = [deferred<void>(), deferred<void>(), deferred<void>()];
    const all = mapTogether([0, 1, 2], async (i) => {
      started.push(i);
      await gates[i]!.promise;
      return i * 10;
    });
    await tick();
    expect(started).toEqual([0, 1, 2]);
    gates.forEach((g) => g.resolve());
    await expect(all).resolves.toEqual([0, 10, 20]);
  });

  it('finishes every item before throwing the first failure in item order', async () => {
    const finished: number[] = [];
    const all = mapTogether([0, 1, 2], async (i) => {
      await new Promise((resolve) => setTimeout(resolve, (3 - i) * 5));
      finished.push(i);
      if (i > 0) throw new Error(`item ${i} failed`);
      return i;
    }, { limit: 3 });
    await expect(all).rejects.toThrow('item 1 failed');
    expect(finished.sort()).toEqual([0, 1, 2]);
  });

  it('handles no items', async () => {
    await expect(mapTogether([], async () => 1, { limit: 4 })).resolves.toEqual([]);
  });
});
