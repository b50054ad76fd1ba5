/**
 * The kill switch's DHCP/DHCPv6/ND exceptions are no exfiltration channel (issue #15 item 1):
 * a local program sending from the DHCP client ports, or an ND-typed ICMPv6 packet, reaches no
 * off-link host; the protocols themselves still leave on the link. Real nftables in network
 * namespaces (prefix `wdh`, documentation addresses only):
 *
 *   wdh-host (the "Mac")                   wdh-lan (router + DHCP server)             wdh-far (a host beyond)
 *     wdhup 192.0.2.66/26, 2001:db8:d::2 ── wdhr 192.0.2.65/26, 2001:db8:d::1
 *     wdhnew (just joined: no IPv4 yet) ─── wdhr2 (no address)
 *                                            wdhf 198.51.100.1/24, 2001:db8:f::1 ─── wdhfar 198.51.100.2/24, 2001:db8:f::2
 *
 * Probes are Python (SO_BINDTODEVICE, raw ICMPv6), which node's dgram cannot do; the suite is
 * skipped, visibly, without /usr/bin/python3.
 */
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ExecRunner, type StreamingProcess } from '@wgctl/runner';
import type { TcpdumpPacket } from '@wgctl/parsers';
import type { KillSwitchPolicy } from '../driver';
import { LinuxDriver } from '../linux';
import { NetnsRunner, netnsTestsEnabled, startNetnsCapture } from '../../testing/lab';

const PYTHON = '/usr/bin/python3';
const describeNetns = netnsTestsEnabled() && existsSync(PYTHON) ? describe : describe.skip;
jest.setTimeout(60_000);

const IF = { up: 'wdhup', fresh: 'wdhnew', r: 'wdhr', r2: 'wdhr2', f: 'wdhf', far: 'wdhfar' } as const;
const LEASE_SERVER = '192.0.2.65'; // the router, on the uplink's subnet
const FAR = '198.51.100.2';
const FAR6 = '2001:db8:f::2';

/**
 * One datagram or ICMPv6 message; prints `sent` or `error ERRNO`.
 *   udp4 BIND_ADDR SPORT DST DPORT [DEV]   (DEV: SO_BINDTODEVICE; with no address there, the source is 0.0.0.0)
 *   udp6 SPORT DST DPORT [DEV]              (DEV: the scope of a link-scoped DST)
 *   nd6 TYPE DST                            (raw ICMPv6, hop limit 255, as ND sends it)
 */
const PROBE = `
import socket, struct, sys
a = sys.argv[1:]
try:
    if a[0] == 'udp4':
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if len(a) > 5: s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a[5].encode())
        s.bind((a[1], int(a[2])))
        s.sendto(b'wgctl-probe', (a[3], int(a[4])))
    elif a[0] == 'udp6':
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        scope = socket.if_nametoindex(a[4]) if len(a) > 4 else 0
        if scope: s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a[4].encode())
        s.bind(('::', int(a[1])))
        s.sendto(b'wgctl-probe', (a[2], int(a[3]), 0, scope))
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        s.sendto(struct.pack('!BBHI16s', int(a[1]), 0, 0, 0, socket.inet_pton(socket.AF_INET6, a[2])), (a[2], 0))
    print('sent')
except OSError as e:
    print('error', e.errno)
`;

describeNetns('kill switch: DHCP, DHCPv6 and ND exceptions reach the link only (linux, real nftables)', () => {
  const id = randomBytes(2).toString('hex');
  const ns = { host: `wdh-host-${id}`, lan: `wdh-lan-${id}`, far: `wdh-far-${id}` };
  const root = new ExecRunner();
  const run = (name: string) => new NetnsRunner(name, root);
  const sh = (name: string, ...argv: string[]) => run(name).run(argv);
  const processes = new Set<StreamingProcess>();
  const driver = new LinuxDriver({ nftTable: 'wgctl' });
  // The IPv6 "WireGuard server" is the far host: its flow needs ND with the router both ways.
  const policy: KillSwitchPolicy = { uplink: IF.up, endpoints: [{ ip: '203.0.113.10', port: 51820 }, { ip: FAR6, port: 51820 }], allowDhcp6: true, blockIpv6: false };

  const probe = async (...args: string[]) => (await run(ns.host).run([PYTHON, '-c', PROBE, ...args], { timeoutMs: 5_000 })).stdout.trim();
  /** What a local program tries: UDP from the client ports, and ND-typed ICMPv6, to the far host. */
  const exfiltrate = async () => [
    await probe('udp4', '0.0.0.0', '68', FAR, '67'),
    await probe('udp6', '546', FAR6, '547'),
    await probe('nd6', '135', FAR6), // a "neighbour solicitation" to a global address
    await probe('nd6', '136', FAR6), // a "neighbour advertisement"
  ];
  /** Everything that reaches the far host, but its own ND with the router. */
  const capture = async (name: string, iface: string) => {
    const c = await startNetnsCapture(name, iface, processes);
    return async (): Promise<TcpdumpPacket[]> => (await c.stop()).filter((p) => p.srcMac !== c.mac && p.family !== 'arp');
  };
  const farSees = (packets: TcpdumpPacket[]) => packets.filter((p) => p.dst === FAR || p.dst === FAR6).map((p) => p.line);

  beforeAll(async () => {
    try {
      for (const name of Object.values(ns)) {
        await root.run(['ip', 'netns', 'add', name]);
        await sh(name, 'ip', 'link', 'set', 'lo', 'up');
      }
      const veth = (a: string, nsA: string, b: string, nsB: string) => root.run(['ip', 'link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
      await veth(IF.up, ns.host, IF.r, ns.lan);
      await veth(IF.fresh, ns.host, IF.r2, ns.lan);
      await veth(IF.f, ns.lan, IF.far, ns.far);
      // Link-local addresses usable at once (no DAD wait) on the links that are up from the start.
      for (const [name, dev] of [[ns.host, IF.up], [ns.lan, IF.r], [ns.lan, IF.f], [ns.far, IF.far]]) await sh(name, 'sysctl', '-qw', `net.ipv6.conf.${dev}.accept_dad=0`);
      const addr = (name: string, dev: string, cidr: string) => sh(name, 'ip', 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : []));
      await addr(ns.host, IF.up, '192.0.2.66/26');
      await addr(ns.host, IF.up, '2001:db8:d::2/64');
      await addr(ns.lan, IF.r, `${LEASE_SERVER}/26`);
      await addr(ns.lan, IF.r, '2001:db8:d::1/64');
      await addr(ns.lan, IF.f, '198.51.100.1/24');
      await addr(ns.lan, IF.f, '2001:db8:f::1/64');
      await addr(ns.far, IF.far, `${FAR}/24`);
      await addr(ns.far, IF.far, `${FAR6}/64`);
      for (const [name, dev] of [[ns.host, IF.up], [ns.lan, IF.r], [ns.lan, IF.r2], [ns.lan, IF.f], [ns.far, IF.far]]) await sh(name, 'ip', 'link', 'set', dev, 'up');
      await sh(ns.lan, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      await sh(ns.lan, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
      await sh(ns.host, 'ip', 'route', 'add', 'default', 'via', LEASE_SERVER, 'dev', IF.up);
      await sh(ns.host, 'ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:d::1', 'dev', IF.up);
      await sh(ns.far, 'ip', 'route', 'add', 'default', 'via', '198.51.100.1');
      await sh(ns.far, 'ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:f::1');
      // The path works, and neighbours are resolved (a probe must not wait in an ND queue).
      for (const target of [FAR, FAR6]) await run(ns.host).run(['ping', '-n', '-c', '1', '-W', '3', target], { timeoutMs: 5_000 });
    } catch (e) {
      await cleanup();
      throw e;
    }
  });

  const cleanup = async () => {
    await Promise.all([...processes].map((p) => p.stop(500)));
    for (const name of Object.values(ns)) await root.run(['ip', 'netns', 'del', name], { allowFailure: true });
  };
  afterAll(cleanup);

  it('control, without the kill switch: each attempt does reach the far host (so the capture can see one)', async () => {
    const stop = await capture(ns.far, IF.far);
    expect(await exfiltrate()).toEqual(['sent', 'sent', 'sent', 'sent']);
    const seen = farSees(await stop());
    expect(seen.filter((l) => / 198\.51\.100\.2\.67: /.test(l))).toHaveLength(1);
    expect(seen.filter((l) => / 2001:db8:f::2\.547: /.test(l))).toHaveLength(1);
    expect(seen.filter((l) => /ICMP6, neighbor (solicitation|advertisement)/.test(l))).toHaveLength(2);
  });

  it('with the kill switch: nothing from port 68/546 nor ND-typed ICMPv6 reaches the far host', async () => {
    await driver.loadKillSwitch(run(ns.host), policy);
    expect(await driver.readKillSwitch(run(ns.host), policy)).toMatchObject({ loaded: true, enabled: true, problems: [] });
    const stop = await capture(ns.far, IF.far);
    await exfiltrate();
    expect(farSees(await stop())).toEqual([]);
  });

  it('…while neighbour discovery still resolves both ways: the host its router for the IPv6 endpoint, the router the host for the reply', async () => {
    await sh(ns.host, 'ip', '-6', 'neigh', 'flush', 'dev', IF.up);
    await sh(ns.lan, 'ip', '-6', 'neigh', 'flush', 'dev', IF.r);
    const stop = await capture(ns.far, IF.far);
    await probe('udp6', '40000', FAR6, '51820'); // the host resolves 2001:db8:d::1 (NS to ff02::1:ff00:1, its NA back)
    await run(ns.far).run([PYTHON, '-c', PROBE, 'udp6', '51820', '2001:db8:d::2', '40000'], { timeoutMs: 5_000 }); // the router resolves the host (our NA)
    expect(farSees(await stop()).filter((l) => / 2001:db8:f::2\.51820: /.test(l))).toHaveLength(1);
    const neighbour = async (name: string, address: string, dev: string) => (await sh(name, 'ip', '-6', 'neigh', 'show', address, 'dev', dev)).stdout;
    expect(await neighbour(ns.host, '2001:db8:d::1', IF.up)).toMatch(/lladdr \S+ (router )?(REACHABLE|STALE|DELAY)/);
    expect(await neighbour(ns.lan, '2001:db8:d::2', IF.r)).toMatch(/lladdr \S+ (router )?(REACHABLE|STALE|DELAY)/);
  });

  it('…while DHCPDISCOVER from 0.0.0.0, a DHCPv6 solicit, RS and DAD still leave on a network just joined', async () => {
    const stop = await capture(ns.lan, IF.r2);
    await sh(ns.host, 'ip', 'link', 'set', IF.fresh, 'up'); // the kernel solicits routers and runs DAD on its link-local address
    await waitForLinkLocal(IF.fresh);
    // Before any lease the host has no IPv4 address at all, so the DISCOVER leaves from 0.0.0.0.
    await sh(ns.host, 'ip', '-4', 'addr', 'flush', 'dev', IF.up);
    try {
      expect(await probe('udp4', '0.0.0.0', '68', '255.255.255.255', '67', IF.fresh)).toBe('sent');
    } finally {
      await sh(ns.host, 'ip', 'addr', 'add', '192.0.2.66/26', 'dev', IF.up);
      await sh(ns.host, 'ip', 'route', 'add', 'default', 'via', LEASE_SERVER, 'dev', IF.up);
    }
    expect(await probe('udp6', '546', 'ff02::1:2', '547', IF.fresh)).toBe('sent');
    await waitForRouterSolicitation(stop);
  });

  it('unicast to the lease server passes only when the policy names it (RENEWING), and only to it', async () => {
    let stop = await capture(ns.lan, IF.r);
    await probe('udp4', '0.0.0.0', '68', LEASE_SERVER, '67');
    expect((await stop()).filter((p) => p.dst === LEASE_SERVER && p.dstPort === 67)).toEqual([]);

    const renewing = { ...policy, dhcpServer: LEASE_SERVER };
    await driver.loadKillSwitch(run(ns.host), renewing);
    expect(await driver.readKillSwitch(run(ns.host), renewing)).toMatchObject({ problems: [] });
    stop = await capture(ns.lan, IF.r);
    await probe('udp4', '0.0.0.0', '68', LEASE_SERVER, '67');
    await probe('udp4', '0.0.0.0', '68', FAR, '67');
    const seen = (await stop()).filter((p) => p.dstPort === 67).map((p) => p.dst);
    expect(seen).toEqual([LEASE_SERVER]);
    await driver.unloadKillSwitch(run(ns.host), {});
  });

  /** The fresh link's link-local address, once out of DAD (the kernel's DAD NS went out through the kill switch). */
  async function waitForLinkLocal(dev: string): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const out = (await sh(ns.host, 'ip', '-6', 'addr', 'show', 'dev', dev, 'scope', 'link')).stdout;
      if (/inet6 fe80::/.test(out) && !/tentative/.test(out)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${dev} has no usable link-local address after 5 s`);
  }

  /** The kernel's RS goes out up to 1 s after link up (rtr_solicit_delay); then all four must be on the link. */
  async function waitForRouterSolicitation(stop: () => Promise<TcpdumpPacket[]>): Promise<void> {
    await new Promise((r) => setTimeout(r, 1_500));
    const lines = (await stop()).map((p) => p.line);
    const has = (pattern: RegExp) => lines.some((l) => pattern.test(l));
    expect({
      discover: has(/ 0\.0\.0\.0\.68 > 255\.255\.255\.255\.67: /),
      solicit: has(/ fe80::[0-9a-f:]+\.546 > ff02::1:2\.547: /),
      routerSolicitation: has(/ > ff02::2: ICMP6, router solicitation/),
      dad: has(/ :: > ff02::1:ff[0-9a-f:]+: ICMP6, neighbor solicitation/),
    }).toEqual({ discover: true, solicit: true, routerSolicitation: true, dad: true });
  }
});
