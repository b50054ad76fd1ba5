/**
 * `ipconfig getpacket IF`: the DHCP (or BOOTP) reply IPConfiguration accepted for IF's lease.
 * BOOTP header fields come as `name = value` lines, then `options:`, `Options count is N`, and
 * one `name (type): value` line per option. ipconfig(8): it "outputs nothing if DHCP/BOOTP is
 * not active on the interface, or the attempt to acquire an IP address was unsuccessful" (and
 * exits 1): that is `null` here, not an error.
 */
import ipaddr from 'ipaddr.js';
import { ParseError } from '../errors';
import { isIpv4 } from './addresses';

const KIND = 'ipconfig getpacket';

export interface DhcpLeasePacket {
  /** `yiaddr`: the address the server gave us (0.0.0.0 in a reply to DHCPINFORM). */
  yiaddr: string;
  /** `ciaddr`: the client's address when it already had one (INFORM, renewal). */
  ciaddr: string;
  /** `giaddr`: the relay agent's address, 0.0.0.0 when the server answered on-link itself. */
  giaddr: string;
  /** `dhcp_message_type`, e.g. `ACK`; absent for a plain BOOTP reply. */
  messageType?: string;
  /** Option 54, the server identifier: where RENEWING unicasts go (RFC 2131 §4.4.5). */
  serverIdentifier?: string;
  /** Option 1. */
  subnetMask?: string;
  /** Option 6, the resolvers the lease gives (RFC 2132 §3.8), in the server's order; absent when it gives none. */
  domainNameServers?: string[];
}

/** An `ip_mult` option's value: `{192.0.2.1}`, `{192.0.2.1, 192.0.2.2}`, `{}` (bootp bootplib/dhcp_options.c dhcptype_print_cfstr: braces, ", " between). */
function ipv4List(value: string, name: string, line: number): string[] {
  const braced = /^\{(.*)\}$/.exec(value);
  if (!braced) throw new ParseError(KIND, `${name} is not a {…} address list: "${value}"`, line);
  if (braced[1].trim() === '') return [];
  return braced[1].split(',').map((a) => ipv4Field(a.trim(), name, line));
}

function ipv4Field(value: string, name: string, line: number): string {
  if (!isIpv4(value)) throw new ParseError(KIND, `${name} is not an IPv4 address: "${value}"`, line);
  return value;
}

/** The lease packet `ipconfig getpacket IF` printed, or null when it printed nothing (no lease). */
export function parseIpconfigPacket(text: string): DhcpLeasePacket | null {
  const lines = text.split(/\r?\n/);
  if (lines.every((l) => l.trim() === '')) return null;
  const header = new Map<string, { value: string; line: number }>();
  const packet: Partial<DhcpLeasePacket> = {};
  lines.forEach((raw, index) => {
    const line = raw.trim();
    const field = /^([a-z]+) = ?(.*)$/.exec(line);
    if (field) {
      header.set(field[1], { value: field[2].trim(), line: index + 1 });
      return;
    }
    const option = /^([a-z0-9_]+) \(([a-z0-9_]+)\): ?(.*)$/.exec(line);
    if (!option) return; // `options:`, `Options count is N`
    const [, name, , value] = option;
    if (name === 'server_identifier') packet.serverIdentifier = ipv4Field(value.trim(), name, index + 1);
    else if (name === 'subnet_mask') packet.subnetMask = ipv4Field(value.trim(), name, index + 1);
    // A long option split in several (RFC 3396 §7) is printed once per piece: they concatenate.
    else if (name === 'domain_name_server') packet.domainNameServers = [...(packet.domainNameServers ?? []), ...ipv4List(value.trim(), name, index + 1)];
    else if (name === 'dhcp_message_type') packet.messageType = value.trim().split(/\s+/)[0];
  });
  if (header.get('op')?.value !== 'BOOTREPLY') throw new ParseError(KIND, 'no `op = BOOTREPLY` line: not a DHCP/BOOTP packet dump');
  for (const name of ['yiaddr', 'ciaddr', 'giaddr'] as const) {
    const field = header.get(name);
    if (!field) throw new ParseError(KIND, `no ${name} line`);
    packet[name] = ipv4Field(field.value, name, field.line);
  }
  return packet as DhcpLeasePacket;
}

/**
 * The lease's server when it is ON-LINK, i.e. inside our leased subnet (address/subnet mask of
 * the same packet); otherwise undefined. A server behind a relay (RFC 1542) is off-link: a
 * unicast to it would be routed off the link, so the kill switch does not open that path and the
 * client renews by the REBINDING broadcast instead (RFC 2131 §4.4.5). Broadcast or unspecified
 * identifiers, a missing or non-contiguous mask, and our own address are refused too, and so are /31 and /32 leases (no subnet to be on).
 */
export function onLinkLeaseServer(packet: DhcpLeasePacket | null): string | undefined {
  if (!packet?.serverIdentifier || !packet.subnetMask) return undefined;
  const ours = packet.yiaddr !== '0.0.0.0' ? packet.yiaddr : packet.ciaddr;
  const server = packet.serverIdentifier;
  if (ours === '0.0.0.0' || server === ours || server === '0.0.0.0' || server === '255.255.255.255') return undefined;
  const prefix = ipaddr.IPv4.parse(packet.subnetMask).prefixLengthFromSubnetMask();
  if (prefix === null || prefix === 0 || prefix > 30) return undefined;
  const subnet = ipaddr.IPv4.networkAddressFromCIDR(`${ours}/${prefix}`).toString();
  const broadcast = ipaddr.IPv4.broadcastAddressFromCIDR(`${ours}/${prefix}`).toString();
  if (server === subnet || server === broadcast) return undefined;
  return ipaddr.IPv4.parse(server).match(ipaddr.IPv4.parse(subnet), prefix) ? server : undefined;
}
