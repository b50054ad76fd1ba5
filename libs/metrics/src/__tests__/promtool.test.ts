import { buildMetricsRegistry } from '../builder';
import { promtoolCheckMetrics } from '../testing/promtool';
import { macStatus, vmStatus } from '../testing/statuses';

describe('promtool check metrics on the builder output', () => {
  it.each([
    ['the vm-agent', { vm: vmStatus() }],
    ['the mac-agent', { mac: macStatus() }],
    ['the textfile, both agents reachable', { vm: vmStatus(), mac: macStatus(), reachable: { 'vm-agent': true, 'mac-agent': true } as const }],
    ['the textfile, the mac-agent unreachable', { vm: vmStatus(), reachable: { 'vm-agent': true, 'mac-agent': false } as const }],
  ])('%s: no findings', async (_what, sources) => {
    const text = await buildMetricsRegistry(sources).metrics();
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, output: '' });
  });

  it('promtool does find problems (the check is live): a counter without _total', () => {
    const verdict = promtoolCheckMetrics('# HELP wgctl_bad Bad.\n# TYPE wgctl_bad counter\nwgctl_bad 1\n');
    expect(verdict.status).not.toBe(0);
    expect(verdict.output).toMatch(/counter metrics should have "_total" suffix/);
  });
});
