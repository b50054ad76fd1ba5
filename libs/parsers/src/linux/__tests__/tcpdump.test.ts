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
