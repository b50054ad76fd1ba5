/**
 * Request arguments, checked before anything runs. Errors (the kit's InvalidRequestError) name
 * the proto field so the RPC layer can answer INVALID_ARGUMENT with an actionable message.
 */
import { invalidField } from '@wgctl/agent-kit';
import { isIPv4, isIPv6, isInterfaceName, parseCidr } from '@wgctl/config';
import { shownValue } from '@wgctl/logging';
import ipaddr from 'ipaddr.js';

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/**
 * The Mac's source as iptables prints it: `198.51.100.2` → `198.51.100.2/32`,
 * `198.51.100.7/24` → `198.51.100.0/24`. IPv4 only (the SNAT is IPv4); /0 is refused
 * (it would forward and SNAT every source).
 */
export function normalizeMacSource(value: string): string {
  const field = 'mac_source';
  const text = value.trim();
  if (text === '') throw invalidField(field, 'required: the Mac\'s address on the VM network, e.g. 192.168.64.1');
  if (isIPv4(text)) return `${text}/32`;
  const cidr = parseCidr(text);
  if (!cidr) throw invalidField(field, `${shownValue(value)} is not an IPv4 address or CIDR`);
  if (cidr.family !== 4) throw invalidField(field, `${shownValue(value)} is IPv6; only IPv4 sources are forwarded and SNATed`);
  if (cidr.prefix === 0) throw invalidField(field, `${shownValue(value)} would match every source; give the Mac's address or subnet`);
  const size = 2 ** (32 - cidr.prefix);
  const network = Math.floor(ipv4ToInt(cidr.address) / size) * size;
  return `${intToIpv4(network)}/${cidr.prefix}`;
}

/**
 * The Mac's IPv6 source as ip6tables prints it: `2001:db8:6:1::2` → `2001:db8:6:1::2/128`,
 * `2001:DB8:6:1::7/64` → `2001:db8:6:1::/64` (RFC 5952 text, what inet_ntop prints). /0 is
 * refused, like for IPv4.
 */
export function normalizeMacSource6(value: string): string {
  const field = 'mac_source6';
  const text = value.trim();
  if (text === '') throw invalidField(field, 'empty: leave the field unset to forward IPv4 only');
  if (isIPv6(text)) return `${ipaddr.IPv6.parse(text).toRFC5952String()}/128`;
  const cidr = parseCidr(text);
  if (!cidr) throw invalidField(field, `${shownValue(value)} is not an IPv6 address or CIDR`);
  if (cidr.family !== 6) throw invalidField(field, `${shownValue(value)} is IPv4; mac_source6 takes the Mac's IPv6 address (IPv4 goes in mac_source)`);
  if (cidr.prefix === 0) throw invalidField(field, `${shownValue(value)} would match every source; give the Mac's address or subnet`);
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${cidr.address}/${cidr.prefix}`);
  return `${network.toRFC5952String()}/${cidr.prefix}`;
}

export function validateInterfaceName(field: string, value: string): void {
  if (!isInterfaceName(value)) {
    throw invalidField(field, `${shownValue(value)} is not an interface name (1–15 characters of A–Z a–z 0–9 _ . = + -)`);
  }
}

export const MAX_HANDSHAKE_TIMEOUT_MS = 300_000;

export function validateHandshakeTimeout(ms: number): void {
  if (ms > MAX_HANDSHAKE_TIMEOUT_MS) {
    throw invalidField('handshake_timeout_ms', `${ms} is above the maximum of ${MAX_HANDSHAKE_TIMEOUT_MS} (5 minutes)`);
  }
}
