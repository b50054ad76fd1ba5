import { BackgroundSampler } from '..';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A sample source that counts its calls and can be told to fail. */
function source() {
  const state = { calls: 0, fail: false };
  const take = async (): Promise<number> => {
    state.calls++;
    await tick(10);
    if (state.fail) throw new Error('sampling broke');
    return state.calls;
  };
  return { state, take };
}

describe('BackgroundSampler', () => {
  it('has nothing cached before the first sample; reads of the cache take no sample', async () => {
    const { state, take } = source();
    const sampler = new BackgroundSampler(take, { intervalMs: 60_000 });
    expect(sampler.latest).toBeUndefined();
    expect(await sampler.refresh()).toBe(1);
    for (let i = 0; i < 50; i++) expect(sampler.latest).toBe(1);
    expect(state.calls).toBe(1);
    expect(sampler.samples).toBe(1);
  });

  it('joins a sample being taken instead of starting another', async () => {
    const { state, take } = source();
    const sampler = new BackgroundSampler(take, { intervalMs: 60_000 });
    const results = await Promise.all([sampler.refresh(), sampler.refresh(), sampler.refresh()]);
    expect(results).toEqual([1, 1, 1]);
    expect(state.calls).toBe(1);
    expect(await sampler.refresh()).toBe(2); // once it is done, a refresh samples again
  });

  it('after a change: never joins a sample begun before it, but follows it; later callers share the fresh one', async () => {
    const { state, take } = source();
    const sampler = new BackgroundSampler(take, { intervalMs: 60_000 });
    const before = sampler.refresh(); // started before the change: may have read the old state
    const fresh = sampler.refreshAfterChange();
    expect(sampler.afterChange).toBe(fresh);
    const alsoFresh = sampler.refreshAfterChange(); // asked while the first still runs: same follow-up sample
    expect(await before).toBe(1);
    expect(await fresh).toBe(2);
    expect(await alsoFresh).toBe(2);
    expect(state.calls).toBe(2);
    expect(sampler.afterChange).toBeUndefined();
    expect(sampler.latest).toBe(2);
    // With nothing in flight it samples at once.
    expect(await sampler.refreshAfterChange()).toBe(3);
  });

  it('after a change asked while the follow-up sample already runs: one more sample after that', async () => {
    const { state, take } = source();
    const sampler = new BackgroundSampler(take, { intervalMs: 60_000 });
    const first = sampler.refreshAfterChange(); // starts sample 1 at once
    await tick(2); // sample 1 is running: it began before the next change
    const second = sampler.refreshAfterChange();
    expect(await first).toBe(1);
    expect(await second).toBe(2);
    expect(state.calls).toBe(2);
  });

  it('after a change with a delay: begins later, at once when a reader needs it, and one sample covers a further change', async () => {
    const { state, take } = source();
    const sampler = new BackgroundSampler(take, { intervalMs: 60_000 });
    const late = sampler.refreshAfterChange(40);
    await tick(20);
    expect(state.calls).toBe(0); // still waiting
    const again = sampler.refreshAfterChange(40); // a further change before it began: the same sample, the wait starts over
    expect(again).toBe(late);
    await tick(30);
    expect(state.calls).toBe(0);
    expect(await late).toBe(1);
    expect(state.calls).toBe(1);

    // A reader (Status) begins a waiting sample at once.
    const waiting = sampler.refreshAfterChange(60_000);
    expect(sampler.afterChange).toBe(waiting);
    expect(sampler.beginAfterChange()).toBe(waiting);
    expect(await waiting).toBe(2);
    expect(sampler.beginAfterChange()).toBeUndefined();

    // A change without delay while one waits: it begins now.
    const held = sampler.refreshAfterChange(60_000);
    expect(sampler.refreshAfterChange()).toBe(held);
    expect(await held).toBe(3);
  });

  it('hands each sample to onSample once it is the latest, before refresh resolves', async () => {
    const seen: [number, number | undefined][] = [];
    const sampler: BackgroundSampler<number> = new BackgroundSampler(source().take, { intervalMs: 60_000, onSample: (s) => seen.push([s, sampler.latest]) });
    await sampler.refresh();
    expect(seen).toEqual([[1, 1]]);
  });

  it('passes a failure to the caller and keeps the last good sample', async () => {
    const { state, take } = source();
    const sampler = new BackgroundSampler(take, { intervalMs: 60_000 });
    await sampler.refresh();
    state.fail = true;
    await expect(sampler.refresh()).rejects.toThrow('sampling broke');
    expect(sampler.latest).toBe(1);
    expect(sampler.samples).toBe(1);
    state.fail = false;
    expect(await sampler.refresh()).toBe(3); // a failure does not wedge the next refresh
  });

  it('turns a synchronous throw into a rejection', async () => {
    const sampler = new BackgroundSampler<number>(() => {
      throw new Error('no sampler');
    }, { intervalMs: 60_000 });
    await expect(sampler.refresh()).rejects.toThrow('no sampler');
  });

  it('samples at start and on the interval until stopped, without unhandled rejections', async () => {
    jest.useFakeTimers();
    try {
      let calls = 0;
      const sampler = new BackgroundSampler(async () => {
        calls++;
        throw new Error('sampling broke'); // the interval's failures must not surface as unhandled rejections
      }, { intervalMs: 30 });
      sampler.start();
      sampler.start(); // idempotent: one timer
      await jest.advanceTimersByTimeAsync(0);
      expect(calls).toBe(1);
      await jest.advanceTimersByTimeAsync(90);
      expect(calls).toBe(4);
      sampler.stop();
      await jest.advanceTimersByTimeAsync(300);
      expect(calls).toBe(4);
    } finally {
      jest.useRealTimers();
    }
  });
});
