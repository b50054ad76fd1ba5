/**
 * The agents' health sampler (moved here from apps/mac-agent/src/service/__tests__/health.test.ts
 * and apps/vm-agent/src/__tests__/health-after-change.test.ts, with the code).
 */
import { silentLogger } from '@wgctl/logging';
import { HealthSampler } from '..';

interface Sample {
  healthy: boolean;
  reasons: string[];
  sampledAtMs: number;
  /** What the sample saw when it started reading. */
  seen?: string;
}

const sample = (healthy: boolean, at: number, seen?: string): Sample => ({ healthy, reasons: healthy ? [] : ['kill-switch: not loaded'], sampledAtMs: at, seen });
const verdict = (s: Sample) => ({ serving: s.healthy, reasons: s.reasons });

describe('HealthSampler', () => {
  it('answers health from the cache: reads never sample; Status re-samples only when stale; concurrent refreshes share one sample', async () => {
    let now = 1_000;
    let calls = 0;
    let healthy = true;
    const verdicts: boolean[] = [];
    const take = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return sample(healthy, now);
    };
    const sampler = new HealthSampler({ sample: take, verdict, logger: silentLogger(), now: () => now, onVerdict: (s) => verdicts.push(s) });
    expect(sampler.latest).toBeUndefined();
    await Promise.all([sampler.refresh(), sampler.refresh(), sampler.current()]);
    expect(calls).toBe(1);
    for (let i = 0; i < 100; i++) void sampler.latest;
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

  it('without an age limit Status answers from the cache however old it is', async () => {
    let now = 1_000;
    let calls = 0;
    const sampler = new HealthSampler({ sample: async () => sample(true, now, String(++calls)), verdict, now: () => now });
    await sampler.refresh();
    now += 3_600_000;
    expect((await sampler.current()).seen).toBe('1');
    expect(calls).toBe(1);
  });

  it('tells the verdict once per change, not once per sample', async () => {
    const healthy = [true, true, false, false, true];
    const verdicts: boolean[] = [];
    const sampler = new HealthSampler({ sample: async () => sample(healthy.shift()!, 0), verdict, onVerdict: (s) => verdicts.push(s) });
    for (let i = 0; i < 5; i++) await sampler.refresh();
    expect(verdicts).toEqual([true, false, true]);
  });

  it('reports not serving when sampling itself fails', async () => {
    const verdicts: [boolean, string[]][] = [];
    const sampler = new HealthSampler({ sample: async () => Promise.reject(new Error('nft: command not found')), verdict, logger: silentLogger(), onVerdict: (s, r) => verdicts.push([s, r]) });
    await expect(sampler.refresh()).rejects.toThrow('nft');
    expect(verdicts).toEqual([[false, ['status sampling failed: nft: command not found']]]);
  });

  it('after a failed sample Status samples again instead of answering from before the failure', async () => {
    let fail = false;
    let calls = 0;
    const sampler = new HealthSampler({
      sample: async () => {
        calls++;
        if (fail) throw new Error('ip: command not found');
        return sample(true, 1_000);
      },
      verdict,
      now: () => 1_000,
    });
    await sampler.refresh();
    fail = true;
    await expect(sampler.refresh()).rejects.toThrow('ip');
    await expect(sampler.current()).rejects.toThrow('ip');
    fail = false;
    expect(await sampler.current()).toMatchObject({ healthy: true });
    expect(calls).toBe(4);
    expect(await sampler.current()).toMatchObject({ healthy: true });
    expect(calls).toBe(4); // cached again once a sample succeeded
  });
});

describe('HealthSampler after an Up or Down', () => {
  it('a Status asked while the sample after the change is pending gets that sample, never one begun before the change', async () => {
    let phase = 'up-in-progress';
    const take = async () => {
      const seen = phase; // read at the start, like the real commands
      await new Promise((r) => setTimeout(r, 20));
      return sample(seen === 'up', 1_000, seen);
    };
    const sampler = new HealthSampler({ sample: take, verdict, logger: silentLogger(), now: () => 1_000 });
    const periodic = sampler.refresh(); // a periodic sample, begun before the Up finished
    phase = 'up'; // the Up completes
    void sampler.refreshAfterChange();
    const status = await sampler.current(60_000); // fresh by age, but from before the change
    expect(status.seen).toBe('up');
    expect((await periodic).seen).toBe('up-in-progress');
  });

  it('a Status asked while the sample after the change waits (delayed) begins it and gets it', async () => {
    let phase = 'down';
    let taken = 0;
    const take = async () => {
      taken++;
      return sample(phase === 'up', 1_000, phase);
    };
    const sampler = new HealthSampler({ sample: take, verdict, logger: silentLogger(), now: () => 1_000 });
    await sampler.refresh();
    phase = 'up';
    void sampler.refreshAfterChange(60_000);
    expect(taken).toBe(1);
    const status = await sampler.current(60_000); // the cached sample is young, but from before the change
    expect(status.seen).toBe('up');
    expect(taken).toBe(2);
  });
});
