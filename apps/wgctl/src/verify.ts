/**
 * The verdict of `wgctl verify`, as a pure function of what the two captures saw.
 *
 * PASS needs both:
 *  1. everything the Mac itself sent on its uplink was WireGuard UDP to a server endpoint, or
 *     the link's housekeeping in the kill switch's narrow form (DHCPv4 from port 68 to
 *     255.255.255.255:67 or an on-link server; DHCPv6 from fe80::/10:546 to ff02::1:2:547; ARP;
 *     router solicitations to ff02::2, neighbour solicitations/advertisements on the link; EAPOL,
 *     the Wi-Fi key exchange); and
 *  2. the VM saw the probe leave on the tunnel interface with a tunnel source address
 *     (so it went through the tunnel, SNATed).
 * It also refuses a vacuous PASS: an uplink capture without a single WireGuard packet cannot
 * prove the tunnel carried the probe (wrong interface, or traffic bypassing the VM).
 *
 * Who sent a packet is read from its link-layer header (tcpdump -e) against the uplink's own
 * MAC, not from `-Q out` (Linux only; macOS's -Q needs pktap) nor IP addresses (a neighbour's
 * mDNS and the Mac's own look alike). So on a busy café LAN:
 *  - source MAC = the uplink's: sent by the Mac → judged (a leak fails verify);
 *  - unicast to the uplink's MAC from elsewhere: received. Replies to allowed traffic are
 *    counted; anything else is "unsolicited inbound": a warning, since it reaches the NIC
 *    whatever the Mac does — the kill switch must drop it, and any answer would be a leak;
 *  - anything else (neighbours' broadcasts/multicasts, others' unicast): counted, never a leak.
 * Without MACs (an old agent, or the uplink's MAC unknown) every packet is judged as the Mac's.
 */
import ipaddr from 'ipaddr.js';
import type { CaptureResult, Endpoint, Packet } from '@wgctl/proto';

/** eapol: Wi-Fi's WPA key exchange (IEEE 802.1X), link-local by nature and below any IP firewall. */
/** lan: with --allow-lan, traffic with the uplink's LAN subnets and mDNS (never DNS to the LAN). */
export type AllowedKind = 'wireguard' | 'dhcp' | 'arp' | 'ndp' | 'eapol' | 'lan';

export interface Leak {
  packet: Packet;
  reason: string;
}

/** Who put a packet on the uplink, by its link-layer addresses. */
export type UplinkDirection = 'sent' | 'received' | 'neighbour' | 'unknown';

export interface VerifyVerdict {
  pass: boolean;
  /** Packets the Mac sent on the uplink that should not be there. */
  leaks: Leak[];
  /** Unicast to the Mac that is neither WireGuard nor a reply to DHCP/ND: reported, not a FAIL. */
  unsolicitedInbound: Leak[];
  /** Neighbours' broadcasts/multicasts (and others' unicast) on the LAN: never the Mac's. */
  neighbourPackets: number;
  /** Other reasons for FAIL (no WireGuard seen, probe not seen in the tunnel, wrong source). */
  problems: string[];
  /** Facts that do not change the verdict (e.g. the probe target did not answer). */
  warnings: string[];
  /** Allowed packets the Mac sent or received (replies). */
  /** `lan` only with --allow-lan (the mac-agent's status names LAN subnets). */
  allowed: Record<Exclude<AllowedKind, 'lan'>, number> & { lan?: number };
  /** Probe packets the VM saw leaving with a tunnel source address. */
  probeSeen: Packet[];
  uplinkInterface: string;
  /** The uplink's MAC the directions were read against ('' when unknown). */
  uplinkLinkAddress: string;
  tunnelInterface: string;
}

/** Canonical text of an IP (lower-case, compressed IPv6, IPv4-mapped unwrapped); input if not an IP. */
export function canonicalIp(value: string): string {
  const bare = value.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  try {
    return ipaddr.process(bare).toString();
  } catch {
    return value.toLowerCase();
  }
}

function hostPart(cidrOrAddress: string): string {
  const slash = cidrOrAddress.indexOf('/');
  return canonicalIp(slash < 0 ? cidrOrAddress : cidrOrAddress.slice(0, slash));
}

const ICMP_PROTOCOLS = new Set(['icmp', 'icmp6', 'icmpv6']);
/** tcpdump's names for the ND messages (print-icmp6.c spells them the American way). */
const ND_MESSAGE = /\b(router solicitation|router advertisement|neighbou?r solicitation|neighbou?r advertisement|redirect)\b/i;
const WELL_KNOWN_LEAKS: Record<number, string> = { 53: 'DNS', 5353: 'mDNS', 1900: 'SSDP', 5355: 'LLMNR', 137: 'NetBIOS', 123: 'NTP' };

function endpointKey(ip: string, port: number): string {
  return `${canonicalIp(ip)}#${port}`;
}

function describePacket(p: Packet): string {
  const src = p.srcPort ? `${p.src}:${p.srcPort}` : p.src;
  const dst = p.dstPort ? `${p.dst}:${p.dstPort}` : p.dst;
  return `${(p.protocol || p.family || 'packet').toUpperCase()} ${src} → ${dst}`;
}

function parseIp(value: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    return ipaddr.process(value.replace(/%.*$/, ''));
  } catch {
    return undefined;
  }
}

function inRange(value: string, cidr: string): boolean {
  const ip = parseIp(value);
  try {
    const range = ipaddr.parseCIDR(cidr);
    return !!ip && ip.kind() === range[0].kind() && ip.match(range);
  } catch {
    return false;
  }
}

const isLinkScope = (ip: string) => inRange(ip, 'fe80::/10') || inRange(ip, 'ff02::/16');

/** Group (multicast/broadcast) MAC: the I/G bit of the first octet. */
function isGroupMac(mac: string): boolean {
  const first = parseInt(mac.slice(0, 2), 16);
  return Number.isFinite(first) && (first & 1) === 1;
}

export function uplinkDirection(p: Packet, linkAddress: string): UplinkDirection {
  const own = linkAddress.toLowerCase();
  const src = (p.srcMac ?? '').toLowerCase();
  if (!own || !src) return 'unknown';
  if (src === own) return 'sent';
  return (p.dstMac ?? '').toLowerCase() === own && !isGroupMac(own) ? 'received' : 'neighbour';
}

interface Context {
  endpointKeys: Set<string>;
  endpointIps: Set<string>;
  /** The uplink's on-link prefixes (CIDR), for DHCP and ND addressed within the link. */
  onLink: string[];
  /** --allow-lan: the subnets the mac-agent's kill switch lets through (its status); [] without it. */
  lanSubnets: string[];
}

const MDNS_GROUPS = new Set(['224.0.0.251', 'ff02::fb']);
const LAN_DNS_PORTS = new Set([53, 853]);

/** Allowed by --allow-lan: to or from a LAN subnet (DNS to it excepted), or mDNS to its group. */
function allowedLan(p: Packet, ctx: Context, direction: 'sent' | 'received'): AllowedKind | undefined {
  if (ctx.lanSubnets.length === 0) return undefined;
  const peer = direction === 'sent' ? p.dst : p.src;
  if (direction === 'sent' && LAN_DNS_PORTS.has(p.dstPort)) return undefined;
  if (ctx.lanSubnets.some((cidr) => inRange(peer, cidr))) return 'lan';
  if (direction === 'sent' && p.protocol.toLowerCase() === 'udp' && p.dstPort === 5353 && MDNS_GROUPS.has(canonicalIp(p.dst))) return 'lan';
  return undefined;
}

const onLink = (ip: string, ctx: Context) => ctx.onLink.some((cidr) => inRange(ip, cidr));

/** Frames that never leave the link: ARP and, on Wi-Fi, EAPOL (the periodic group rekey). */
function linkHousekeeping(p: Packet): AllowedKind | undefined {
  if (p.family.toLowerCase() === 'arp') return 'arp';
  if (p.family.toLowerCase() === 'other' && p.protocol.toLowerCase() === 'eapol') return 'eapol';
  return undefined;
}

/** What the Mac may send: WireGuard to a server endpoint and the link's housekeeping, narrowly. */
function allowedSent(p: Packet, ctx: Context): AllowedKind | undefined {
  const protocol = p.protocol.toLowerCase();
  const link = linkHousekeeping(p);
  if (link) return link;
  if (protocol === 'udp') {
    if (ctx.endpointKeys.has(endpointKey(p.dst, p.dstPort))) return 'wireguard';
    const dhcp4 = p.srcPort === 68 && p.dstPort === 67 && (canonicalIp(p.dst) === '255.255.255.255' || onLink(p.dst, ctx));
    const dhcp6 = p.srcPort === 546 && p.dstPort === 547 && inRange(p.src, 'fe80::/10') && canonicalIp(p.dst) === 'ff02::1:2';
    if (dhcp4 || dhcp6) return 'dhcp';
  }
  if (protocol === 'icmp6' || protocol === 'icmpv6') {
    const message = ND_MESSAGE.exec(p.line)?.[1].toLowerCase();
    if (message === 'router solicitation') {
      return canonicalIp(p.dst) === 'ff02::2' && (p.src === '::' || inRange(p.src, 'fe80::/10')) ? 'ndp' : undefined;
    }
    if (message && /^neighbou?r/.test(message) && (isLinkScope(p.dst) || onLink(p.dst, ctx))) return 'ndp';
  }
  return allowedLan(p, ctx, 'sent');
}

/** What may reach the Mac unicast: WireGuard from a server endpoint, DHCP/ND answers, ARP. */
function allowedReceived(p: Packet, ctx: Context): AllowedKind | undefined {
  const protocol = p.protocol.toLowerCase();
  const link = linkHousekeeping(p);
  if (link) return link;
  if (protocol === 'udp') {
    if (ctx.endpointKeys.has(endpointKey(p.src, p.srcPort))) return 'wireguard';
    if ((p.srcPort === 67 && p.dstPort === 68) || (p.srcPort === 547 && p.dstPort === 546)) return 'dhcp';
  }
  if ((protocol === 'icmp6' || protocol === 'icmpv6') && ND_MESSAGE.test(p.line) && !/router solicitation/i.test(p.line)) return 'ndp';
  return undefined;
}

function leakReason(p: Packet, ctx: Context): string {
  const what = describePacket(p);
  const protocol = p.protocol.toLowerCase();
  if (ctx.endpointIps.has(canonicalIp(p.dst))) return `${what}: to the WireGuard server but not its WireGuard port`;
  if (protocol === 'udp' && (p.srcPort === 68 || p.srcPort === 546)) return `${what}: DHCP client traffic not to the link's DHCP server`;
  const service = WELL_KNOWN_LEAKS[p.dstPort] ?? WELL_KNOWN_LEAKS[p.srcPort];
  if (service) return `${what}: ${service} outside the tunnel`;
  if (ICMP_PROTOCOLS.has(protocol)) return `${what}: ICMP outside the tunnel`;
  if (p.family === 'other') return `${(p.protocol || 'unknown').toUpperCase()} frame: ${p.line.trim()}`;
  return `${what}: outside the tunnel`;
}

/** Judges the uplink capture into the verdict's leaks, unsolicited inbound and counts. */
function judgeUplink(capture: CaptureResult, ctx: Context, verdict: VerifyVerdict): void {
  const linkAddress = capture.linkAddress ?? '';
  for (const packet of capture.packets) {
    const direction = uplinkDirection(packet, linkAddress);
    if (direction === 'neighbour') {
      verdict.neighbourPackets += 1;
      continue;
    }
    const kind =
      direction === 'sent'
        ? allowedSent(packet, ctx)
        : direction === 'received'
          ? (allowedReceived(packet, ctx) ?? allowedLan(packet, ctx, 'received'))
          : // Direction unknown: the Mac's own address is on the LAN too, so LAN is judged by destination only.
            (allowedSent(packet, ctx) ?? allowedReceived(packet, ctx));
    if (kind) verdict.allowed[kind] = (verdict.allowed[kind] ?? 0) + 1;
    else if (direction === 'received') verdict.unsolicitedInbound.push({ packet, reason: `${describePacket(packet)}: reached the uplink unsolicited` });
    else verdict.leaks.push({ packet, reason: leakReason(packet, ctx) });
  }
  if (capture.packets.length > 0 && !capture.packets.some((p) => p.srcMac)) {
    verdict.warnings.push('the uplink capture has no link-layer addresses (agent without tcpdump -e): every packet was judged as sent by the Mac');
  } else if (capture.packets.length > 0 && !linkAddress) {
    verdict.warnings.push('the uplink\'s own MAC is unknown: every packet was judged as sent by the Mac');
  }
  if (verdict.unsolicitedInbound.length > 0) {
    verdict.warnings.push(
      `${verdict.unsolicitedInbound.length} packet(s) reached the uplink unsolicited (not a leak by itself: they reach the NIC whatever the Mac does; the kill switch must drop them, and an answer would be a leak)`,
    );
  }
}

export function judgeVerify(
  macCapture: CaptureResult,
  vmCapture: CaptureResult,
  endpoints: Endpoint[],
  tunnelAddresses: string[],
  probeTarget?: string,
  lanSubnets: string[] = [],
): VerifyVerdict {
  const ctx: Context = {
    endpointKeys: new Set(endpoints.map((e) => endpointKey(e.ip || e.host, e.port))),
    endpointIps: new Set(endpoints.map((e) => canonicalIp(e.ip || e.host))),
    onLink: (macCapture.interfaceAddresses ?? []).filter((cidr) => !inRange(hostPart(cidr), 'fe80::/10')),
    lanSubnets,
  };
  const tunnelIps = new Set(tunnelAddresses.map(hostPart));
  const target = probeTarget ? canonicalIp(probeTarget) : undefined;

  const verdict: VerifyVerdict = {
    pass: false,
    leaks: [],
    unsolicitedInbound: [],
    neighbourPackets: 0,
    problems: [],
    warnings: [],
    allowed: { wireguard: 0, dhcp: 0, arp: 0, ndp: 0, eapol: 0, ...(lanSubnets.length ? { lan: 0 } : {}) },
    probeSeen: [],
    uplinkInterface: macCapture.interface,
    uplinkLinkAddress: macCapture.linkAddress ?? '',
    tunnelInterface: vmCapture.interface,
  };

  if (endpoints.length === 0) verdict.problems.push('no WireGuard server endpoints known: cannot tell tunnel traffic from leaks');
  if (tunnelAddresses.length === 0) verdict.problems.push('no tunnel addresses known: cannot check the probe\'s source');

  judgeUplink(macCapture, ctx, verdict);
  if (verdict.allowed.wireguard === 0) {
    verdict.problems.push(
      `no WireGuard packets to ${[...ctx.endpointKeys].map((k) => k.replace('#', ':')).join(', ') || 'the servers'} ` +
        `on the uplink${macCapture.interface ? ` ${macCapture.interface}` : ''}: the capture proves nothing (wrong interface, or the tunnel carried no traffic)`,
    );
  }

  const probes = vmCapture.packets.filter((p) => ICMP_PROTOCOLS.has(p.protocol.toLowerCase()));
  const outbound = probes.filter((p) => (target ? canonicalIp(p.dst) === target : !tunnelIps.has(canonicalIp(p.dst))));
  verdict.probeSeen = outbound.filter((p) => tunnelIps.has(canonicalIp(p.src)));
  const wrongSource = outbound.filter((p) => !tunnelIps.has(canonicalIp(p.src)));
  if (verdict.probeSeen.length === 0) {
    if (wrongSource.length > 0) {
      const sources = [...new Set(wrongSource.map((p) => p.src))].join(', ');
      verdict.problems.push(
        `the probe left the tunnel with source ${sources}, not a tunnel address (${[...tunnelIps].join(', ')}): SNAT is missing`,
      );
    } else {
      verdict.problems.push(
        `the VM did not see the probe${probeTarget ? ` to ${probeTarget}` : ''} on the tunnel interface` +
          `${vmCapture.interface ? ` ${vmCapture.interface}` : ''}: it did not go through the tunnel`,
      );
    }
  } else if (wrongSource.length > 0) {
    verdict.problems.push(
      `${wrongSource.length} probe packet(s) left the tunnel with a non-tunnel source (${[...new Set(wrongSource.map((p) => p.src))].join(', ')})`,
    );
  }

  if (!macCapture.probeOk) {
    verdict.warnings.push(`the probe${probeTarget ? ` to ${probeTarget}` : ''} got no reply${macCapture.probeDetail ? `: ${macCapture.probeDetail}` : ''}`);
  }

  verdict.pass = verdict.leaks.length === 0 && verdict.problems.length === 0;
  return verdict;
}
