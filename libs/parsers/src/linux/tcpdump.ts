/**
 * tcpdump summary lines (`tcpdump -nn -l [-e] -i IF`, also `-i any` with its interface and
 * direction columns). One packet per line; `-v` multi-line output is not supported.
 *
 *   07:13:19.207730 IP 192.0.2.2.48352 > 192.0.2.1.51820: UDP, length 2
 *   07:13:19.207731 3e:95:…:20 > 2e:a4:…:6a, ethertype IPv4 (0x0800), length 44: 192.0.2.2.48352 > 192.0.2.1.51820: UDP, length 2
 *   07:13:19.207727 wtmx0 Out IP 192.0.2.2.48352 > 192.0.2.1.51820: UDP, length 2
 *   07:13:19.124919 ARP, Request who-has 192.0.2.1 tell 192.0.2.2, length 28
 */
import ipaddr from 'ipaddr.js';

export type TcpdumpFamily = 'ip' | 'ip6' | 'arp' | 'other';

export interface TcpdumpPacket {
  time?: string;
  interface?: string;
  /** `-i any`: In, Out, M (multicast), B (broadcast), P (to another host). */
  direction?: string;
  srcMac?: string;
  dstMac?: string;
  family: TcpdumpFamily;
  /** udp, tcp, icmp, icmp6, arp, or what tcpdump named (`ip-proto-1` for a fragment). */
  protocol: string;
  src: string;
  dst: string;
  srcPort?: number;
  dstPort?: number;
  /** The last `length N` tcpdump printed (the payload/packet length it reports). */
  length?: number;
  line: string;
}

const TIME_RE = /^(\d{2}:\d{2}:\d{2}\.\d+|\d{9,}\.\d+)\s+/;
const ANY_RE = /^(\S+)\s+(In|Out|M|B|P)\s+/;
const MAC = '[0-9a-f]{1,2}(?::[0-9a-f]{1,2}){5}';
const ETHER_RE = new RegExp(`^(${MAC}) > (${MAC}|Broadcast), ethertype (\\S+) \\(0x[0-9a-f]+\\), length \\d+: `, 'i');
const ETHER_ANY_RE = new RegExp(`^(?:ifindex \\d+ )?(${MAC}) ethertype (\\S+) \\(0x[0-9a-f]+\\), length \\d+: `, 'i');

const STATUS_LINES = [/^tcpdump: /, /^listening on /, /^\d+ packets? (captured|received by filter|dropped by kernel)/, /^reading from file/, /^dropped privs/];

/** True for tcpdump's own banner/statistics lines (stderr noise when merged). */
function isTcpdumpStatusLine(line: string): boolean {
  return STATUS_LINES.some((re) => re.test(line.trim()));
}

/** `192.0.2.2.48352` → address + port; `192.0.2.1` → address; `2001:db8::2.53` → v6 + port. */
function splitEndpoint(token: string, family: TcpdumpFamily): { address: string; port?: number } {
  const t = token.replace(/[:,]$/, '');
  if (family === 'ip') {
    const parts = t.split('.');
    if (parts.length === 5 && /^\d+$/.test(parts[4])) return { address: parts.slice(0, 4).join('.'), port: Number(parts[4]) };
    return { address: t };
  }
  if (family === 'ip6') {
    if (ipaddr.IPv6.isValid(t)) return { address: t };
    const dot = t.lastIndexOf('.');
    if (dot > 0 && /^\d+$/.test(t.slice(dot + 1)) && ipaddr.IPv6.isValid(t.slice(0, dot))) {
      return { address: t.slice(0, dot), port: Number(t.slice(dot + 1)) };
    }
  }
  return { address: t };
}

function protocolOf(rest: string, family: TcpdumpFamily, hasPorts: boolean): string {
  if (/^(HBH )?ICMP6\b/.test(rest)) return 'icmp6';
  if (/^ICMP\b/.test(rest)) return 'icmp';
  if (/^Flags \[/.test(rest)) return 'tcp';
  if (/^UDP\b/.test(rest) || /^(UDP-encap|udp)\b/.test(rest)) return 'udp';
  const named = /^(ip-proto-\d+|igmp|IGMP|VRRP|GRE|ESP|AH|OSPF|PIM|sctp)\b/.exec(rest);
  if (named) return named[1].toLowerCase();
  // With ports and no TCP flags, tcpdump decoded an application protocol over UDP (domain, NTP, bootp, dhcp6…).
  if (hasPorts) return 'udp';
  return family === 'ip6' ? 'ip6' : 'ip';
}

function lastLength(text: string): number | undefined {
  const all = [...text.matchAll(/\blength (\d+)/g)];
  return all.length ? Number(all[all.length - 1][1]) : undefined;
}

/** Parses one summary line; null for blank lines and tcpdump's own status lines. */
export function parseTcpdumpLine(input: string): TcpdumpPacket | null {
  const line = input.replace(/\r?\n$/, '');
  if (line.trim() === '' || isTcpdumpStatusLine(line)) return null;
  let rest = line;
  const packet: Partial<TcpdumpPacket> = { line };
  const time = TIME_RE.exec(rest);
  if (time) {
    packet.time = time[1];
    rest = rest.slice(time[0].length);
  }
  const any = ANY_RE.exec(rest);
  if (any) {
    packet.interface = any[1];
    packet.direction = any[2];
    rest = rest.slice(any[0].length);
  }
  let family: TcpdumpFamily | undefined;
  const ether = ETHER_RE.exec(rest) ?? ETHER_ANY_RE.exec(rest);
  if (ether) {
    const isAny = ether.length === 3;
    packet.srcMac = ether[1];
    packet.dstMac = isAny ? undefined : ether[2];
    const ethertype = isAny ? ether[2] : ether[3];
    family = ethertype === 'IPv4' ? 'ip' : ethertype === 'IPv6' ? 'ip6' : ethertype === 'ARP' ? 'arp' : 'other';
    rest = rest.slice(ether[0].length);
  } else if (rest.startsWith('IP ')) {
    family = 'ip';
    rest = rest.slice(3);
  } else if (rest.startsWith('IP6 ')) {
    family = 'ip6';
    rest = rest.slice(4);
  } else if (rest.startsWith('ARP, ')) {
    family = 'arp';
    rest = rest.slice(5);
  } else {
    family = 'other';
  }

  if (family === 'arp') {
    const request = /who-has (\S+?)(?: \(\S+\))? tell (\S+?),/.exec(rest);
    const reply = /Reply (\S+) is-at (\S+?),/.exec(rest);
    return {
      ...packet,
      family,
      protocol: 'arp',
      src: request ? request[2] : reply ? reply[1] : '',
      dst: request ? request[1] : '',
      length: lastLength(rest),
    } as TcpdumpPacket;
  }
  const flow = /^(\S+) > (\S+?):(?:\s+|$)(.*)$/.exec(rest);
  if (!flow || family === 'other') {
    return { ...packet, family: 'other', protocol: 'other', src: '', dst: '', length: lastLength(rest) } as TcpdumpPacket;
  }
  const src = splitEndpoint(flow[1], family);
  const dst = splitEndpoint(flow[2], family);
  const hasPorts = src.port !== undefined && dst.port !== undefined;
  return {
    ...packet,
    family,
    protocol: protocolOf(flow[3], family, hasPorts),
    src: src.address,
    dst: dst.address,
    srcPort: src.port,
    dstPort: dst.port,
    length: lastLength(flow[3]),
  } as TcpdumpPacket;
}

/** Parses a whole capture, skipping status lines. */
export function parseTcpdumpOutput(text: string): TcpdumpPacket[] {
  return text
    .split('\n')
    .map(parseTcpdumpLine)
    .filter((p): p is TcpdumpPacket => p !== null);
}
