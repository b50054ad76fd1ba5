/**
 * The darwin driver against real macOS outputs (libs/parsers/src/darwin/__fixtures__), with a
 * ScriptedRunner asserting the exact argv sequence (and stdin) it issues. No Mac needed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizePfRuleset, parseIfconfig } from '@wgctl/parsers';
import { CommandError, ScriptedRunner, type ScriptedCall } from '@wgctl/runner';
import { DarwinDriver, DarwinKillSwitchError, darwinRouteArgv, darwinStateKillArgv, renderDarwinKillSwitch } from '../darwin';
import type { KillSwitchPolicy } from '../driver';

const FIXTURES = join(__dirname, '../../../../../libs/parsers/src/darwin/__fixtures__');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

const STATE = '/Library/Application Support/wgctl/mac-agent';
const ANCHOR = 'com.apple/000.wgctl';
const RULES_FILE = `${STATE}/pf-com.apple_000.wgctl.conf`;
const driver = () => new DarwinDriver({ stateDir: STATE });

async function play<T>(script: ScriptedCall[], fn: (run: ScriptedRunner) => Promise<T>): Promise<T> {
  const run = new ScriptedRunner(script);
  const result = await fn(run);
  run.assertDone();
  return result;
}

/** `ifconfig en1` prints only en1: cut it out of the full capture. */
function onlyInterface(text: string, name: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${name}: flags=`));
  const end = lines.findIndex((l, i) => i > start && /^\S+: flags=/.test(l));
  return `${lines.slice(start, end < 0 ? undefined : end).join('\n')}\n`;
}

describe('DarwinDriver.discoverUplink on real routing tables', () => {
  // The address from `ifconfig` (every interface) read beside `netstat -rn`: the same command
  // discoverVnic runs, so a Describe or discover (SharedReadRunner) runs it once for both.
  it('Ventura (grep default, UGScg): gateway, and the address from ifconfig', async () => {
    const uplink = await play(
      [
        { argv: ['netstat', '-rn'], stdout: fixture('netstat-rn-grep-default-ventura-ugscg-tp.txt') },
        // That Mac's capture holds en0 alone (the Mojave one below picks en1 out of several).
        { argv: ['ifconfig'], stdout: fixture('ifconfig-en0-ventura-tp.txt') },
      ],
      (run) => driver().discoverUplink(run),
    );
    // The system utun IPv6 defaults are not an IPv6 uplink.
    expect(uplink).toEqual({ interface: 'en0', gateway: '10.33.19.254', address: '10.33.16.202' });
  });

  it('Mojave (Refs/Use columns) with IPv6: gateway6 on the same interface', async () => {
    const uplink = await play(
      [
        { argv: ['netstat', '-rn'], stdout: fixture('netstat-rn-mojave-with-inet6-evidence-pack.txt') },
        { argv: ['ifconfig'], stdout: fixture('ifconfig-lo0-en-mojave-evidence-pack.txt') },
      ],
      (run) => driver().discoverUplink(run),
    );
    expect(uplink).toEqual({ interface: 'en1', gateway: '192.168.1.1', gateway6: 'fe80::7637:5fff:fe96:ab30%en1', address: '192.168.1.98' });
  });

  it('Big Sur: an interface gone by the time ifconfig runs, or a failed ifconfig, costs only the address', async () => {
    const gone = await play(
      [
        { argv: ['netstat', '-rn'], stdout: fixture('netstat-rn-bigsur-11.3-default-hatenablog.txt') },
        { argv: ['ifconfig'], stdout: onlyInterface(fixture('ifconfig-lo0-en-mojave-evidence-pack.txt'), 'lo0') },
      ],
      (run) => driver().discoverUplink(run),
    );
    expect(gone).toEqual({ interface: 'en0', gateway: '192.168.0.1' });
    const uplink = await play(
      [
        { argv: ['netstat', '-rn'], stdout: fixture('netstat-rn-bigsur-11.3-default-hatenablog.txt') },
        { argv: ['ifconfig'], exitCode: 1, stderr: 'ifconfig: ioctl (SIOCGIFCONF): Invalid argument\n' },
      ],
      (run) => driver().discoverUplink(run),
    );
    expect(uplink).toEqual({ interface: 'en0', gateway: '192.168.0.1' });
  });

  it('two defaults (Mojave): the unscoped one', async () => {
    const uplink = await play(
      [
        { argv: ['netstat', '-rn'], stdout: fixture('netstat-rn-two-defaults-mojave-2020-blog.txt') },
        { argv: ['ifconfig'], stdout: 'en5: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n\tinet 172.20.10.3 netmask 0xfffffff0 broadcast 172.20.10.15\n' },
      ],
      (run) => driver().discoverUplink(run),
    );
    expect(uplink).toMatchObject({ interface: 'en5', gateway: '172.20.10.1', address: '172.20.10.3' });
  });

  it('another VPN owns the default (link#17 on utun3): the scoped physical default', async () => {
    const uplink = await play(
      [
        { argv: ['netstat', '-rn'], stdout: fixture('netstat-rn-vpn-default-scoped-jackpal-gateway.txt') },
        { argv: ['ifconfig'], stdout: fixture('ifconfig-en0-ventura-tp.txt') },
      ],
      (run) => driver().discoverUplink(run),
    );
    expect(uplink).toMatchObject({ interface: 'en0', gateway: '192.168.1.254' });
  });

  it('no IPv4 default at all: null (the interfaces read beside the table go unused)', async () => {
    const uplink = await play(
      [
        { argv: ['netstat', '-rn'], stdout: fixture('netstat-rn-inet6-openwrt-blog-excerpt.txt') },
        { argv: ['ifconfig'], stdout: fixture('ifconfig-lo0-en-mojave-evidence-pack.txt') },
      ],
      (run) => driver().discoverUplink(run),
    );
    expect(uplink).toBeNull();
  });
});

describe('DarwinDriver.discoverVnic', () => {
  it('legacy Parallels vnic0 and UTM/vmnet bridge100', async () => {
    const parallels = await play([{ argv: ['ifconfig'], stdout: fixture('ifconfig-vnic0-parallels-legacy.txt') }], (run) => driver().discoverVnic(run, '10.211.55.5'));
    expect(parallels).toEqual({ interface: 'vnic0', address: '10.211.55.2' });
    const utm = await play([{ argv: ['ifconfig'], stdout: fixture('ifconfig-bridge100-utm-vmnet.txt') }], (run) => driver().discoverVnic(run, '192.168.64.2'));
    expect(utm).toEqual({ interface: 'bridge100', address: '192.168.64.1', address6: 'fdc4:f46c:bb17:931b:1099:c71:e430:9090' });
  });

  it('says why when the VM address is ours or on no network of the Mac', async () => {
    await expect(play([{ argv: ['ifconfig'], stdout: fixture('ifconfig-vnic0-parallels-legacy.txt') }], (run) => driver().discoverVnic(run, '10.211.55.2'))).rejects.toThrow(
      /address of this Mac \(on vnic0\)/,
    );
    await expect(play([{ argv: ['ifconfig'], stdout: fixture('ifconfig-vnic0-parallels-legacy.txt') }], (run) => driver().discoverVnic(run, '198.51.100.7'))).rejects.toThrow(
      /is the VM running/,
    );
  });
});

describe('DarwinDriver routes', () => {
  const split = { destination: '0.0.0.0/1', gateway: '10.211.55.5', interface: 'vnic0' };
  const pin = { destination: '203.0.113.10/32', gateway: '192.168.1.1', interface: 'en0' };
  const table = [
    'Routing tables',
    '',
    'Internet:',
    'Destination        Gateway            Flags           Netif Expire',
    '0/1                10.211.55.5        UGSc            vnic0       ',
    'default            192.168.1.1        UGScg             en0       ',
    '128.0/1            10.211.55.5        UGSc            vnic0       ',
    '203.0.113.10       192.168.1.1        UGHS              en0       ',
    '',
  ].join('\n');

  it('builds route argv: -host for host routes, -inet6 for IPv6, -interface without a gateway', () => {
    expect(darwinRouteArgv('add', split)).toEqual(['route', '-q', '-n', 'add', '-inet', '0.0.0.0/1', '10.211.55.5']);
    expect(darwinRouteArgv('add', pin)).toEqual(['route', '-q', '-n', 'add', '-inet', '-host', '203.0.113.10', '192.168.1.1']);
    expect(darwinRouteArgv('delete', { destination: '8000::/1', gateway: 'fd00:5::5' })).toEqual(['route', '-q', '-n', 'delete', '-inet6', '8000::/1', 'fd00:5::5']);
    expect(darwinRouteArgv('add', { destination: '192.0.2.0/24', gateway: '', interface: 'utun4' })).toEqual(['route', '-q', '-n', 'add', '-inet', '192.0.2.0/24', '-interface', 'utun4']);
  });

  it('addRoute: ok; "File exists" with our route in place is success', async () => {
    await play([{ argv: darwinRouteArgv('add', split), stdout: 'add net 0.0.0.0: gateway 10.211.55.5\n' }], (run) => driver().addRoute(run, split));
    await play(
      [
        {
          argv: darwinRouteArgv('add', pin),
          stdout: 'add host 203.0.113.10: gateway 192.168.1.1: File exists\n',
          stderr: 'route: writing to routing socket: File exists\n',
        },
        { argv: ['netstat', '-rn'], stdout: table },
      ],
      (run) => driver().addRoute(run, pin),
    );
  });

  it('addRoute: "File exists" because of someone else\'s route is a failure naming it', async () => {
    const stale = { ...pin, gateway: '192.168.7.1' };
    await expect(
      play(
        [
          { argv: darwinRouteArgv('add', stale), stdout: 'add host 203.0.113.10: gateway 192.168.7.1: File exists\n' },
          { argv: ['netstat', '-rn'], stdout: table },
        ],
        (run) => driver().addRoute(run, stale),
      ),
    ).rejects.toThrow(/different route is in the way \(203\.0\.113\.10 192\.168\.1\.1 UGHS en0\)/);
  });

  it('addRoute: "Network is unreachable" (exit 0!) is a failure', async () => {
    const far = { destination: '0.0.0.0/1', gateway: '10.9.9.9' };
    await expect(
      play(
        [
          {
            argv: darwinRouteArgv('add', far),
            stdout: 'add net 0.0.0.0: gateway 10.9.9.9: Network is unreachable\n',
            stderr: 'route: writing to routing socket: Network is unreachable\n',
          },
        ],
        (run) => driver().addRoute(run, far),
      ),
    ).rejects.toThrow(/Network is unreachable \(10\.9\.9\.9 is not on a directly connected network\)/);
  });

  it('deleteRoute: ok and "not in table" are success; a non-root exit is not; defaults are refused', async () => {
    await play([{ argv: darwinRouteArgv('delete', split), stdout: 'delete net 0.0.0.0: gateway 10.211.55.5\n' }], (run) => driver().deleteRoute(run, split));
    await play(
      [
        {
          argv: darwinRouteArgv('delete', pin),
          stdout: 'delete host 203.0.113.10: gateway 192.168.1.1: not in table\n',
          stderr: 'route: writing to routing socket: not in table\n',
        },
      ],
      (run) => driver().deleteRoute(run, pin),
    );
    await expect(
      play([{ argv: darwinRouteArgv('delete', pin), exitCode: 77, stderr: 'route: must be root to alter routing table\n' }], (run) => driver().deleteRoute(run, pin)),
    ).rejects.toThrow(CommandError);
    await expect(play([], (run) => driver().deleteRoute(run, { destination: '0.0.0.0/0', gateway: '192.168.1.1' }))).rejects.toThrow(/refusing/);
  });

  it('readRoutes: present with evidence; a scoped duplicate or another gateway does not count', async () => {
    const scopedOnly = { destination: '0.0.0.0/0', gateway: '192.168.1.1', interface: 'en0' };
    const readback = await play([{ argv: ['netstat', '-rn'], stdout: table.replace('UGScg  ', 'UGScIg ') }], (run) =>
      driver().readRoutes(run, [split, pin, { ...pin, gateway: '192.168.7.1' }, scopedOnly, { destination: '::/1', gateway: 'fd00::5' }]),
    );
    expect(readback.map((r) => [r.destination, r.present, r.evidence])).toEqual([
      ['0.0.0.0/1', true, '0/1 10.211.55.5 UGSc vnic0'],
      ['203.0.113.10/32', true, '203.0.113.10 192.168.1.1 UGHS en0'],
      ['203.0.113.10/32', false, '203.0.113.10 192.168.1.1 UGHS en0'],
      ['0.0.0.0/0', false, 'default 192.168.1.1 UGScIg en0'],
      ['::/1', false, ''],
    ]);
    expect(readback[2].gateway).toBe('192.168.7.1'); // the spec comes back as asked
  });
});

describe('DarwinDriver kill switch', () => {
  const policy: KillSwitchPolicy = {
    uplink: 'en0',
    endpoints: [{ ip: '203.0.113.10', port: 51820 }],
    vnic: 'bridge100',
    vmAddress: '192.168.64.2',
    allowDhcp6: false,
    blockIpv6: true,
  };
  // What pfctl prints back for the rendered policy (written out by hand, not computed).
  const PRINTED = [
    'pass quick on lo0 all no state',
    'pass quick on bridge100 all no state',
    'pass out quick inet proto udp from any port = 68 to 255.255.255.255 port = 67 no state',
    'pass in quick inet proto udp from any port = 67 to any port = 68 no state',
    'block drop quick inet6 all',
    'pass out quick inet proto udp from any to 203.0.113.10 port = 51820 keep state',
    'pass in quick inet proto udp from 203.0.113.10 port = 51820 to any keep state',
    'block drop in quick all',
    'block drop out quick all',
  ];
  const APPLE_MAIN = fixture('pfctl-s-rules-main-default-apple-stackexchange-221058.txt');
  const MAIN_STOCK = 'scrub-anchor "com.apple/*" all fragment reassemble\nanchor "com.apple/*" all\n';
  /** What an older wgctl left: its top-level anchor appended to the main ruleset. */
  const MAIN_WITH_LEGACY = `${MAIN_STOCK}anchor "com.wgctl" all\n`;
  /** The Mac's interfaces: lo0, en0 (unused), en1 (the uplink, IPv4 + IPv6), and UTM's bridge100. */
  const IFCONFIG = fixture('ifconfig-lo0-en-mojave-evidence-pack.txt') + fixture('ifconfig-bridge100-utm-vmnet.txt');
  const KILLS: ScriptedCall[] = darwinStateKillArgv(parseIfconfig(IFCONFIG), policy).map((argv) => ({ argv, stderr: 'killed 0 states from 1 sources and 0 destinations\n' }));
  const capture = JSON.parse(fixture('pfctl-E-X-results-macos26-capture.json')) as Record<string, { code: number; stdout: string; stderr: string }>;
  const TOKEN = '11012949885072952621';
  const ALTQ = 'No ALTQ support in kernel\nALTQ related functions disabled\n';

  it('renders rules whose printed form is what pfctl shows; the comment explains the VM NAT', () => {
    const text = renderDarwinKillSwitch(policy);
    expect(normalizePfRuleset(text)).toEqual(PRINTED);
    expect(text).toMatch(/after translation/);
    const dual = renderDarwinKillSwitch({ ...policy, allowDhcp6: true, blockIpv6: false, endpoints: [...policy.endpoints, { ip: '2001:DB8::10', port: 443 }] });
    expect(normalizePfRuleset(dual)).toEqual([
      ...PRINTED.slice(0, 4),
      'pass out quick inet6 proto udp from fe80::/10 port = 546 to ff02::1:2 port = 547 no state',
      'pass in quick inet6 proto udp from fe80::/10 port = 547 to fe80::/10 port = 546 no state',
      'pass out quick inet6 proto ipv6-icmp from any to ff02::2 icmp6-type routersol no state',
      'pass out quick inet6 proto ipv6-icmp from any to ff02::1:ff00:0/104 icmp6-type neighbrsol no state',
      'pass out quick inet6 proto ipv6-icmp from any to fe80::/10 icmp6-type neighbrsol no state',
      'pass out quick inet6 proto ipv6-icmp from any to fe80::/10 icmp6-type neighbradv no state',
      'pass out quick inet6 proto ipv6-icmp from any to ff02::1 icmp6-type neighbradv no state',
      'pass in quick inet6 proto ipv6-icmp from fe80::/10 to any icmp6-type routeradv no state',
      'pass in quick inet6 proto ipv6-icmp from fe80::/10 to any icmp6-type redir no state',
      'pass in quick inet6 proto ipv6-icmp all icmp6-type neighbrsol no state',
      'pass in quick inet6 proto ipv6-icmp all icmp6-type neighbradv no state',
      PRINTED[5],
      PRINTED[6],
      'pass out quick inet6 proto udp from any to 2001:db8::10 port = 443 keep state',
      'pass in quick inet6 proto udp from 2001:db8::10 port = 443 to any keep state',
      PRINTED[7],
      PRINTED[8],
    ]);
    // With IPv6 blocked, an IPv6 endpoint gets no pass rule.
    expect(normalizePfRuleset(renderDarwinKillSwitch({ ...policy, endpoints: [{ ip: '2001:db8::10', port: 443 }] })).join('\n')).not.toContain('2001:db8::10');
    expect(() => renderDarwinKillSwitch({ ...policy, uplink: 'en0 all\npass' })).toThrow(/bad uplink/);
    expect(() => renderDarwinKillSwitch({ ...policy, vnic: 'bridge100 all\npass' })).toThrow(/bad VM interface/);
    expect(() => renderDarwinKillSwitch({ ...policy, endpoints: [{ ip: 'example.com', port: 1 }] })).toThrow(/not an IP/);
    expect(() => renderDarwinKillSwitch({ ...policy, dhcpServer: '192.0.2.1 port 67\npass' })).toThrow(/DHCP server/);
    // With the lease's on-link server, DHCP may unicast to it too (RENEWING), and to no one else.
    expect(normalizePfRuleset(renderDarwinKillSwitch({ ...policy, dhcpServer: '192.0.2.1' })).slice(2, 5)).toEqual([
      'pass out quick inet proto udp from any port = 68 to 255.255.255.255 port = 67 no state',
      'pass out quick inet proto udp from any port = 68 to 192.0.2.1 port = 67 no state',
      'pass in quick inet proto udp from any port = 67 to any port = 68 no state',
    ]);
  });

  /**
   * PF's first-match evaluation of `quick` rules, for the printed shapes the kill switch uses
   * (every rule is quick; anything else makes this throw, so the model cannot silently drift).
   */
  interface Packet {
    dir: 'in' | 'out';
    on: string;
    af: 'inet' | 'inet6';
    proto: 'udp' | 'tcp' | 'ipv6-icmp';
    src: string;
    sport: number;
    dst: string;
    dport: number;
  }
  const RULE =
    /^(pass|block drop)(?: (in|out))? quick(?: on (\S+))?(?: (inet6?))?(?: proto (\S+))? (?:all|from (\S+)(?: port = (\d+))? to (\S+)(?: port = (\d+))?)(?: icmp6-type \S+)?(?: flags S\/SA)?(?: keep state| no state)?$/;
  const verdict = (rules: string[], p: Packet): string => {
    for (const rule of rules) {
      const m = RULE.exec(rule);
      if (!m) throw new Error(`the test model does not know the rule "${rule}"`);
      const [, action, dir, on, af, proto, src, sport, dst, dport] = m;
      if (/icmp6-type/.test(rule)) continue; // NDP: not what these packets are
      const matches =
        (!dir || dir === p.dir) &&
        (!on || on === p.on) &&
        (!af || af === p.af) &&
        (!proto || proto === p.proto) &&
        (!src || src === 'any' || src === p.src) &&
        (!sport || Number(sport) === p.sport) &&
        (!dst || dst === 'any' || dst === p.dst) &&
        (!dport || Number(dport) === p.dport);
      if (matches) return `${action === 'pass' ? 'pass' : 'block'} (${rule})`;
    }
    return 'no match';
  };

  it('is fail-closed on EVERY interface: no rule depends on the uplink; a second interface is blocked like the uplink', () => {
    const rules = normalizePfRuleset(renderDarwinKillSwitch(policy));
    // Only loopback and the VM's bridge are named: nothing is written "on en0".
    expect(rules.filter((r) => / on /.test(r))).toEqual(['pass quick on lo0 all no state', 'pass quick on bridge100 all no state']);
    expect(renderDarwinKillSwitch(policy).split('\n').filter((l) => !l.startsWith('#')).join('\n')).not.toMatch(/\ben0\b/);
    // A roam to another uplink renders the very same rules (nothing to reload).
    expect(normalizePfRuleset(renderDarwinKillSwitch({ ...policy, uplink: 'en7' }))).toEqual(rules);
    // The last two rules drop everything left, in and out, with no interface qualifier.
    expect(rules.slice(-2)).toEqual(['block drop in quick all', 'block drop out quick all']);

    const web = { af: 'inet', proto: 'tcp', src: '172.20.10.3', sport: 50000, dst: '198.51.100.7', dport: 443 } as const;
    const wireguard = { af: 'inet', proto: 'udp', src: '172.20.10.3', sport: 50001, dst: '203.0.113.10', dport: 51820 } as const;
    // en0 = the uplink, en5 = a USB tether with a scoped default, en1 = the interface we roamed from.
    for (const on of ['en0', 'en5', 'en1', 'utun3']) {
      expect(verdict(rules, { ...web, dir: 'out', on })).toBe('block (block drop out quick all)');
      expect(verdict(rules, { ...web, dir: 'out', on, af: 'inet6', dst: '2001:db8::7' })).toBe('block (block drop quick inet6 all)');
      expect(verdict(rules, { ...web, dir: 'in', on, src: '198.51.100.7', sport: 443, dst: '172.20.10.3', dport: 50000 })).toBe('block (block drop in quick all)');
      expect(verdict(rules, { ...wireguard, dir: 'out', on })).toMatch(/^pass \(pass out quick inet proto udp from any to 203\.0\.113\.10/);
      expect(verdict(rules, { ...wireguard, dir: 'out', on, dport: 51821 })).toBe('block (block drop out quick all)');
      expect(verdict(rules, { ...wireguard, dir: 'in', on, src: '203.0.113.10', sport: 51820, dst: '172.20.10.3', dport: 50001 })).toMatch(/^pass \(pass in quick/);
      expect(verdict(rules, { ...wireguard, dir: 'out', on, proto: 'udp', sport: 68, dst: '255.255.255.255', dport: 67 })).toMatch(/^pass \(.*port = 68 to 255\.255\.255\.255 port = 67/);
      // …but not to any other host from port 68 (issue #15: DHCP is no exfiltration channel).
      expect(verdict(rules, { ...wireguard, dir: 'out', on, proto: 'udp', sport: 68, dst: '198.51.100.80', dport: 67 })).toBe('block (block drop out quick all)');
    }
    for (const on of ['lo0', 'bridge100']) expect(verdict(rules, { ...web, dir: 'out', on })).toMatch(/^pass \(pass quick on /);
  });

  const loadPrefix = (rendered: string): ScriptedCall[] => [
    { argv: ['mkdir', '-p', STATE] },
    { argv: ['tee', RULES_FILE], input: rendered, stdout: rendered },
    { argv: ['pfctl', '-n', '-a', ANCHOR, '-f', RULES_FILE], stderr: ALTQ },
    { argv: ['pfctl', '-a', ANCHOR, '-f', RULES_FILE], stderr: ALTQ },
  ];

  it('forgets the states of every network but lo0 and the vnic, and the VM\'s own flows, by address — never all of them', () => {
    expect(darwinStateKillArgv(parseIfconfig(IFCONFIG), policy)).toEqual([
      // en1, the uplink: its IPv4 network (flows opened from it, then towards it) and its IPv6 /64s.
      ['pfctl', '-k', '192.168.1.0/24'],
      ['pfctl', '-k', '0.0.0.0/0', '-k', '192.168.1.0/24'],
      ['pfctl', '-k', '2603:6010:7c00:4328::/64'],
      ['pfctl', '-k', '::/0', '-k', '2603:6010:7c00:4328::/64'],
      ['pfctl', '-k', 'fd00:7437:5f96:ab30::/64'],
      ['pfctl', '-k', '::/0', '-k', 'fd00:7437:5f96:ab30::/64'],
      // link-local (en1's fe80::…%en1): one prefix, scoped addresses cannot be named.
      ['pfctl', '-k', 'fe80::/10'],
      ['pfctl', '-k', '::/0', '-k', 'fe80::/10'],
      // the VM's flows (NATed out of the uplink: the state's source is the VM).
      ['pfctl', '-k', '192.168.64.2'],
    ]);
    const all = darwinStateKillArgv(parseIfconfig(IFCONFIG), policy).map((a) => a.join(' '));
    // Nothing system-wide, nothing of loopback's or the vnic's own networks.
    expect(all.filter((a) => /-F|127\.|::1|192\.168\.64\.0|fdc4:/.test(a))).toEqual([]);
  });

  it('load with PF disabled and the stock main ruleset: no main-ruleset edit, a token, states forgotten by address', async () => {
    const rendered = renderDarwinKillSwitch(policy);
    const handle = await play(
      [
        ...loadPrefix(rendered),
        { argv: ['pfctl', '-sr'], stdout: APPLE_MAIN.replace(ALTQ, ''), stderr: ALTQ },
        { argv: ['ifconfig'], stdout: IFCONFIG },
        { argv: ['pfctl', '-E'], stderr: capture['pfctl -E'].stderr },
        ...KILLS,
      ],
      (run) => driver().loadKillSwitch(run, policy),
    );
    expect(handle).toEqual({ pfToken: TOKEN, pfAnchor: ANCHOR });
  });

  it('load after an older wgctl: its `anchor "com.wgctl"` is removed from the main ruleset (-R, stdin) and its anchor flushed, once', async () => {
    const rendered = renderDarwinKillSwitch(policy);
    const previous = { pfToken: '9084387343160548126', addedAnchorReference: true };
    const handle = await play(
      [
        ...loadPrefix(rendered),
        { argv: ['pfctl', '-sr'], stdout: MAIN_WITH_LEGACY },
        { argv: ['ifconfig'], stdout: IFCONFIG },
        { argv: ['pfctl', '-s', 'References'], stdout: fixture('pfctl-s-references-two-macos26-capture.txt') },
        { argv: ['pfctl', '-R', '-f', '-'], input: MAIN_STOCK, stderr: ALTQ },
        { argv: ['pfctl', '-a', 'com.wgctl', '-F', 'all'], stderr: 'rules cleared\n' },
        { argv: ['rm', '-f', `${STATE}/pf-com.wgctl.conf`] },
        ...KILLS,
      ],
      (run) => driver().loadKillSwitch(run, policy, previous),
    );
    // The token still held is kept; the journal no longer says a reference is to be removed.
    expect(handle).toEqual({ pfToken: '9084387343160548126', pfAnchor: ANCHOR });
    // The next load finds nothing to remove.
    await play(
      [...loadPrefix(rendered), { argv: ['pfctl', '-sr'], stdout: MAIN_STOCK }, { argv: ['ifconfig'], stdout: IFCONFIG }, { argv: ['pfctl', '-s', 'References'], stdout: fixture('pfctl-s-references-two-macos26-capture.txt') }, ...KILLS],
      (run) => driver().loadKillSwitch(run, policy, handle),
    );
  });

  it('a stale token (Mac rebooted) is replaced by a new one', async () => {
    const rendered = renderDarwinKillSwitch(policy);
    const handle = await play(
      [
        ...loadPrefix(rendered),
        { argv: ['pfctl', '-sr'], stdout: APPLE_MAIN },
        { argv: ['ifconfig'], stdout: IFCONFIG },
        { argv: ['pfctl', '-s', 'References'], stdout: fixture('pfctl-s-references-none-macos26-capture.txt') },
        { argv: ['pfctl', '-E'], stderr: capture['pfctl -E'].stderr },
        ...KILLS,
      ],
      (run) => driver().loadKillSwitch(run, policy, { pfToken: '42', pfAnchor: ANCHOR }),
    );
    expect(handle).toEqual({ pfToken: TOKEN, pfAnchor: ANCHOR });
  });

  it('a file pfctl rejects loads nothing: the error names the line', async () => {
    const rendered = renderDarwinKillSwitch(policy);
    await expect(
      play(
        [
          { argv: ['mkdir', '-p', STATE] },
          { argv: ['tee', RULES_FILE], input: rendered },
          {
            argv: ['pfctl', '-n', '-a', ANCHOR, '-f', RULES_FILE],
            exitCode: 1,
            stderr: `${ALTQ}${RULES_FILE}:7: syntax error\npfctl: Syntax error in config file: pf rules not loaded\n`,
          },
        ],
        (run) => driver().loadKillSwitch(run, policy),
      ),
    ).rejects.toThrow(/line 7: syntax error/);
  });

  it('a failure after -E hands back the token taken (so it can be released)', async () => {
    const rendered = renderDarwinKillSwitch(policy);
    const run = new ScriptedRunner([
      ...loadPrefix(rendered),
      { argv: ['pfctl', '-sr'], stdout: MAIN_STOCK },
      { argv: ['ifconfig'], stdout: IFCONFIG },
      { argv: ['pfctl', '-E'], stderr: capture['pfctl -E'].stderr },
      { argv: KILLS[0].argv, exitCode: 1, stderr: 'pfctl: Operation not permitted\n' },
    ]);
    const error = await driver()
      .loadKillSwitch(run, policy)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DarwinKillSwitchError);
    expect((error as DarwinKillSwitchError).message).toMatch(/pfctl -k 192\.168\.1\.0\/24 failed \(exit 1\): pfctl: Operation not permitted/);
    expect((error as DarwinKillSwitchError).handle).toEqual({ pfToken: TOKEN, pfAnchor: ANCHOR });
    run.assertDone();
  });

  it('unload with the token still valid (another holder remains): flush, -X; the main ruleset is only read', async () => {
    await play(
      [
        { argv: ['pfctl', '-a', ANCHOR, '-F', 'all'], stderr: fixture('pfctl-F-all-and-f-warning-ettercap-pr641.txt').split('pfctl: Use')[0] },
        { argv: ['pfctl', '-X', TOKEN], exitCode: 0, stderr: capture['pfctl -X <valid, others remain>'].stderr },
        { argv: ['pfctl', '-sr'], stdout: MAIN_STOCK },
        { argv: ['rm', '-f', RULES_FILE] },
      ],
      (run) => driver().unloadKillSwitch(run, { pfToken: TOKEN, pfAnchor: ANCHOR }),
    );
  });

  it('unload after a reboot: "pf not enabled" is already released; an older wgctl\'s reference is removed', async () => {
    const stale = capture['pfctl -X <stale> while pf disabled'];
    await play(
      [
        { argv: ['pfctl', '-a', ANCHOR, '-F', 'all'], stderr: 'rules cleared\nnat cleared\n' },
        { argv: ['pfctl', '-X', TOKEN], exitCode: stale.code, stderr: stale.stderr },
        { argv: ['pfctl', '-sr'], stdout: MAIN_WITH_LEGACY },
        { argv: ['pfctl', '-R', '-f', '-'], input: MAIN_STOCK },
        { argv: ['pfctl', '-a', 'com.wgctl', '-F', 'all'] },
        { argv: ['rm', '-f', `${STATE}/pf-com.wgctl.conf`] },
        { argv: ['rm', '-f', RULES_FILE] },
      ],
      (run) => driver().unloadKillSwitch(run, { pfToken: TOKEN, addedAnchorReference: true }),
    );
  });

  it('unload reports a real -X failure after doing everything else', async () => {
    await expect(
      play(
        [
          { argv: ['pfctl', '-a', ANCHOR, '-F', 'all'] },
          { argv: ['pfctl', '-X', TOKEN], exitCode: 1, stderr: 'pfctl: Permission denied\n' },
          { argv: ['pfctl', '-sr'], stdout: MAIN_STOCK },
          { argv: ['rm', '-f', RULES_FILE] },
        ],
        (run) => driver().unloadKillSwitch(run, { pfToken: TOKEN }),
      ),
    ).rejects.toThrow(/pfctl -X 11012949885072952621: pfctl: Permission denied/);
  });

  const readScript = (main: string, anchorRules: string, references = fixture('pfctl-s-references-two-macos26-capture.txt'), info = fixture('pfctl-s-info-enabled-macos26-capture.txt')): ScriptedCall[] => [
    { argv: ['pfctl', '-s', 'info'], stdout: info },
    { argv: ['pfctl', '-sr'], stdout: main },
    { argv: ['pfctl', '-a', ANCHOR, '-sr'], stdout: anchorRules },
    { argv: ['pfctl', '-s', 'References'], stdout: references },
  ];
  const handle = { pfToken: '9084387343160548126', pfAnchor: ANCHOR };

  it('readKillSwitch: loaded, enabled, referenced, token held, rules as policy → no problems', async () => {
    const status = await play(readScript(APPLE_MAIN, `${PRINTED.join('\n')}\n`), (run) => driver().readKillSwitch(run, policy, handle));
    expect(status).toEqual({ loaded: true, enabled: true, referenced: true, tokenHeld: true, interface: 'en0', rules: PRINTED, problems: [] });
  });

  it('readKillSwitch: a main ruleset without `anchor "com.apple/*"` (a replaced pf.conf) does not evaluate the kill switch', async () => {
    const replaced = 'pass out quick all flags S/SA keep state\nanchor "wg-pf.rules" all\n';
    const status = await play(readScript(replaced, `${PRINTED.join('\n')}\n`), (run) => driver().readKillSwitch(run, policy, handle));
    expect(status.referenced).toBe(false);
    expect(status.problems).toEqual([
      'the main PF ruleset has no anchor "com.apple/*" (the stock /etc/pf.conf has it: was it edited or replaced?): the kill switch\'s rules are not evaluated',
    ]);
  });

  it('readKillSwitch: rules that drifted from the policy, PF disabled, token gone', async () => {
    const drifted = PRINTED.map((r) => r.replace('port = 51820', 'port = 51821'));
    const status = await play(
      readScript(MAIN_STOCK, `${drifted.join('\n')}\n`, fixture('pfctl-s-references-none-macos26-capture.txt'), fixture('pfctl-s-info-disabled-macos26-capture.txt')),
      (run) => driver().readKillSwitch(run, policy, handle),
    );
    expect(status).toMatchObject({ loaded: true, enabled: false, tokenHeld: false });
    expect(status.problems).toEqual([
      'PF is disabled: the kill switch rules are not in force (was the Mac restarted?)',
      'our PF reference (pfctl -E token) is no longer held: another program releasing PF would turn it off',
      `anchor ${ANCHOR} differs from the policy: missing: ${PRINTED[5]}; missing: ${PRINTED[6]}; unexpected: ${drifted[5]}; unexpected: ${drifted[6]}`,
    ]);
  });

  it('readKillSwitch after a reboot: the anchor does not exist → not loaded', async () => {
    const status = await play(
      [
        { argv: ['pfctl', '-s', 'info'], stdout: fixture('pfctl-s-info-disabled-macos26-capture.txt') },
        { argv: ['pfctl', '-sr'], stdout: APPLE_MAIN },
        { argv: ['pfctl', '-a', ANCHOR, '-sr'], exitCode: 1, stderr: 'pfctl: DIOCGETRULES: Invalid argument\n' },
      ],
      (run) => driver().readKillSwitch(run, policy),
    );
    // The stock pf.conf loaded at boot still evaluates com.apple/*: only the rules are missing.
    expect(status).toEqual({ loaded: false, enabled: false, referenced: true, tokenHeld: false, rules: [], problems: [`PF anchor ${ANCHOR} has no rules loaded`] });
  });
});

describe('DarwinDriver DNS', () => {
  const SERVICES = 'An asterisk (*) denotes that a network service is disabled.\nWi-Fi\n*Thunderbolt Bridge\nParallels Shared #0\n';
  const NONE = (what: string, service: string) => `There aren't any ${what} set on ${service}.\n`;

  it('reads every service (disabled too), remembering "none set" as []', async () => {
    const snapshot = await play(
      [
        { argv: ['networksetup', '-listallnetworkservices'], stdout: SERVICES },
        { argv: ['networksetup', '-getdnsservers', 'Wi-Fi'], stdout: '192.0.2.53\n192.0.2.54\n' },
        { argv: ['networksetup', '-getsearchdomains', 'Wi-Fi'], stdout: 'corp.example\n' },
        { argv: ['networksetup', '-getdnsservers', 'Thunderbolt Bridge'], stdout: fixture('networksetup-getdnsservers-empty.txt').replace('Wi-Fi', 'Thunderbolt Bridge') },
        { argv: ['networksetup', '-getsearchdomains', 'Thunderbolt Bridge'], stdout: NONE('Search Domains', 'Thunderbolt Bridge') },
        // Removed between the list and the questions (asked together): exit 4 and the error text on stdout.
        { argv: ['networksetup', '-getdnsservers', 'Parallels Shared #0'], exitCode: 4, stdout: 'Parallels Shared #0 is not a recognized network service.\n** Error: The parameters were not valid.\n' },
        { argv: ['networksetup', '-getsearchdomains', 'Parallels Shared #0'], exitCode: 4, stdout: 'Parallels Shared #0 is not a recognized network service.\n** Error: The parameters were not valid.\n' },
      ],
      (run) => driver().readDns(run),
    );
    expect(snapshot).toEqual({
      services: [
        { name: 'Wi-Fi', servers: ['192.0.2.53', '192.0.2.54'], searchDomains: ['corp.example'] },
        { name: 'Thunderbolt Bridge', servers: [], searchDomains: [] },
      ],
    });
  });

  const snapshot = {
    services: [
      { name: 'Wi-Fi', servers: ['192.0.2.53'], searchDomains: ['corp.example'] },
      { name: 'Thunderbolt Bridge', servers: [], searchDomains: [] },
    ],
  };

  it('sets our servers on every service, then restores them ("Empty" for none set)', async () => {
    await play(
      [
        { argv: ['networksetup', '-setdnsservers', 'Wi-Fi', '10.64.0.1', 'fd00:64::1'] },
        { argv: ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', '10.64.0.1', 'fd00:64::1'] },
      ],
      (run) => driver().setDns(run, ['10.64.0.1', 'fd00:64::1'], snapshot),
    );
    await play(
      [
        { argv: ['networksetup', '-setdnsservers', 'Wi-Fi', '192.0.2.53'] },
        { argv: ['networksetup', '-setsearchdomains', 'Wi-Fi', 'corp.example'] },
        { argv: ['networksetup', '-setdnsservers', 'Thunderbolt Bridge', 'Empty'] },
        { argv: ['networksetup', '-setsearchdomains', 'Thunderbolt Bridge', 'Empty'] },
      ],
      (run) => driver().restoreDns(run, snapshot),
    );
  });

  it('an error printed with exit 0 is still an error; a vanished service is skipped', async () => {
    await expect(
      play([{ argv: ['networksetup', '-setdnsservers', 'Wi-Fi', '10.64.0.1'], stdout: '** Error: Unable to commit changes to network database.\n' }], (run) =>
        driver().setDns(run, ['10.64.0.1'], { services: [snapshot.services[0]] }),
      ),
    ).rejects.toThrow(/Unable to commit/);
    await play(
      [{ argv: ['networksetup', '-setdnsservers', 'Wi-Fi', 'Empty'], exitCode: 4, stdout: fixture('networksetup-unknown-service-error.txt').replace('NoSuch', 'Wi-Fi') }],
      (run) => driver().restoreDns(run, { services: [{ name: 'Wi-Fi', servers: [], searchDomains: [] }] }),
    );
    await expect(play([], (run) => driver().setDns(run, ['dns.example'], snapshot))).rejects.toThrow(/not an IP address/);
  });
});

describe('DarwinDriver routing monitor', () => {
  it('watches `route -n monitor`', () => {
    expect(driver().monitorArgv()).toEqual(['route', '-n', 'monitor']);
  });

  it('classifies streamed lines: the line completing a message carries the verdict', () => {
    const d = driver();
    const lines = fixture('route-monitor-service-reorder-2020-blog.txt').split('\n');
    const verdicts = lines.map((line) => d.classifyMonitorEvent(line)).filter((c) => c.kind !== 'other' || c.destination !== undefined);
    expect(verdicts.map((c) => [c.kind, c.destination, c.deleted ?? false])).toEqual([
      ['default-changed', '0.0.0.0/0', true],
      ['default-changed', '0.0.0.0/0', true],
      ['default-changed', '0.0.0.0/0', false],
      ['other', '0.0.0.0/0', false], // the scoped add
    ]);
    expect(verdicts[0].line).toBe('RTM_DELETE default 172.20.10.1 default en5:40.a5.ef.41.9f.fb 172.20.10.3 (default route removed via 172.20.10.1)');
  });

  it('reports our split routes by destination (so their deletion can be noticed) and IFINFO at once', () => {
    const d = driver();
    const echo = ['got message of size 132 on Mon Mar  2 10:00:00 2026', 'RTM_DELETE: Delete Route: len 132, pid: 0, seq 1, errno 0, flags:<GATEWAY,DONE,STATIC,CONDEMNED>', 'locks:  inits: ', 'sockaddrs: <DST,GATEWAY,NETMASK>', ' default 10.211.55.5 128.0.0.0'];
    const results = echo.map((l) => d.classifyMonitorEvent(l));
    expect(results.slice(0, 4).every((r) => r.kind === 'other' && r.destination === undefined)).toBe(true);
    expect(results[4]).toMatchObject({ kind: 'other', destination: '0.0.0.0/1', deleted: true });
    const ifinfo = fixture('route-monitor-ifinfo-2020-real-world-systems.txt').split('\n');
    expect(d.classifyMonitorEvent(ifinfo[0]).kind).toBe('other');
    expect(d.classifyMonitorEvent(ifinfo[1]).kind).toBe('link-changed');
    // A whole block at once works too.
    expect(d.classifyMonitorEvent(fixture('route-monitor-delete-default-2023-wg-blog.txt'))).toMatchObject({ kind: 'default-changed', destination: '0.0.0.0/0', deleted: true });
    expect(d.classifyMonitorEvent(fixture('route-monitor-mullvad-2020-comment.txt')).kind).toBe('other'); // errno 3: nothing changed
  });
});
