/**
 * tcpdump summary lines (`tcpdump -nn -l [-e] -i IF`, also `-i any` with its interface and
 * direction columns). One packet per line; `-v` multi-line output is not supported.
 *
 *   07:13:19.207730 IP 192.0.2.2.48352 > 192.0.2.1.51820: UDP, length 2
 *   07:13:19.207731 3e:95:…:20 > 2e:a4:…:6a, ethertype IPv4 (0x0800), length 44: 192.0.2.2.48352 > 192.0.2.1.51820: UDP, length 2
 *   07:13:19.207727 wtmx0 Out IP 192.0.2.2.48352 > 192.0.2.1.51820: UDP, length 2
 *   07:13:19.124919 ARP, Request who-has 192.0.2.1 tell 192.0.2.2, length 28
 *
 * `-e` variants (tcpdump 4.9 on macOS prints the same print-ether.c format as 4.99 on Linux;
 * macOS Wi-Fi en0 is DLT_EN10MB, so it reads like Ethernet):
 *   … a > b, ethertype 802.1Q (0x8100), length 78: vlan 10, p 0, ethertype IPv4 (0x0800), 192.0.2.100.40000 > …
 *   … a > b, 802.3, length 38: LLC, dsap STP (0x42) Individual, …      (length-field frames: 'other')
 *   … a > b, ethertype Unknown (0x88b5), length 60:                     (then hex lines: skipped)
 *   … ip: 198.51.100.66 > 203.0.113.82: ICMP echo request, …            (-e on a raw-IP tunnel)
 */
import ipaddr from 'ipaddr.js';

export type TcpdumpFamily = 'ip' | 'ip6' | 'arp' | 'other';

export interface TcpdumpPacket {
  time?: string;
  interface?: string;
  /** `-i any`: In, Out, M (multicast), B (broadcast), P (to another host). */
  direction?: string;
  /** `-e`: link-layer addresses, lower-case with two hex digits per byte. */
  srcMac?: string;
  dstMac?: string;
  /** `-e` on a tagged frame: the (innermost) 802.1Q VLAN id. */
  vlan?: number;
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
/** `802.3` frames carry a length, not an ethertype (LLC: STP, CDP…); their payload is 'other'. */
const ETHER_RE = new RegExp(`^(${MAC}) > (${MAC}|Broadcast), (?:ethertype (\\S+) \\(0x[0-9a-f]+\\)|(802\\.3)), length \\d+:(?: |$)`, 'i');
/** tcpdump 4.99 prints the inner type's code; 4.9 (macOS) prints only its name (print-ether.c), older ones `, CFI`. */
const VLAN_RE = /^vlan (\d+), p \d+,(?: (?:DEI|CFI),)? ethertype (\S+?)(?: \(0x[0-9a-f]+\))?, /i;
/** tcpdump's hex dump of an unknown payload: continuation lines of the packet above. */
const HEX_CONTINUATION_RE = /^\s+0x[0-9a-f]{4}:\s/i;
const ETHER_ANY_RE = new RegExp(`^(?:ifindex \\d+ )?(${MAC}) ethertype (\\S+) \\(0x[0-9a-f]+\\), length \\d+: `, 'i');

const STATUS_LINES = [/^tcpdump: /, /^listening on /, /^\d+ packets? (captured|received by filter|dropped by kernel)/, /^reading from file/, /^dropped privs/];

/** True for tcpdump's own banner/statistics lines (stderr noise when merged). */
function isTcpdumpStatusLine(line: string): boolean {
  return STATUS_LINES.some((re) => re.test(line.trim()));
}

/** `0:1b:2:…` (old tcpdump, BSD) → `00:1b:02:…`; `Broadcast` → ff:ff:ff:ff:ff:ff. */
function normalizeMac(mac: string): string {
  if (mac === 'Broadcast') return 'ff:ff:ff:ff:ff:ff';
  return mac
    .toLowerCase()
    .split(':')
    .map((b) => b.padStart(2, '0'))
    .join(':');
}

function familyOfEthertype(name: string): TcpdumpFamily {
  return name === 'IPv4' ? 'ip' : name === 'IPv6' ? 'ip6' : name === 'ARP' ? 'arp' : 'other';
}

/** Strips 802.1Q/802.1ad tags; returns the inner ethertype and the innermost VLAN id. */
function stripVlanTags(rest: string, ethertype: string): { rest: string; ethertype: string; vlan?: number } {
  let vlan: number | undefined;
  while (/^(802\.1Q|802\.1Q-QinQ|802\.1ad|QinQ)$/i.test(ethertype)) {
    const tag = VLAN_RE.exec(rest);
    if (!tag) break;
    vlan = Number(tag[1]);
    ethertype = tag[2];
    rest = rest.slice(tag[0].length);
  }
  return { rest, ethertype, vlan };
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
  if (line.trim() === '' || isTcpdumpStatusLine(line) || HEX_CONTINUATION_RE.test(line)) return null;
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
  let otherProtocol = 'other';
  const ether = ETHER_RE.exec(rest);
  const etherAny = ether ? null : ETHER_ANY_RE.exec(rest);
  if (ether) {
    packet.srcMac = normalizeMac(ether[1]);
    packet.dstMac = normalizeMac(ether[2]);
    const tags = stripVlanTags(rest.slice(ether[0].length), ether[3] ?? ether[4]);
    if (tags.vlan !== undefined) packet.vlan = tags.vlan;
    family = familyOfEthertype(tags.ethertype);
    otherProtocol = tags.ethertype.toLowerCase();
    rest = tags.rest;
  } else if (etherAny) {
    packet.srcMac = normalizeMac(etherAny[1]);
    family = familyOfEthertype(etherAny[2]);
    otherProtocol = etherAny[2].toLowerCase();
    rest = rest.slice(etherAny[0].length);
  } else if (rest.startsWith('ip: ')) {
    // -e on a raw-IP link (a tunnel): no header to show, and the family only in the addresses.
    rest = rest.slice(4);
    family = /^[0-9a-f]*:[0-9a-f:.]* > /i.test(rest) ? 'ip6' : 'ip';
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
    return { ...packet, family: 'other', protocol: family === 'other' ? otherProtocol : 'other', src: '', dst: '', length: lastLength(rest) } as TcpdumpPacket;
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
