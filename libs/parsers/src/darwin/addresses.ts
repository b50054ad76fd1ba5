/**
 * Address helpers shared by the darwin parsers (internal: not re-exported by the barrel,
 * except for the family type and the classful netstat normaliser).
 */
import ipaddr from 'ipaddr.js';

export type DarwinFamily = 'inet' | 'inet6';

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** A full dotted quad (four decimal octets, no leading zeros except `0`). */
export function isIpv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => OCTET.test(p));
}

/** An IPv6 literal without a zone. */
export function isIpv6(text: string): boolean {
  return text.includes(':') && ipaddr.IPv6.isValid(text);
}

/** `fe80::1%en0` → { address: 'fe80::1', scope: 'en0' }. */
export function splitScope(text: string): { address: string; scope?: string } {
  const at = text.indexOf('%');
  if (at < 0) return { address: text };
  return { address: text.slice(0, at), scope: text.slice(at + 1) };
}

/** Canonical (RFC 5952) IPv6 text. */
export function canonicalIpv6(text: string): string {
  return ipaddr.IPv6.parse(text).toString();
}

export function ipv4ToInt(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Prefix length of a contiguous 32-bit mask, or undefined when the mask has holes. */
export function ipv4MaskToPrefix(mask: number): number | undefined {
  let prefix = 0;
  while (prefix < 32 && Math.floor(mask / 2 ** (31 - prefix)) % 2 === 1) prefix++;
  const rebuilt = prefix === 0 ? 0 : (2 ** 32 - 2 ** (32 - prefix));
  return rebuilt === mask ? prefix : undefined;
}

/** Prefix length of an IPv6 mask (`ffff:ffff::`), or undefined when it has holes. */
export function ipv6MaskToPrefix(mask: string): number | undefined {
  if (!isIpv6(mask)) return undefined;
  const bytes = ipaddr.IPv6.parse(mask).toByteArray();
  let prefix = 0;
  let ended = false;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (byte >> bit) & 1;
      if (set && ended) return undefined;
      if (set) prefix++;
      else ended = true;
    }
  }
  return prefix;
}

/** Whether `address` lies inside `network/prefix` (same family only). */
export function addressInSubnet(address: string, network: string, prefix: number): boolean {
  try {
    const a = ipaddr.parse(splitScope(address).address);
    const n = ipaddr.parse(splitScope(network).address);
    if (a.kind() !== n.kind()) return false;
    return a.match(n, prefix);
  } catch {
    return false;
  }
}

/** Interface-name shape used by darwin (`en0`, `bridge100`, `utun3`, `vmenet0`, `lo0`). */
export const DARWIN_INTERFACE_NAME = /^[A-Za-z][A-Za-z0-9]*[0-9]$/;

/**
 * Interfaces that are never a physical uplink: tunnels (other VPNs, the system's utunN),
 * loopback, Apple peer-to-peer links, and the hypervisors' bridges/vnics (vmnet uses
 * bridge100 and up; Thunderbolt Bridge is bridge0 and stays eligible). `bridge1` and
 * `bridge10` are how netstat up to macOS 11 prints them, cut to 7 (inet) or 8 (inet6)
 * characters (see netifMatches).
 */
export const DARWIN_VIRTUAL_INTERFACE = /^(utun|ipsec|ppp|gif|stf|tun|tap|lo|awdl|llw|anpi|vnic|vmenet|vmnet|feth)\d+$|^bridge1(\d\d?)?$/;
