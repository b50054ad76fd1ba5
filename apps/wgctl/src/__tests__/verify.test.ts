import fc from 'fast-check';
import type { CaptureResult, Endpoint, Packet } from '@wgctl/proto';
import { canonicalIp, judgeVerify } from '../verify';

const ENDPOINTS: Endpoint[] = [
  { host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 },
  { host: '2001:db8::5', ip: '2001:db8::5', port: 4500 },
];
const TUNNEL = ['10.64.0.2/32', 'fd00::2/128'];
const TARGET = '198.51.100.7';

function packet(p: Partial<Packet>): Packet {
  return { interface: 'en0', family: 'ip', protocol: 'udp', src: '', dst: '', srcPort: 0, dstPort: 0, line: '', ...p };
}

function capture(iface: string, packets: Packet[], probeOk = true): CaptureResult {
  return { interface: iface, packets, probeOk, probeDetail: probeOk ? '3/3 replies' : '0/3 replies', command: undefined };
}

const wgOut = packet({ src: '192.0.2.10', srcPort: 60000, dst: '203.0.113.5', dstPort: 51820 });
const wgIn = packet({ src: '203.0.113.5', srcPort: 51820, dst: '192.0.2.10', dstPort: 60000 });
const probeInTunnel = packet({ interface: 'wg0', protocol: 'icmp', src: '10.64.0.2', dst: TARGET, line: 'ICMP echo request' });
const replyInTunnel = packet({ interface: 'wg0', protocol: 'icmp', src: TARGET, dst: '10.64.0.2', line: 'ICMP echo reply' });

const goodVm = capture('wg0', [probeInTunnel, replyInTunnel]);

describe('judgeVerify', () => {
  it('passes when the uplink carries only WireGuard, DHCP, ARP and NDP and the probe left the tunnel SNATed', () => {
    const mac = capture('en0', [
      wgOut,
      wgIn,
      packet({ src: '0.0.0.0', srcPort: 68, dst: '255.255.255.255', dstPort: 67 }),
      packet({ src: 'fe80::1', srcPort: 546, dst: 'ff02::1:2', dstPort: 547, family: 'ip6' }),
      packet({ family: 'arp', protocol: '', line: 'ARP, Request who-has 192.0.2.1 tell 192.0.2.10' }),
      packet({ family: 'ip6', protocol: 'icmp6', src: 'fe80::1', dst: 'ff02::1:ff00:1', line: 'ICMP6, neighbor solicitation, who has fe80::2' }),
      packet({ family: 'ip6', src: '2001:db8::a', srcPort: 5555, dst: '2001:DB8:0::5', dstPort: 4500 }),
    ]);
    const verdict = judgeVerify(mac, goodVm, ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.problems).toEqual([]);
    expect(verdict.leaks).toEqual([]);
    expect(verdict.pass).toBe(true);
    expect(verdict.allowed).toEqual({ wireguard: 3, dhcp: 2, arp: 1, ndp: 1 });
    expect(verdict.probeSeen).toEqual([probeInTunnel]);
  });

  it('lists every leaked packet with a reason', () => {
    const dns = packet({ src: '192.0.2.10', srcPort: 5353, dst: '192.0.2.1', dstPort: 53 });
    const https = packet({ protocol: 'tcp', src: '192.0.2.10', srcPort: 50000, dst: '198.51.100.80', dstPort: 443 });
    const ping = packet({ protocol: 'icmp', src: '192.0.2.10', dst: TARGET });
    const wrongPort = packet({ src: '192.0.2.10', srcPort: 60000, dst: '203.0.113.5', dstPort: 51821 });
    const tcpToServer = packet({ protocol: 'tcp', src: '192.0.2.10', srcPort: 40000, dst: '203.0.113.5', dstPort: 51820 });
    const ndpLookalike = packet({ family: 'ip6', protocol: 'icmp6', src: '2001:db8::a', dst: '2001:db8::b', line: 'ICMP6, echo request' });
    const verdict = judgeVerify(capture('en0', [wgOut, dns, https, ping, wrongPort, tcpToServer, ndpLookalike]), goodVm, ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.pass).toBe(false);
    expect(verdict.leaks.map((l) => l.packet)).toEqual([dns, https, ping, wrongPort, tcpToServer, ndpLookalike]);
    expect(verdict.leaks[0]!.reason).toMatch(/DNS outside the tunnel/);
    expect(verdict.leaks[1]!.reason).toBe('TCP 192.0.2.10:50000 → 198.51.100.80:443: outside the tunnel');
    expect(verdict.leaks[2]!.reason).toMatch(/ICMP outside the tunnel/);
    expect(verdict.leaks[3]!.reason).toMatch(/WireGuard server but not its WireGuard port/);
    expect(verdict.leaks[4]!.reason).toMatch(/WireGuard server but not its WireGuard port/);
    expect(verdict.problems).toEqual([]);
  });

  it('treats DHCP-port traffic to a non-DHCP port as a leak', () => {
    const verdict = judgeVerify(
      capture('en0', [wgOut, packet({ src: '192.0.2.10', srcPort: 68, dst: '198.51.100.9', dstPort: 443 })]),
      goodVm,
      ENDPOINTS,
      TUNNEL,
      TARGET,
    );
    expect(verdict.leaks).toHaveLength(1);
    expect(verdict.pass).toBe(false);
  });

  it('fails when the VM saw the probe leave with the Mac source (SNAT missing)', () => {
    const unSnated = packet({ interface: 'wg0', protocol: 'icmp', src: '192.0.2.2', dst: TARGET });
    const verdict = judgeVerify(capture('en0', [wgOut]), capture('wg0', [unSnated]), ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.pass).toBe(false);
    expect(verdict.leaks).toEqual([]);
    expect(verdict.problems).toEqual([expect.stringMatching(/source 192\.0\.2\.2, not a tunnel address.*SNAT is missing/)]);
  });

  it('fails when the VM did not see the probe at all', () => {
    const other = packet({ interface: 'wg0', protocol: 'icmp', src: '10.64.0.2', dst: '198.51.100.99' });
    const verdict = judgeVerify(capture('en0', [wgOut]), capture('wg0', [other]), ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.pass).toBe(false);
    expect(verdict.problems).toEqual([expect.stringMatching(/did not see the probe to 198\.51\.100\.7 on the tunnel interface wg0/)]);
  });

  it('refuses a vacuous pass: no WireGuard packets on the uplink', () => {
    const verdict = judgeVerify(capture('en0', []), goodVm, ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.leaks).toEqual([]);
    expect(verdict.pass).toBe(false);
    expect(verdict.problems[0]).toMatch(/no WireGuard packets to 203\.0\.113\.5:51820, 2001:db8::5:4500 on the uplink en0/);
  });

  it('fails without endpoints or tunnel addresses (nothing to judge against)', () => {
    const verdict = judgeVerify(capture('en0', [wgOut]), goodVm, [], [], TARGET);
    expect(verdict.pass).toBe(false);
    expect(verdict.problems).toEqual(
      expect.arrayContaining([expect.stringMatching(/no WireGuard server endpoints/), expect.stringMatching(/no tunnel addresses/)]),
    );
  });

  it('a probe without reply is a warning, not a failure', () => {
    const verdict = judgeVerify(capture('en0', [wgOut], false), capture('wg0', [probeInTunnel]), ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.pass).toBe(true);
    expect(verdict.warnings).toEqual([expect.stringMatching(/no reply: 0\/3 replies/)]);
  });

  it('without a probe target, any ICMP leaving with a tunnel source counts', () => {
    const verdict = judgeVerify(capture('en0', [wgOut]), capture('wg0', [replyInTunnel, probeInTunnel]), ENDPOINTS, TUNNEL);
    expect(verdict.pass).toBe(true);
    expect(verdict.probeSeen).toEqual([probeInTunnel]);
  });

  it('matches IPv6 endpoints and tunnel sources in any spelling', () => {
    const v6Probe = packet({ interface: 'wg0', family: 'ip6', protocol: 'icmp6', src: 'FD00:0::2', dst: '2001:db8::77' });
    const v6Wg = packet({ family: 'ip6', src: '2001:db8::a', srcPort: 1234, dst: '[2001:0db8::5]', dstPort: 4500 });
    const verdict = judgeVerify(capture('en0', [v6Wg]), capture('wg0', [v6Probe]), ENDPOINTS, TUNNEL, '2001:db8::77');
    expect(verdict.pass).toBe(true);
  });

  it('property: a packet that is none of WireGuard/DHCP/ARP/NDP is always reported as a leak', () => {
    const octet = fc.integer({ min: 0, max: 255 });
    const ip = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
    const port = fc.integer({ min: 1, max: 65535 });
    const arbitraryPacket = fc.record({
      protocol: fc.constantFrom('udp', 'tcp', 'icmp'),
      src: ip,
      dst: ip,
      srcPort: port,
      dstPort: port,
    });
    fc.assert(
      fc.property(arbitraryPacket, (p) => {
        const pk = packet(p);
        const isWg =
          p.protocol === 'udp' &&
          ((p.dst === '203.0.113.5' && p.dstPort === 51820) || (p.src === '203.0.113.5' && p.srcPort === 51820));
        const isDhcp = p.protocol === 'udp' && [67, 68].includes(p.srcPort) && [67, 68].includes(p.dstPort);
        const verdict = judgeVerify(capture('en0', [wgOut, pk]), goodVm, ENDPOINTS, TUNNEL, TARGET);
        expect(verdict.leaks.length).toBe(isWg || isDhcp ? 0 : 1);
        expect(verdict.pass).toBe(isWg || isDhcp);
      }),
      { numRuns: 300 },
    );
  });
});

describe('canonicalIp', () => {
  it('normalises IPv6 spellings, brackets, zones and IPv4-mapped addresses', () => {
    expect(canonicalIp('2001:DB8:0:0::1')).toBe('2001:db8::1');
    expect(canonicalIp('[2001:db8::1]')).toBe('2001:db8::1');
    expect(canonicalIp('fe80::1%en0')).toBe('fe80::1');
    expect(canonicalIp('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('not-an-ip')).toBe('not-an-ip');
  });
});
