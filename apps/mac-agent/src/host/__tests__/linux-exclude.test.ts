/**
 * `wgctl --exclude` in the Linux kill switch (nft table inet wgctl): out to an excluded range on
 * any interface, in from it only conntrack's established/related (replies); host prefixes
 * written bare, as `nft -j list` reads them back. Real nft runs it in tools/e2e/exclude.netns.test.ts.
 */
import { killSwitchChains, renderNftKillSwitch } from '../linux-kill-switch';
import type { KillSwitchPolicy } from '../driver';

const BASE: KillSwitchPolicy = { uplink: 'eth0', endpoints: [{ ip: '203.0.113.10', port: 51820 }], vnic: 'vnic0', vmAddress: '192.0.2.130', allowDhcp6: false, blockIpv6: true };
const rulesOf = (policy: KillSwitchPolicy, chain: 'output' | 'input' | 'forward') => killSwitchChains(policy).find((c) => c.name === chain)!.rules.map((r) => r.text);

describe('linux kill switch with excluded destinations', () => {
  const policy = { ...BASE, exclude: ['198.51.100.0/24', '203.0.113.77/32', '2001:db8:5::/48'] };

  it('accepts output to each excluded range before the final reject, naming no interface', () => {
    const output = rulesOf(policy, 'output');
    expect(output).toEqual(expect.arrayContaining(['ip daddr 198.51.100.0/24 accept', 'ip daddr 203.0.113.77 accept', 'ip6 daddr 2001:db8:5::/48 accept']));
    expect(output.indexOf('ip daddr 198.51.100.0/24 accept')).toBeLessThan(output.indexOf('counter reject with icmpx admin-prohibited'));
    expect(rulesOf(BASE, 'output')).not.toContain('ip daddr 198.51.100.0/24 accept');
  });

  it('admits from them only replies (ct state established,related), never a new flow', () => {
    const input = rulesOf(policy, 'input');
    expect(input).toEqual(expect.arrayContaining(['ip saddr 198.51.100.0/24 ct state established,related accept', 'ip saddr 203.0.113.77 ct state established,related accept']));
    expect(input.filter((r) => r.includes('198.51.100.0/24'))).toEqual(['ip saddr 198.51.100.0/24 ct state established,related accept']);
    expect(rulesOf(policy, 'forward')).toEqual(rulesOf(BASE, 'forward'));
  });

  it('refuses a CIDR that is not canonical or may not be excluded (pasted into nft syntax)', () => {
    expect(() => renderNftKillSwitch('wgctl', { ...BASE, exclude: ['198.51.100.7/24'] })).toThrow(/not a canonical CIDR/);
    expect(() => renderNftKillSwitch('wgctl', { ...BASE, exclude: ['0.0.0.0/0'] })).toThrow(/not a canonical CIDR/);
    expect(() => renderNftKillSwitch('wgctl', { ...BASE, exclude: ['198.51.100.0/24 accept; flush ruleset'] })).toThrow(/not a canonical CIDR/);
  });
});
