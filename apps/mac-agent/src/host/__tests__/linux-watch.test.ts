/**
 * `nft monitor` as the Linux kill-switch watch reads it: lines captured from nft 1.0.6 (a
 * table loaded, replaced the way loadKillSwitch does, a chain flushed, the table deleted,
 * someone else's table added).
 */
import { LinuxKillSwitchWatch, classifyNftMonitorLine } from '../linux-watch';

const CAPTURE = [
  'add table inet wgctl',
  'add chain inet wgctl output { type filter hook output priority filter; policy accept; }',
  'add rule inet wgctl output oifname "lo" accept comment "x"',
  '# new generation 2 by process 3172 (nft)',
  'delete rule inet wgctl output handle 2',
  '# new generation 4 by process 3175 (nft)',
  'delete chain inet wgctl output',
  'delete table inet wgctl',
  '# new generation 5 by process 3176 (nft)',
  'add table ip other',
  '# new generation 6 by process 3177 (nft)',
];

describe('nft monitor, as the kill-switch watch reads it', () => {
  it('classifies lines: changes of inet wgctl, commits with their process, the rest', () => {
    expect(classifyNftMonitorLine('delete table inet wgctl', 'wgctl')).toEqual({ kind: 'ours', line: 'delete table inet wgctl' });
    expect(classifyNftMonitorLine('flush ruleset', 'wgctl')).toMatchObject({ kind: 'ours' });
    expect(classifyNftMonitorLine('# new generation 5 by process 3176 (nft)', 'wgctl')).toEqual({ kind: 'commit', by: 'process 3176 (nft)' });
    expect(classifyNftMonitorLine('add table ip other', 'wgctl')).toEqual({ kind: 'other' });
    expect(classifyNftMonitorLine('add table inet wgctl2', 'wgctl')).toEqual({ kind: 'other' });
    expect(classifyNftMonitorLine('delete table ip wgctl', 'wgctl')).toEqual({ kind: 'other' });
  });

  it('reports one change per transaction that touched our table, with who committed it', () => {
    const watch = new LinuxKillSwitchWatch('wgctl', async () => ({ loaded: true, enabled: true, problems: [] }));
    const changes = CAPTURE.map((line) => watch.classifyMonitorLine(line)).filter((c) => c !== null);
    expect(changes).toEqual([
      { by: 'process 3172 (nft)', what: expect.stringContaining('add table inet wgctl') },
      { by: 'process 3175 (nft)', what: 'delete rule inet wgctl output handle 2' },
      { by: 'process 3176 (nft)', what: 'delete chain inet wgctl output; delete table inet wgctl' },
    ]);
  });
});
