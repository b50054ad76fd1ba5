import { VmStatus } from '@wgctl/proto';
import type { VmSample } from '../engine';
import { HealthSampler } from '../health';

describe('vm-agent HealthSampler after an Up or Down', () => {
  it('a Status asked while the sample after the change is pending gets that sample, never one begun before the change', async () => {
    let phase = 'applying';
    const sampleFn = async (): Promise<VmSample> => {
      const seen = phase; // read at the start, like the real commands
      await new Promise((r) => setTimeout(r, 20));
      return { status: VmStatus.fromPartial({ macSource: seen }), serving: seen === 'up', reasons: [], sampledAtMs: Date.now() };
    };
    const sampler = new HealthSampler(sampleFn, { intervalMs: 60_000 });
    const periodic = sampler.refresh(); // a periodic sample, begun while the Up was applying
    phase = 'up';
    void sampler.refreshAfterChange();
    const status = await sampler.current();
    expect(status.status.macSource).toBe('up');
    expect((await periodic).status.macSource).toBe('applying');
  });
});
