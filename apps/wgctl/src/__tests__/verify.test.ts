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
  return { interface: 'en0', family: 'ip', protocol: 'udp', src: '', dst: '', srcPort: 0, dstPort: 0, line: '', srcMac: '', dstMac: '', ...p };
}

function capture(iface: string, packets: Packet[], probeOk = true, link: Partial<CaptureResult> = {}): CaptureResult {
  return { interface: iface, packets, probeOk, probeDetail: probeOk ? '3/3 replies' : '0/3 replies', command: undefined, linkAddress: '', interfaceAddresses: [], ...link };
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
    expect(verdict.allowed).toEqual({ wireguard: 3, dhcp: 2, arp: 1, ndp: 1, eapol: 0 });
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
    expect(verdict.warnings).toContainEqual(expect.stringMatching(/no reply: 0\/3 replies/));
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
        // Without MACs a packet may be the Mac's (DHCP to the broadcast address) or a server's answer.
        const isDhcp = p.protocol === 'udp' && ((p.srcPort === 68 && p.dstPort === 67 && p.dst === '255.255.255.255') || (p.srcPort === 67 && p.dstPort === 68));
        const verdict = judgeVerify(capture('en0', [wgOut, pk]), goodVm, ENDPOINTS, TUNNEL, TARGET);
        expect(verdict.leaks.length).toBe(isWg || isDhcp ? 0 : 1);
        expect(verdict.pass).toBe(isWg || isDhcp);
      }),
      { numRuns: 300 },
    );
  });
});

describe('judgeVerify on a café LAN: what the Mac sent, by link-layer source', () => {
  const MAC = '3e:95:27:df:e4:20';
  const ROUTER = '2e:a4:93:48:59:6a';
  const PRINTER = '02:00:5e:10:00:32';
  const LINK = { linkAddress: MAC, interfaceAddresses: ['192.0.2.10/25', '2001:db8:c1::100/64', 'fe80::3c95:27ff:fedf:e420/64'] };
  const sent = (p: Partial<Packet>) => packet({ srcMac: MAC, dstMac: ROUTER, ...p });
  const wgSent = sent({ ...wgOut });
  const wgReceived = packet({ ...wgIn, srcMac: ROUTER, dstMac: MAC });
  const uplink = (...packets: Packet[]) => capture('en0', [wgSent, wgReceived, ...packets], true, LINK);
  const judge = (...packets: Packet[]) => judgeVerify(uplink(...packets), goodVm, ENDPOINTS, TUNNEL, TARGET);

  const printerMdns = packet({ srcMac: PRINTER, dstMac: '01:00:5e:00:00:fb', src: '192.0.2.50', srcPort: 5353, dst: '224.0.0.251', dstPort: 5353 });
  const printerMdns6 = packet({ family: 'ip6', srcMac: PRINTER, dstMac: '33:33:00:00:00:fb', src: 'fe80::50', srcPort: 5353, dst: 'ff02::fb', dstPort: 5353 });
  const ssdp = packet({ srcMac: PRINTER, dstMac: '01:00:5e:7f:ff:fa', src: '192.0.2.50', srcPort: 40000, dst: '239.255.255.250', dstPort: 1900 });
  const mld = packet({ family: 'ip6', protocol: 'icmp6', srcMac: PRINTER, dstMac: '33:33:00:00:00:16', src: 'fe80::50', dst: 'ff02::16', line: 'HBH ICMP6, multicast listener report v2, 1 group record(s), length 28' });
  const rs = packet({ family: 'ip6', protocol: 'icmp6', srcMac: PRINTER, dstMac: '33:33:00:00:00:02', src: 'fe80::50', dst: 'ff02::2', line: 'ICMP6, router solicitation, length 16' });
  const arp = packet({ family: 'arp', protocol: 'arp', srcMac: PRINTER, dstMac: 'ff:ff:ff:ff:ff:ff', src: '192.0.2.50', dst: '192.0.2.99' });
  const lldp = packet({ family: 'other', protocol: 'lldp', srcMac: ROUTER, dstMac: '01:80:c2:00:00:0e' });

  it('neighbours\' mDNS, SSDP, MLD, RS, ARP and LLDP are counted apart, never a leak', () => {
    const verdict = judge(printerMdns, printerMdns6, ssdp, mld, rs, arp, lldp);
    expect(verdict.leaks).toEqual([]);
    expect(verdict.unsolicitedInbound).toEqual([]);
    expect(verdict.neighbourPackets).toBe(7);
    expect(verdict.allowed).toEqual({ wireguard: 2, dhcp: 0, arp: 0, ndp: 0, eapol: 0 });
    expect(verdict.uplinkLinkAddress).toBe(MAC);
    expect(verdict.pass).toBe(true);
  });

  it('the Mac\'s own mDNS, SSDP and MLD are leaks (the kill switch lets none out)', () => {
    const own = [
      sent({ dstMac: '01:00:5e:00:00:fb', src: '192.0.2.10', srcPort: 5353, dst: '224.0.0.251', dstPort: 5353 }),
      sent({ dstMac: '01:00:5e:7f:ff:fa', src: '192.0.2.10', srcPort: 50000, dst: '239.255.255.250', dstPort: 1900 }),
      sent({ ...mld, srcMac: MAC, src: 'fe80::3c95:27ff:fedf:e420' }),
    ];
    const verdict = judge(...own);
    expect(verdict.pass).toBe(false);
    expect(verdict.leaks.map((l) => l.reason)).toEqual([
      'UDP 192.0.2.10:5353 → 224.0.0.251:5353: mDNS outside the tunnel',
      'UDP 192.0.2.10:50000 → 239.255.255.250:1900: SSDP outside the tunnel',
      'ICMP6 fe80::3c95:27ff:fedf:e420 → ff02::16: ICMP outside the tunnel',
    ]);
    expect(verdict.neighbourPackets).toBe(0);
  });

  it('the Mac\'s DHCP only to the broadcast address or an on-link server; from port 68 to an off-link host is a leak', () => {
    const discover = sent({ dstMac: 'ff:ff:ff:ff:ff:ff', src: '0.0.0.0', srcPort: 68, dst: '255.255.255.255', dstPort: 67 });
    const renew = sent({ src: '192.0.2.10', srcPort: 68, dst: '192.0.2.1', dstPort: 67 });
    const offLink = sent({ src: '192.0.2.10', srcPort: 68, dst: '198.51.100.9', dstPort: 67 });
    const verdict = judge(discover, renew, offLink);
    expect(verdict.allowed.dhcp).toBe(2);
    expect(verdict.leaks).toEqual([{ packet: offLink, reason: 'UDP 192.0.2.10:68 → 198.51.100.9:67: DHCP client traffic not to the link\'s DHCP server' }]);
  });

  it('DHCPv6 only from fe80::/10:546 to ff02::1:2:547; RS only to ff02::2; NS/NA only on the link', () => {
    const v6 = (p: Partial<Packet>) => sent({ family: 'ip6', ...p });
    const solicit = v6({ src: 'fe80::3c95:27ff:fedf:e420', srcPort: 546, dst: 'ff02::1:2', dstPort: 547 });
    const solicitGlobal = v6({ src: '2001:db8:c1::100', srcPort: 546, dst: '2001:db8:ffff::547', dstPort: 547 });
    const rsOk = v6({ protocol: 'icmp6', src: 'fe80::3c95:27ff:fedf:e420', dst: 'ff02::2', line: 'ICMP6, router solicitation, length 16' });
    const rsOff = v6({ protocol: 'icmp6', src: '2001:db8:c1::100', dst: '2001:db8:ffff::1', line: 'ICMP6, router solicitation, length 16' });
    const ns = v6({ protocol: 'icmp6', src: '2001:db8:c1::100', dst: '2001:db8:c1::1', line: 'ICMP6, neighbor solicitation, who has 2001:db8:c1::1, length 32' });
    const naOff = v6({ protocol: 'icmp6', src: '2001:db8:c1::100', dst: '2001:db8:ffff::9', line: 'ICMP6, neighbor advertisement, tgt is 2001:db8:c1::100, length 24' });
    const verdict = judge(solicit, solicitGlobal, rsOk, rsOff, ns, naOff);
    expect(verdict.allowed).toMatchObject({ dhcp: 1, ndp: 2 });
    expect(verdict.leaks.map((l) => l.packet)).toEqual([solicitGlobal, rsOff, naOff]);
  });

  it('unicast reaching the Mac unsolicited is reported, not a FAIL; replies to WireGuard, DHCP and ND are allowed', () => {
    const received = (p: Partial<Packet>) => packet({ srcMac: PRINTER, dstMac: MAC, ...p });
    const scan = received({ protocol: 'tcp', src: '192.0.2.50', srcPort: 40000, dst: '192.0.2.10', dstPort: 22 });
    const offer = received({ srcMac: ROUTER, src: '192.0.2.1', srcPort: 67, dst: '192.0.2.10', dstPort: 68 });
    const na = received({ family: 'ip6', protocol: 'icmp6', src: 'fe80::1', dst: 'fe80::3c95:27ff:fedf:e420', line: 'ICMP6, neighbor advertisement, tgt is fe80::1, length 24' });
    const verdict = judge(scan, offer, na);
    expect(verdict.pass).toBe(true);
    expect(verdict.allowed).toMatchObject({ wireguard: 2, dhcp: 1, ndp: 1 });
    expect(verdict.unsolicitedInbound).toEqual([{ packet: scan, reason: 'TCP 192.0.2.50:40000 → 192.0.2.10:22: reached the uplink unsolicited' }]);
    expect(verdict.warnings).toContainEqual(expect.stringMatching(/1 packet\(s\) reached the uplink unsolicited \(not a leak/));
  });

  it('the Mac\'s Wi-Fi key exchange (EAPOL) is link housekeeping; any other non-IP frame it sends is a leak', () => {
    const eapol = sent({ family: 'other', protocol: 'eapol', line: '3e:95:27:df:e4:20 > 2e:a4:93:48:59:6a, ethertype EAPOL (0x888e), length 113: EAPOL key (3) v2, len 95' });
    const odd = sent({ family: 'other', protocol: 'unknown', line: '3e:95:27:df:e4:20 > ff:ff:ff:ff:ff:ff, ethertype Unknown (0x88b5), length 60: ' });
    const verdict = judge(eapol, odd);
    expect(verdict.allowed.eapol).toBe(1);
    expect(verdict.leaks).toEqual([{ packet: odd, reason: 'UNKNOWN frame: 3e:95:27:df:e4:20 > ff:ff:ff:ff:ff:ff, ethertype Unknown (0x88b5), length 60:' }]);
  });

  it('without the uplink\'s MAC every packet is judged as the Mac\'s (strict), and says so', () => {
    const verdict = judgeVerify(capture('en0', [wgSent, printerMdns], true, { linkAddress: '' }), goodVm, ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.pass).toBe(false);
    expect(verdict.leaks.map((l) => l.packet)).toEqual([printerMdns]);
    expect(verdict.warnings).toContainEqual(expect.stringMatching(/own MAC is unknown: every packet was judged as sent by the Mac/));
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
