import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, DryRunRunner, RuleRunner, ScriptedRunner } from '@wgctl/runner';
import type { KillSwitchPolicy } from '../driver';
import { LinuxDriver, renderResolvConf } from '../linux';
import { killSwitchChains, renderNftKillSwitch } from '../linux-kill-switch';

const fixtures = join(__dirname, '../../../../../libs/parsers/src/linux/__fixtures__');
const fixture = (name: string) => readFileSync(join(fixtures, name), 'utf8');

const policy: KillSwitchPolicy = {
  uplink: 'wtmx0',
  endpoints: [{ ip: '203.0.113.10', port: 51820 }],
  vnic: 'wtmv0',
  vmAddress: '192.0.2.130',
  allowDhcp6: false,
  blockIpv6: true,
};

const linkJson = (ifname: string, v4: string, v6?: string) => ({
  ifindex: 3,
  ifname,
  flags: ['UP'],
  addr_info: [
    { family: 'inet', local: v4, prefixlen: 24, scope: 'global' },
    ...(v6 ? [{ family: 'inet6', local: v6, prefixlen: 64, scope: 'global' }] : []),
  ],
});
/** `ip -j addr show`: every interface (discovery picks its own out of them). */
const ALL_ADDRESSES = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP'], addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }] },
  linkJson('wtmx0', '192.0.2.2'),
  linkJson('wtmv0', '192.0.2.129', '2001:db8:3::1'),
]);

describe('LinuxDriver discovery', () => {
  it('finds the uplink from the default route with the lowest metric, plus its IPv6 gateway', async () => {
    const run = new ScriptedRunner([
      { argv: ['ip', '-j', 'route', 'show', 'table', 'main'], stdout: fixture('ip-route-main.json') },
      { argv: ['ip', '-j', '-6', 'route', 'show', 'table', 'main'], stdout: fixture('ip-6-route-main.json') },
      { argv: ['ip', '-j', 'addr', 'show'], stdout: ALL_ADDRESSES },
    ]);
    await expect(new LinuxDriver().discoverUplink(run)).resolves.toEqual({ interface: 'wtmx0', gateway: '192.0.2.1', gateway6: 'fe80::1', address: '192.0.2.2' });
    run.assertDone();
  });

  it('reports no uplink when there is no usable default route', async () => {
    // Both tables and the addresses are read at once; with no IPv4 default the rest is not looked at.
    const run = new ScriptedRunner([
      { argv: ['ip', '-j', 'route', 'show', 'table', 'main'], stdout: '[{"dst":"192.0.2.0/26","dev":"a","flags":[]}]' },
      { argv: ['ip', '-j', '-6', 'route', 'show', 'table', 'main'], stdout: '[]' },
      { argv: ['ip', '-j', 'addr', 'show'], stdout: ALL_ADDRESSES },
    ]);
    await expect(new LinuxDriver().discoverUplink(run)).resolves.toBeNull();
    run.assertDone();
  });

  it('finds the vnic from table main and the addresses alone (longest prefix, then metric), and refuses what is no VM', async () => {
    const table = JSON.stringify([
      { dst: 'default', gateway: '192.0.2.1', dev: 'wtmx0', flags: [] },
      // Our split route via the VM covers it too: the connected /24 is longer.
      { dst: '0.0.0.0/1', gateway: '192.0.2.130', dev: 'wtmv0', flags: [] },
      { dst: '192.0.2.0/24', dev: 'wtmx0', protocol: 'kernel', scope: 'link', prefsrc: '192.0.2.2', flags: [] },
      { dst: '192.0.2.128/26', dev: 'wtmv0', protocol: 'kernel', scope: 'link', prefsrc: '192.0.2.129', flags: [] },
      { dst: '198.51.100.0/24', flags: [], nexthops: [{ gateway: '192.0.2.3', dev: 'wtmx0', weight: 1, flags: [] }] },
      { type: 'unreachable', dst: '198.51.100.128/25', flags: [] },
      { dst: '203.0.113.0/24', dev: 'wtmv0', metric: 200, flags: [] },
      { dst: '203.0.113.0/24', gateway: '192.0.2.1', dev: 'wtmx0', metric: 100, flags: [] },
    ]);
    const reads = (n: number) =>
      Array.from({ length: n }, () => [
        { argv: ['ip', '-j', 'route', 'show', 'table', 'main'], stdout: table },
        { argv: ['ip', '-j', 'addr', 'show'], stdout: ALL_ADDRESSES },
      ]).flat();
    // No `ip route get`: the two reads discoverUplink makes too, nothing else.
    const run = new ScriptedRunner(reads(5));
    const driver = new LinuxDriver();
    await expect(driver.discoverVnic(run, '192.0.2.130')).resolves.toEqual({ interface: 'wtmv0', address: '192.0.2.129', address6: '2001:db8:3::1' });
    await expect(driver.discoverVnic(run, '198.51.100.7')).rejects.toThrow(/not on a directly connected network \(it is reached via 192.0.2.3 dev wtmx0\)/);
    await expect(driver.discoverVnic(run, '198.51.100.200')).rejects.toThrow(/no route to the VM address 198.51.100.200/);
    await expect(driver.discoverVnic(run, '203.0.113.9')).rejects.toThrow(/reached via 192.0.2.1 dev wtmx0/);
    await expect(driver.discoverVnic(run, '192.0.2.129')).rejects.toThrow(/192.0.2.129 is an address of this host \(on wtmv0\)/);
    run.assertDone();
  });
});

describe('LinuxDriver routes', () => {
  const pin = { destination: '203.0.113.10/32', gateway: '192.0.2.1', interface: 'wtmx0' };

  it('reads routes back with the routing-table line as evidence', async () => {
    const run = new RuleRunner([{ match: (a) => a.join(' ') === 'ip -j route show table main', reply: { stdout: fixture('ip-route-main.json') } }]);
    const [present, absent] = await new LinuxDriver().readRoutes(run, [pin, { destination: '128.0.0.0/1', gateway: '192.0.2.130', interface: 'wtmv0' }]);
    expect(present).toMatchObject({ present: true, evidence: '203.0.113.10 via 192.0.2.1 dev wtmx0' });
    expect(absent).toMatchObject({ present: false, evidence: '' });
  });

  it('adds with `ip route add` and treats "File exists" as success only when it is our route', async () => {
    const driver = new LinuxDriver();
    const ours = new ScriptedRunner([
      { argv: ['ip', 'route', 'add', '203.0.113.10/32', 'via', '192.0.2.1', 'dev', 'wtmx0'], exitCode: 2, stderr: 'RTNETLINK answers: File exists\n' },
      { argv: ['ip', '-j', 'route', 'show', 'table', 'main'], stdout: fixture('ip-route-main.json') },
    ]);
    await driver.addRoute(ours, pin);
    ours.assertDone();
    const theirs = new ScriptedRunner([
      { argv: ['ip', 'route', 'add', '0.0.0.0/1', 'via', '192.0.2.130', 'dev', 'wtmv0'], exitCode: 2, stderr: 'RTNETLINK answers: File exists\n' },
      { argv: ['ip', '-j', 'route', 'show', 'table', 'main'], stdout: fixture('ip-route-main.json') },
    ]);
    await expect(driver.addRoute(theirs, { destination: '0.0.0.0/1', gateway: '192.0.2.130', interface: 'wtmv0' })).rejects.toThrow(
      /a different route is in the way: 0.0.0.0\/1 via 192.0.2.1 dev wtmx0/,
    );
    const other = new ScriptedRunner([{ argv: ['ip', '-6', 'route', 'add', '::/1', 'via', '2001:db8:3::2', 'dev', 'wtmv0'], exitCode: 2, stderr: 'Error: Nexthop has invalid gateway.' }]);
    await expect(driver.addRoute(other, { destination: '::/1', gateway: '2001:db8:3::2', interface: 'wtmv0' })).rejects.toThrow(CommandError);
  });

  it('deletes exactly the given route, tolerates "not there", and never deletes a default route', async () => {
    const driver = new LinuxDriver();
    const run = new ScriptedRunner([
      { argv: ['ip', 'route', 'del', '203.0.113.10/32', 'via', '192.0.2.1', 'dev', 'wtmx0'], exitCode: 2, stderr: 'RTNETLINK answers: No such process\n' },
      { argv: ['ip', 'route', 'del', '203.0.113.10/32', 'via', '192.0.2.1', 'dev', 'wtmx0'], exitCode: 1, stderr: 'Cannot find device "wtmx0"\n' },
    ]);
    await driver.deleteRoute(run, pin);
    await driver.deleteRoute(run, pin);
    run.assertDone();
    await expect(driver.deleteRoute(run, { destination: '0.0.0.0/0', gateway: '192.0.2.1' })).rejects.toThrow(/refusing/);
    await expect(driver.deleteRoute(run, { destination: '::/0', gateway: 'fe80::1' })).rejects.toThrow(/refusing/);
  });
});

describe('LinuxDriver kill switch', () => {
  it('renders one table whose output, input and forward chains hold on every interface but lo and the vnic', () => {
    const text = renderNftKillSwitch('wgctl', policy);
    expect(text).toContain('table inet wgctl {');
    expect(text).toContain('type filter hook forward priority filter; policy accept;');
    expect(text).toContain('\t\tip daddr 203.0.113.10 udp dport 51820 accept comment "wireguard endpoint 203.0.113.10:51820"');
    expect(text).not.toContain('icmpv6'); // IPv6 unused: not even neighbour discovery passes
    // No rule depends on the uplink: a second interface (or the one we roamed from) meets the same rules.
    expect(text).not.toContain('wtmx0');
    expect(renderNftKillSwitch('wgctl', { ...policy, uplink: 'wtmx9' })).toBe(text);
    const chains = killSwitchChains({ ...policy, allowDhcp6: true, endpoints: [...policy.endpoints, { ip: '2001:db8::10', port: 443 }] });
    const rules = (name: string) => chains.find((c) => c.name === name)!.rules.map((r) => r.text);
    expect(rules('output')).toEqual([
      'oifname "lo" accept',
      'oifname "wtmv0" accept',
      // DHCP, DHCPv6 and ND no wider than their protocols: link-scoped destinations, ND at hop limit 255
      'ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
      'ip6 saddr fe80::/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 accept',
      'ip6 daddr ff02::2 ip6 hoplimit 255 icmpv6 type nd-router-solicit accept',
      'ip6 daddr ff02::1:ff00:0/104 ip6 hoplimit 255 icmpv6 type nd-neighbor-solicit accept',
      'ip6 daddr fe80::/10 ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept',
      'ip6 daddr ff02::1 ip6 hoplimit 255 icmpv6 type nd-neighbor-advert accept',
      'ip daddr 203.0.113.10 udp dport 51820 accept',
      'ip6 daddr 2001:db8::10 udp dport 443 accept',
      'counter reject with icmpx admin-prohibited',
    ]);
    expect(rules('input')).toEqual([
      'iifname "lo" accept',
      'iifname "wtmv0" accept',
      'meta nfproto ipv4 udp sport 67 udp dport 68 accept',
      'ip6 saddr fe80::/10 ip6 daddr fe80::/10 udp sport 547 udp dport 546 accept',
      'ip6 saddr fe80::/10 ip6 hoplimit 255 icmpv6 type { nd-router-advert, nd-redirect } accept',
      'ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept',
      'ip saddr 203.0.113.10 udp sport 51820 accept',
      'ip6 saddr 2001:db8::10 udp sport 443 accept',
      'meta l4proto { icmp, ipv6-icmp } ct state related accept',
      'counter drop',
    ]);
    // Forwarded: the VM may send only UDP to a server, whatever interface it would leave by;
    // towards the VM only replies and UDP from a server; nothing else is forwarded at all.
    expect(rules('forward')).toEqual([
      'iifname "wtmv0" oifname "wtmv0" drop',
      'iifname "wtmv0" ip daddr 203.0.113.10 udp dport 51820 accept',
      'iifname "wtmv0" ip6 daddr 2001:db8::10 udp dport 443 accept',
      'iifname "wtmv0" counter drop',
      'oifname "wtmv0" ct state established,related accept',
      'oifname "wtmv0" ip saddr 203.0.113.10 udp sport 51820 accept',
      'oifname "wtmv0" ip6 saddr 2001:db8::10 udp sport 443 accept',
      'oifname "wtmv0" counter drop',
      'counter drop',
    ]);
    // Without a vnic (driver used alone) forwarding is closed the same way, minus the VM rules.
    expect(killSwitchChains({ ...policy, vnic: undefined }).find((c) => c.name === 'forward')!.rules.map((r) => r.text)).toEqual([
      'ip daddr 203.0.113.10 udp dport 51820 accept',
      'ip saddr 203.0.113.10 udp sport 51820 accept',
      'meta l4proto { icmp, ipv6-icmp } ct state related accept',
      'counter drop',
    ]);
  });

  it('lets DHCP unicast to the lease server only when the policy names one (RENEWING, RFC 2131 §4.4.5), else the broadcast alone', () => {
    const dhcpOut = (p: typeof policy) => killSwitchChains(p).find((c) => c.name === 'output')!.rules.map((r) => r.text).filter((t) => t.includes('dport 67'));
    expect(dhcpOut(policy)).toEqual(['ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept']);
    expect(dhcpOut({ ...policy, dhcpServer: '192.0.2.1' })).toEqual([
      'ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
      'ip daddr 192.0.2.1 udp sport 68 udp dport 67 accept',
    ]);
    // No rule lets port 68/546 or an ND type out without a destination (the exfiltration channel of issue #15).
    const output = killSwitchChains({ ...policy, allowDhcp6: true, dhcpServer: '192.0.2.1' }).find((c) => c.name === 'output')!.rules.map((r) => r.text);
    const exceptions = output.filter((t) => /sport (68|546)|icmpv6 type/.test(t));
    expect(exceptions).toHaveLength(7);
    expect(() => killSwitchChains({ ...policy, dhcpServer: '192.0.2.1 accept; oifname "wtmx0"' })).toThrow(/DHCP server/);
    for (const rule of exceptions) expect(rule).toMatch(/ip6? daddr /);
  });

  it('loads atomically (add; delete; table) in one batch, with no separate nft -c (nft -f is one transaction)', async () => {
    const batch = `add table inet wgctl\ndelete table inet wgctl\n${renderNftKillSwitch('wgctl', policy)}`;
    const run = new ScriptedRunner([
      { argv: ['nft', '-f', '-'], input: batch },
      { argv: ['nft', '-f', '-'], input: 'add table inet wgctl\ndelete table inet wgctl\n' },
    ]);
    const driver = new LinuxDriver();
    await expect(driver.loadKillSwitch(run, policy)).resolves.toEqual({ nftTable: 'inet wgctl' });
    await driver.unloadKillSwitch(run, {});
    run.assertDone();
  });

  it('a dry run still validates the ruleset (nft -c is read-only) but loads nothing', async () => {
    const reads = new RuleRunner([{ match: (a) => a.join(' ') === 'nft -c -f -', reply: {} }]);
    const dry = new DryRunRunner(reads);
    await new LinuxDriver().loadKillSwitch(dry, policy);
    expect(reads.calls).toEqual([['nft', '-c', '-f', '-']]);
    expect(dry.recorded.map((r) => r.argv.join(' '))).toEqual(['nft -f -']);
  });

  it('reads the table back and names what differs from the policy', async () => {
    const driver = new LinuxDriver();
    const missing = new ScriptedRunner([{ argv: ['nft', '-j', 'list', 'table', 'inet', 'wgctl'], exitCode: 1, stderr: 'Error: No such file or directory\nlist table inet wgctl\n' }]);
    await expect(driver.readKillSwitch(missing, policy)).resolves.toMatchObject({ loaded: false, problems: ['nftables table inet wgctl is not loaded'] });
    // The fixture table was written for a different policy (no forward chain, other rules).
    const other = new ScriptedRunner([{ argv: ['nft', '-j', 'list', 'table', 'inet', 'wgctl'], stdout: fixture('nft-list-table.json') }]);
    const status = await driver.readKillSwitch(other, policy);
    expect(status).toMatchObject({ loaded: true, enabled: false, interface: 'wtmx0' });
    expect(status.rules[0]).toBe('output: oifname "wtmx0" udp sport 68 udp dport 67 accept');
    expect(status.problems).toEqual(
      expect.arrayContaining([
        'chain forward is missing',
        expect.stringMatching(/^chain output differs from the policy: .*unexpected: oifname "wtmx0" meta nfproto ipv6 udp sport 546 udp dport 547 accept/),
        'not every base chain (output, input, forward) is hooked',
      ]),
    );
  });
});

describe('LinuxDriver DNS (resolv.conf)', () => {
  const path = '/tmp/wtm-test/resolv.conf';

  it('snapshots the file, replaces it atomically keeping search/options, and restores it exactly', async () => {
    const original = '# from DHCP\nnameserver 192.0.2.1\nsearch lan.example\noptions edns0\n';
    const driver = new LinuxDriver({ resolvConfPath: path });
    const run = new ScriptedRunner([
      { argv: ['readlink', path], exitCode: 1 },
      { argv: ['cat', path], stdout: original },
      { argv: ['tee', `${path}.wgctl-tmp`], input: renderResolvConf(['198.51.100.53'], original) },
      { argv: ['mv', '-f', '-T', `${path}.wgctl-tmp`, path] },
      { argv: ['tee', `${path}.wgctl-tmp`], input: original },
      { argv: ['mv', '-f', '-T', `${path}.wgctl-tmp`, path] },
    ]);
    const snapshot = await driver.readDns(run);
    expect(snapshot).toEqual({ services: [{ name: path, servers: ['192.0.2.1'], searchDomains: ['lan.example'] }], resolvConf: original });
    await driver.setDns(run, ['198.51.100.53'], snapshot);
    await driver.restoreDns(run, snapshot);
    run.assertDone();
    expect(renderResolvConf(['198.51.100.53'], original)).toMatch(/nameserver 198.51.100.53\nsearch lan.example\noptions edns0\n$/);
  });

  it('remembers "no file" and a symlink, and restores those too', async () => {
    const driver = new LinuxDriver({ resolvConfPath: path });
    const run = new ScriptedRunner([
      { argv: ['readlink', path], exitCode: 1 },
      { argv: ['cat', path], exitCode: 1, stderr: `cat: ${path}: No such file or directory\n` },
      { argv: ['rm', '-f', path] },
      { argv: ['readlink', path], stdout: '../run/systemd/resolve/stub-resolv.conf\n' },
      { argv: ['cat', path], stdout: 'nameserver 127.0.0.53\n' },
      { argv: ['ln', '-sfn', '../run/systemd/resolve/stub-resolv.conf', `${path}.wgctl-tmp`] },
      { argv: ['mv', '-f', '-T', `${path}.wgctl-tmp`, path] },
    ]);
    const none = await driver.readDns(run);
    expect(none).toEqual({ services: [{ name: path, servers: [] }], resolvConfMissing: true });
    await driver.restoreDns(run, none);
    const link = await driver.readDns(run);
    expect(link.resolvConfLink).toBe('../run/systemd/resolve/stub-resolv.conf');
    expect(link.resolvConf).toBeUndefined();
    await driver.restoreDns(run, link);
    run.assertDone();
  });
});

describe('LinuxDriver DNS (resolvectl)', () => {
  it('sets DNS on the VM-facing link and reverts that link on restore', async () => {
    const driver = new LinuxDriver({ dnsMode: 'resolvectl' });
    const run = new ScriptedRunner([
      { argv: ['resolvectl', 'dns'], stdout: 'Global:\nLink 2 (eth0): 192.0.2.1\nLink 3 (wtmv0):\n' },
      { argv: ['resolvectl', 'domain'], stdout: 'Global:\nLink 2 (eth0): lan.example\nLink 3 (wtmv0):\n' },
      { argv: ['resolvectl', 'dns', 'wtmv0', '198.51.100.53'] },
      { argv: ['resolvectl', 'domain', 'wtmv0', '~.'] },
      { argv: ['resolvectl', 'default-route', 'wtmv0', 'yes'] },
      { argv: ['resolvectl', 'revert', 'wtmv0'] },
    ]);
    const snapshot = await driver.readDns(run, { vnic: 'wtmv0' });
    expect(snapshot.resolvectlLink).toBe('wtmv0');
    expect(snapshot.services[1]).toEqual({ name: 'eth0', servers: ['192.0.2.1'], searchDomains: ['lan.example'] });
    await driver.setDns(run, ['198.51.100.53'], snapshot, { vnic: 'wtmv0' });
    await driver.restoreDns(run, snapshot);
    run.assertDone();
  });
});

describe('LinuxDriver monitor', () => {
  const driver = new LinuxDriver();
  it('watches with one-line labelled ip monitor output', () => {
    expect(driver.monitorArgv()).toEqual(['ip', '-o', 'monitor', 'label', 'route', 'link', 'address']);
  });

  it('classifies default-route and link events; own and local routes are "other"', () => {
    expect(driver.classifyMonitorEvent('[ROUTE]Deleted default via 192.0.2.1 dev wtmx0 ')).toMatchObject({ kind: 'default-changed', destination: '0.0.0.0/0', deleted: true });
    expect(driver.classifyMonitorEvent('[ROUTE]default via 2001:db8:a::1 dev wtmx0 metric 1024 pref medium')).toMatchObject({ kind: 'default-changed', destination: '::/0' });
    expect(driver.classifyMonitorEvent('[ROUTE]0.0.0.0/1 via 192.0.2.130 dev wtmv0 ')).toMatchObject({ kind: 'other', destination: '0.0.0.0/1' });
    expect(driver.classifyMonitorEvent('[ROUTE]Deleted broadcast 192.0.2.63 dev wtmx0 table local proto kernel scope link src 192.0.2.2 linkdown ').kind).toBe('other');
    expect(driver.classifyMonitorEvent('[LINK]3: wtmx0@wtmx1: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 state LOWERLAYERDOWN \\    link/ether 3e:95:27:df:e4:20').kind).toBe('link-changed');
    expect(driver.classifyMonitorEvent('[ADDR]3: wtmx0    inet 192.0.2.2/26 scope global wtmx0\\       valid_lft forever').kind).toBe('other');
    // Unreadable: re-read rather than miss a change.
    expect(driver.classifyMonitorEvent('[ROUTE]???').kind).toBe('link-changed');
  });
});
describe('LinuxDriver forgetFlows', () => {
  it('deletes the conntrack entries of each server flow, tolerating a missing conntrack or no entries', async () => {
    const run = new ScriptedRunner([
      { argv: ['conntrack', '-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '203.0.113.10', '--orig-port-dst', '51820'], exitCode: 127, stderr: 'conntrack: command not found' },
      { argv: ['conntrack', '-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', '2001:db8::10', '--orig-port-dst', '443'], exitCode: 1, stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.' },
    ]);
    await new LinuxDriver().forgetFlows(run, [{ ip: '203.0.113.10', port: 51820 }, { ip: '2001:db8::10', port: 443 }]);
    run.assertDone();
  });
});
