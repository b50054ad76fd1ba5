/**
 * `wgctl verify` with --allow-lan (issue #14 item 3): traffic with the LAN subnets the
 * mac-agent's kill switch lets through (its status) is counted as allowed, never a leak; DNS to
 * the LAN, other multicast, and anything off those subnets still are leaks. The end-to-end
 * proof is tools/e2e/allow-lan.netns.test.ts.
 */
import type { CaptureResult, Endpoint, Packet } from '@wgctl/proto';
import { judgeVerify } from '../verify';

const ENDPOINTS: Endpoint[] = [{ host: 'vpn.example.net', ip: '203.0.113.5', port: 51820 }];
const TUNNEL = ['10.64.0.2/32'];
const TARGET = '198.51.100.7';
const LAN = ['192.0.2.0/25', 'fe80::/64'];
const MAC = '192.0.2.10';

const packet = (p: Partial<Packet>): Packet => ({ interface: 'en0', family: 'ip', protocol: 'udp', src: '', dst: '', srcPort: 0, dstPort: 0, line: '', srcMac: '', dstMac: '', ...p });
const capture = (iface: string, packets: Packet[]): CaptureResult => ({ interface: iface, packets, probeOk: true, probeDetail: '', command: undefined, linkAddress: '', interfaceAddresses: [] });
const vm = capture('wg0', [packet({ interface: 'wg0', protocol: 'icmp', src: '10.64.0.2', dst: TARGET, line: 'ICMP echo request' })]);
const wg = packet({ src: MAC, srcPort: 60000, dst: '203.0.113.5', dstPort: 51820 });

const printer = [
  packet({ protocol: 'tcp', src: MAC, srcPort: 50000, dst: '192.0.2.60', dstPort: 631 }),
  packet({ protocol: 'tcp', src: '192.0.2.60', srcPort: 631, dst: MAC, dstPort: 50000 }),
  packet({ src: MAC, srcPort: 5353, dst: '224.0.0.251', dstPort: 5353 }),
  packet({ family: 'ip6', src: 'fe80::1', srcPort: 5353, dst: 'ff02::fb', dstPort: 5353 }),
];

describe('judgeVerify with --allow-lan', () => {
  it('counts the Mac\'s traffic with its LAN subnets and mDNS as allowed', () => {
    const verdict = judgeVerify(capture('en0', [wg, ...printer]), vm, ENDPOINTS, TUNNEL, TARGET, LAN);
    expect({ pass: verdict.pass, leaks: verdict.leaks }).toEqual({ pass: true, leaks: [] });
    expect(verdict.allowed.lan).toBe(4);
  });

  it('the same packets are leaks without --allow-lan (no LAN subnets)', () => {
    const verdict = judgeVerify(capture('en0', [wg, ...printer]), vm, ENDPOINTS, TUNNEL, TARGET);
    expect(verdict.leaks.map((l) => l.packet)).toEqual(printer);
    expect(verdict.allowed.lan).toBeUndefined();
  });

  it('with link-layer addresses: a LAN host reaching the Mac is allowed, an off-LAN one is unsolicited', () => {
    const own = '02:00:00:00:00:0a';
    const fromLan = packet({ protocol: 'tcp', src: '192.0.2.60', srcPort: 40000, dst: MAC, dstPort: 445, srcMac: '02:00:00:00:00:3c', dstMac: own });
    const fromAfar = packet({ protocol: 'tcp', src: '198.51.100.80', srcPort: 40000, dst: MAC, dstPort: 445, srcMac: '02:00:00:00:00:01', dstMac: own });
    const mac = { ...capture('en0', [{ ...wg, srcMac: own }, fromLan, fromAfar]), linkAddress: own };
    const verdict = judgeVerify(mac, vm, ENDPOINTS, TUNNEL, TARGET, LAN);
    expect(verdict.allowed.lan).toBe(1);
    expect(verdict.unsolicitedInbound.map((u) => u.packet)).toEqual([fromAfar]);
  });

  it.each([
    ['DNS to a LAN resolver', packet({ src: MAC, srcPort: 40000, dst: '192.0.2.1', dstPort: 53 })],
    ['DNS over TLS to the LAN', packet({ protocol: 'tcp', src: MAC, srcPort: 40001, dst: '192.0.2.1', dstPort: 853 })],
    ['a host off the uplink\'s subnet', packet({ protocol: 'tcp', src: MAC, srcPort: 40002, dst: '192.0.2.200', dstPort: 631 })],
    ['SSDP (only mDNS multicast is allowed)', packet({ src: MAC, srcPort: 1900, dst: '239.255.255.250', dstPort: 1900 })],
  ])('%s is still a leak', (_what, leak) => {
    const verdict = judgeVerify(capture('en0', [wg, leak]), vm, ENDPOINTS, TUNNEL, TARGET, LAN);
    expect(verdict.leaks.map((l) => l.packet)).toEqual([leak]);
  });
});
