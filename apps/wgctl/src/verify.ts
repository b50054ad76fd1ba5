/**
 * The verdict of `wgctl verify`, as a pure function of what the two captures saw.
 *
 * PASS needs both:
 *  1. the Mac's uplink carried nothing but WireGuard UDP to/from the server endpoints,
 *     DHCP (v4 67/68, v6 546/547), ARP and IPv6 neighbour discovery; and
 *  2. the VM saw the probe leave on the tunnel interface with a tunnel source address
 *     (so it went through the tunnel, SNATed).
 * It also refuses a vacuous PASS: an uplink capture without a single WireGuard packet cannot
 * prove the tunnel carried the probe (wrong interface, or traffic bypassing the VM).
 */
import ipaddr from 'ipaddr.js';
import type { CaptureResult, Endpoint, Packet } from '@wgctl/proto';

export type AllowedKind = 'wireguard' | 'dhcp' | 'arp' | 'ndp';

export interface Leak {
  packet: Packet;
  reason: string;
}

export interface VerifyVerdict {
  pass: boolean;
  /** Packets on the uplink that should not be there. */
  leaks: Leak[];
  /** Other reasons for FAIL (no WireGuard seen, probe not seen in the tunnel, wrong source). */
  problems: string[];
  /** Facts that do not change the verdict (e.g. the probe target did not answer). */
  warnings: string[];
  allowed: Record<AllowedKind, number>;
  /** Probe packets the VM saw leaving with a tunnel source address. */
  probeSeen: Packet[];
  uplinkInterface: string;
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

const DHCP4_PORTS = new Set([67, 68]);
const DHCP6_PORTS = new Set([546, 547]);
const NDP_LINE = /\b(neighbou?r (solicitation|advertisement)|router (solicitation|advertisement)|redirect)\b/i;
const ICMP_PROTOCOLS = new Set(['icmp', 'icmp6', 'icmpv6']);

function endpointKey(ip: string, port: number): string {
  return `${canonicalIp(ip)}#${port}`;
}

function describePacket(p: Packet): string {
  const src = p.srcPort ? `${p.src}:${p.srcPort}` : p.src;
  const dst = p.dstPort ? `${p.dst}:${p.dstPort}` : p.dst;
  return `${(p.protocol || p.family || 'packet').toUpperCase()} ${src} → ${dst}`;
}

function classifyUplinkPacket(
  p: Packet,
  endpointKeys: Set<string>,
  endpointIps: Set<string>,
): { allowed: AllowedKind } | { leak: string } {
  const family = p.family.toLowerCase();
  const protocol = p.protocol.toLowerCase();
  if (family === 'arp') return { allowed: 'arp' };
  if (protocol === 'udp') {
    if (endpointKeys.has(endpointKey(p.dst, p.dstPort)) || endpointKeys.has(endpointKey(p.src, p.srcPort))) {
      return { allowed: 'wireguard' };
    }
    if (DHCP4_PORTS.has(p.srcPort) && DHCP4_PORTS.has(p.dstPort)) return { allowed: 'dhcp' };
    if (DHCP6_PORTS.has(p.srcPort) && DHCP6_PORTS.has(p.dstPort)) return { allowed: 'dhcp' };
  }
  if ((protocol === 'icmp6' || protocol === 'icmpv6') && NDP_LINE.test(p.line)) return { allowed: 'ndp' };

  const what = describePacket(p);
  const toEndpointHost = endpointIps.has(canonicalIp(p.dst)) || endpointIps.has(canonicalIp(p.src));
  if (toEndpointHost) return { leak: `${what}: to the WireGuard server but not its WireGuard port` };
  if (p.dstPort === 53 || p.srcPort === 53) return { leak: `${what}: DNS outside the tunnel` };
  if (ICMP_PROTOCOLS.has(protocol)) return { leak: `${what}: ICMP outside the tunnel` };
  return { leak: `${what}: outside the tunnel` };
}

export function judgeVerify(
  macCapture: CaptureResult,
  vmCapture: CaptureResult,
  endpoints: Endpoint[],
  tunnelAddresses: string[],
  probeTarget?: string,
): VerifyVerdict {
  const endpointKeys = new Set(endpoints.map((e) => endpointKey(e.ip || e.host, e.port)));
  const endpointIps = new Set(endpoints.map((e) => canonicalIp(e.ip || e.host)));
  const tunnelIps = new Set(tunnelAddresses.map(hostPart));
  const target = probeTarget ? canonicalIp(probeTarget) : undefined;

  const verdict: VerifyVerdict = {
    pass: false,
    leaks: [],
    problems: [],
    warnings: [],
    allowed: { wireguard: 0, dhcp: 0, arp: 0, ndp: 0 },
    probeSeen: [],
    uplinkInterface: macCapture.interface,
    tunnelInterface: vmCapture.interface,
  };

  if (endpoints.length === 0) verdict.problems.push('no WireGuard server endpoints known: cannot tell tunnel traffic from leaks');
  if (tunnelAddresses.length === 0) verdict.problems.push('no tunnel addresses known: cannot check the probe\'s source');

  for (const packet of macCapture.packets) {
    const c = classifyUplinkPacket(packet, endpointKeys, endpointIps);
    if ('allowed' in c) verdict.allowed[c.allowed] += 1;
    else verdict.leaks.push({ packet, reason: c.leak });
  }
  if (verdict.allowed.wireguard === 0) {
    verdict.problems.push(
      `no WireGuard packets to ${[...endpointKeys].map((k) => k.replace('#', ':')).join(', ') || 'the servers'} ` +
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
