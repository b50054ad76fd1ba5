import { silentLogger } from '@wgctl/logging';
import type { EngineStatus } from '../engine';
import { HealthSampler } from '../health';

const sample = (healthy: boolean, at: number): EngineStatus =>
  ({ healthy, reasons: healthy ? [] : ['kill-switch: not loaded'], sampledAtMs: at }) as unknown as EngineStatus;

describe('HealthSampler', () => {
  it('answers health from the cache: reads never sample; Status re-samples only when stale; concurrent refreshes share one sample', async () => {
    let now = 1_000;
    let calls = 0;
    let healthy = true;
    const verdicts: boolean[] = [];
    const engine = {
      status: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 10));
        return sample(healthy, now);
      },
    };
    const sampler = new HealthSampler({ engine, logger: silentLogger(), now: () => now, onHealth: (s) => verdicts.push(s) });
    expect(sampler.latest()).toBeUndefined();
    await Promise.all([sampler.refresh(), sampler.refresh(), sampler.current()]);
    expect(calls).toBe(1);
    for (let i = 0; i < 100; i++) sampler.latest();
    expect(calls).toBe(1);
    now += 500;
    await sampler.current(1_000);
    expect(calls).toBe(1);
    now += 600;
    healthy = false;
    const stale = await sampler.current(1_000);
    expect(calls).toBe(2);
    expect(stale.healthy).toBe(false);
    expect(verdicts).toEqual([true, false]);
  });

  it('reports not serving when sampling itself fails', async () => {
    const verdicts: [boolean, string[]][] = [];
    const sampler = new HealthSampler({ engine: { status: async () => Promise.reject(new Error('nft: command not found')) }, logger: silentLogger(), onHealth: (s, r) => verdicts.push([s, r]) });
    await expect(sampler.refresh()).rejects.toThrow('nft');
    expect(verdicts).toEqual([[false, ['status sampling failed: nft: command not found']]]);
  });
});

describe('HealthSampler after an Up or Down', () => {
  it('a Status asked while the sample after the change is pending gets that sample, never one begun before the change', async () => {
    let up = false;
    const engine = {
      status: async () => {
        const seen = up; // read at the start, like the real commands
        await new Promise((r) => setTimeout(r, 20));
        return { ...sample(seen, 1_000), up: seen } as EngineStatus;
      },
    };
    const sampler = new HealthSampler({ engine, logger: silentLogger(), now: () => 1_000 });
    const periodic = sampler.refresh(); // a periodic sample, begun before the Up finished
    up = true; // the Up completes
    void sampler.refreshAfterChange();
    const status = await sampler.current(60_000); // fresh by age, but from before the change
    expect(status.up).toBe(true);
    expect((await periodic).up).toBe(false);
  });
});
