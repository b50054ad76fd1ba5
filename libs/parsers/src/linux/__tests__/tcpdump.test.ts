import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseTcpdumpLine, parseTcpdumpOutput } from '../tcpdump';

const fixture = (name: string) => readFileSync(join(__dirname, '../__fixtures__', name), 'utf8');
const essence = ({ family, protocol, src, dst, srcPort, dstPort }: ReturnType<typeof parseTcpdumpOutput>[number]) => ({ family, protocol, src, dst, srcPort, dstPort });

describe('parseTcpdumpLine', () => {
  it('reads a real plain capture: ARP, ICMP, ICMP6/NDP, UDP, TCP, fragments', () => {
    const packets = parseTcpdumpOutput(fixture('tcpdump-plain.txt'));
    expect(packets).toHaveLength(26);
    expect(packets[0]).toMatchObject({ family: 'ip6', protocol: 'icmp6', src: 'fe80::2ca4:93ff:fe48:596a', dst: 'ff02::16' });
    expect(packets[1]).toMatchObject({ family: 'arp', protocol: 'arp', src: '192.0.2.2', dst: '192.0.2.1', length: 28 });
    expect(packets[3]).toMatchObject({ family: 'ip', protocol: 'icmp', src: '192.0.2.2', dst: '192.0.2.1', length: 64, time: '07:13:19.124941' });
    expect(packets[9]).toMatchObject({ family: 'ip', protocol: 'udp', src: '192.0.2.2', srcPort: 48352, dst: '192.0.2.1', dstPort: 51820, length: 2 });
    expect(packets[11]).toMatchObject({ family: 'ip6', protocol: 'udp', src: '2001:db8:a::2', srcPort: 38331, dst: '2001:db8:a::1', dstPort: 53 });
    expect(packets[13]).toMatchObject({ family: 'ip', protocol: 'tcp', srcPort: 60798, dstPort: 80 });
    expect(packets[20]).toMatchObject({ family: 'ip', protocol: 'ip-proto-1' });
  });

  it('reads the same packets from -e (link-level) and -i any captures', () => {
    const plain = parseTcpdumpOutput(fixture('tcpdump-plain.txt')).map(essence);
    const ether = parseTcpdumpOutput(fixture('tcpdump-e.txt'));
    const any = parseTcpdumpOutput(fixture('tcpdump-any.txt'));
    expect(ether.map(essence)).toEqual(plain);
    expect(any.map(essence)).toEqual(plain);
    expect(ether[1]).toMatchObject({ srcMac: '3e:95:27:df:e4:20', dstMac: 'ff:ff:ff:ff:ff:ff' });
    expect(any[1]).toMatchObject({ interface: 'wtmx0', direction: 'Out' });
    expect(any[2]).toMatchObject({ direction: 'In' });
  });

  it('reads every -e variant tcpdump 4.99.3 printed for crafted frames: mDNS, DHCP, 802.1Q, 802.3 LLC, unknown ethertype (hex dump), LLDP, raw IP, EAPOL', () => {
    // tcpdump-e-variants.txt: `tcpdump -e -nn -r` of pcaps of those frames (EN10MB, RAW, EN10MB).
    const packets = parseTcpdumpOutput(fixture('tcpdump-e-variants.txt'));
    expect(packets.map((p) => [p.family, p.protocol, p.srcMac, p.dstMac])).toEqual([
      ['ip', 'udp', '02:00:5e:10:00:32', '01:00:5e:00:00:fb'],
      ['ip', 'udp', '3e:95:27:df:e4:20', 'ff:ff:ff:ff:ff:ff'],
      ['ip', 'udp', '3e:95:27:df:e4:20', '2e:a4:93:48:59:6a'],
      ['other', '802.3', '2e:a4:93:48:59:6a', '01:80:c2:00:00:00'],
      ['other', 'unknown', '02:00:5e:10:00:32', 'ff:ff:ff:ff:ff:ff'], // its three hex lines are not packets
      ['other', 'lldp', '2e:a4:93:48:59:6a', '01:80:c2:00:00:0e'],
      ['ip', 'icmp', undefined, undefined],
      ['ip6', 'icmp6', undefined, undefined],
      ['other', 'eapol', '3e:95:27:df:e4:20', '2e:a4:93:48:59:6a'], // Wi-Fi (WPA) key exchange
    ]);
    expect(packets[0]).toMatchObject({ src: '192.0.2.50', srcPort: 5353, dst: '224.0.0.251', dstPort: 5353 });
    expect(packets[1]).toMatchObject({ src: '0.0.0.0', srcPort: 68, dst: '255.255.255.255', dstPort: 67 });
    expect(packets[2]).toMatchObject({ vlan: 10, src: '192.0.2.100', dst: '203.0.113.50', dstPort: 51820, length: 32 });
    expect(packets[7]).toMatchObject({ src: '2001:db8:6:64::2', dst: '2001:db8:0:4::2' });
  });

  it('reads the -e forms of older tcpdump (macOS 4.9): unpadded MACs, Broadcast, a VLAN inner type without its code', () => {
    // Written by hand after print-ether.c of tcpdump 4.9 (VLAN: "%s, " of the TCI, then "ethertype %s, "
    // with the name only) and of older releases (", CFI"); no captured macOS sample at hand.
    expect(parseTcpdumpLine('12:00:00.1 a4:83:e7:1:2:3 > Broadcast, ethertype ARP (0x0806), length 42: Request who-has 192.0.2.1 tell 192.0.2.100, length 28'))
      .toMatchObject({ family: 'arp', srcMac: 'a4:83:e7:01:02:03', dstMac: 'ff:ff:ff:ff:ff:ff' });
    expect(parseTcpdumpLine('12:00:00.1 a4:83:e7:01:02:03 > 2e:a4:93:48:59:6a, ethertype 802.1Q (0x8100), length 78: vlan 7, p 0, ethertype IPv6, 2001:db8:c1::100.5353 > ff02::fb.5353: 0 [1q] PTR? _ipp._tcp.local. (32)'))
      .toMatchObject({ family: 'ip6', protocol: 'udp', vlan: 7, src: '2001:db8:c1::100', dstPort: 5353 });
    expect(parseTcpdumpLine('12:00:00.1 a4:83:e7:01:02:03 > 2e:a4:93:48:59:6a, ethertype 802.1Q (0x8100), length 102: vlan 7, p 0, CFI, ethertype IPv4, 192.0.2.100.68 > 192.0.2.1.67: BOOTP/DHCP, Request, length 300'))
      .toMatchObject({ family: 'ip', vlan: 7, srcPort: 68, dstPort: 67 });
  });

  it('skips tcpdump status lines and marks unknown link types as other', () => {
    expect(parseTcpdumpLine('listening on wtmx0, link-type EN10MB (Ethernet), snapshot length 262144 bytes')).toBeNull();
    expect(parseTcpdumpLine('26 packets captured')).toBeNull();
    expect(parseTcpdumpLine('')).toBeNull();
    expect(parseTcpdumpLine('07:13:19.1 LLDP, length 60')).toMatchObject({ family: 'other' });
  });

  it('reads any UDP summary line (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 9000 }), (s, d, sp, dp, len) => {
        const p = parseTcpdumpLine(`12:00:00.000001 IP ${s}.${sp} > ${d}.${dp}: UDP, length ${len}`);
        expect(p).toMatchObject({ family: 'ip', protocol: 'udp', src: s, dst: d, srcPort: sp, dstPort: dp, length: len });
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), fc.ipV6(), fc.integer({ min: 1, max: 65535 }), (s, d, dp) => {
        const p = parseTcpdumpLine(`IP6 ${s}.4000 > ${d}.${dp}: UDP, length 8`);
        expect(p).toMatchObject({ family: 'ip6', protocol: 'udp', src: s, dst: d, srcPort: 4000, dstPort: dp });
      }),
    );
  });
});
