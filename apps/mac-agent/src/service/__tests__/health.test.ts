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
