/**
 * --allow-lan (issue #14 item 3): which subnets count as the LAN (host/lan.ts), read from a real
 * macOS `ifconfig en0` capture, and the Linux driver's nft rules for them. The darwin PF rules
 * and their verdicts are in pf-grammar.test.ts (the real pfctl grammar); the Linux rules are
 * exercised for real in tools/e2e/allow-lan.netns.test.ts.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ScriptedRunner } from '@wgctl/runner';
import { DarwinDriver, renderDarwinKillSwitch } from '../darwin';
import type { KillSwitchPolicy } from '../driver';
import { isLanSubnet, lanSubnetsOf } from '../lan';
import { killSwitchChains } from '../linux-kill-switch';

const FIXTURES = resolve(__dirname, '../../../../../../shared/fixtures/macos');

describe('lanSubnetsOf: the uplink\'s directly connected private or link-local subnets only', () => {
  it.each([
    ['RFC 1918 10/8', '10.33.16.202', 22, ['10.33.16.0/22']],
    ['RFC 1918 172.16/12', '172.20.1.9', 24, ['172.20.1.0/24']],
    ['RFC 1918 192.168/16', '192.168.1.34', 24, ['192.168.1.0/24']],
    ['RFC 3927 link-local', '169.254.7.1', 16, ['169.254.0.0/16']],
    ['a documentation café (RFC 5737)', '192.0.2.100', 25, ['192.0.2.0/25']],
    ['IPv6 link-local (scoped)', 'fe80::42e:fb9c:7a0c:781a%en0', 64, ['fe80::/64']],
    ['IPv6 ULA', 'fd12:3456:789a:1::5', 64, ['fd12:3456:789a:1::/64']],
  ])('%s is the LAN', (_what, address, prefixLength, expected) => {
    expect(lanSubnetsOf([{ address, prefixLength }])).toEqual(expected);
  });

  it.each([
    ['a public /24 a café hands out', '81.2.69.160', 24],
    ['a public IPv6 /64', '2a00:1450:4001:81c::5', 64],
    ['RFC 6598 carrier-grade NAT space', '100.64.3.7', 10],
    ['a prefix wider than its private block', '10.1.2.3', 7],
    ['a host route (no neighbours)', '192.168.1.34', 32],
  ])('%s is not', (_what, address, prefixLength) => {
    expect(lanSubnetsOf([{ address, prefixLength }])).toEqual([]);
  });

  it('isLanSubnet takes only canonical private networks (what is pasted into rules)', () => {
    expect(isLanSubnet('192.168.1.0/24')).toBe(true);
    expect(isLanSubnet('192.168.1.5/24')).toBe(false);
    expect(isLanSubnet('8.8.8.0/24')).toBe(false);
    expect(isLanSubnet('192.168.1.0/24 port 22')).toBe(false);
  });

  it('the darwin driver reads them from `ifconfig en0` (a real Ventura capture)', async () => {
    const run = new ScriptedRunner([{ argv: ['ifconfig', 'en0'], stdout: readFileSync(join(FIXTURES, 'ifconfig-en0-ventura-tp.txt'), 'utf8') }]);
    expect(await new DarwinDriver().readLanSubnets(run, 'en0')).toEqual(['10.33.16.0/22', 'fe80::/64']);
    run.assertDone();
  });

  it('the darwin driver gives [] when ifconfig fails (no LAN rather than a guess)', async () => {
    const run = new ScriptedRunner([{ argv: ['ifconfig', 'en0'], exitCode: 1, stderr: 'ifconfig: interface en0 does not exist' }]);
    expect(await new DarwinDriver().readLanSubnets(run, 'en0')).toEqual([]);
  });
});

describe('kill switch rules for --allow-lan', () => {
  const base: KillSwitchPolicy = { uplink: 'eth0', endpoints: [{ ip: '203.0.113.10', port: 51820 }], vnic: 'vnic0', vmAddress: '198.51.100.2', allowDhcp6: false, blockIpv6: true };
  const lan: KillSwitchPolicy = { ...base, allowLan: true, lanSubnets: ['192.0.2.0/25', 'fe80::/64'] };
  const texts = (policy: KillSwitchPolicy, chain: string) => killSwitchChains(policy).find((c) => c.name === chain)!.rules.map((r) => r.text);

  it('linux: DNS to the LAN rejected before the LAN passes, on the uplink only; IPv6 left out while blocked', () => {
    expect(texts(lan, 'output')).toEqual(
      expect.arrayContaining([
        'oifname "eth0" ip daddr 192.0.2.0/25 meta l4proto { tcp, udp } th dport { 53, 853 } reject with icmpx admin-prohibited',
        'oifname "eth0" ip daddr 192.0.2.0/25 accept',
        'oifname "eth0" ip daddr 224.0.0.251 udp dport 5353 accept',
      ]),
    );
    const output = texts(lan, 'output');
    expect(output.findIndex((t) => t.includes('th dport { 53, 853 }'))).toBeLessThan(output.indexOf('oifname "eth0" ip daddr 192.0.2.0/25 accept'));
    expect(output.join('\n')).not.toMatch(/fe80::\/64|ff02::fb/);
    expect(texts(lan, 'input')).toContain('iifname "eth0" ip saddr 192.0.2.0/25 accept');
    // The VM's forwarded traffic gets no LAN: only the Mac's own.
    expect(texts(lan, 'forward')).toEqual(texts(base, 'forward'));
  });

  it('linux: nothing of the LAN without --allow-lan, whatever subnets the policy carries', () => {
    expect(texts({ ...base, lanSubnets: ['192.0.2.0/25'] }, 'output').join('\n')).not.toMatch(/192\.0\.2\.0|5353/);
  });

  it('both drivers refuse a public subnet in the policy (it is pasted into rules)', () => {
    const bad = { ...lan, lanSubnets: ['81.2.69.0/24'] };
    expect(() => killSwitchChains(bad)).toThrow(/not a private or link-local network/);
    expect(() => renderDarwinKillSwitch(bad)).toThrow(/not a private or link-local network/);
  });
});
