/**
 * `--allow-lan`: which of the uplink's subnets the kill switch may let through, and the fixed
 * facts both drivers' rules use (mDNS groups, the DNS ports kept off the LAN). Pure.
 *
 * Only subnets the uplink is DIRECTLY connected to, and only private or link-local ones: a café
 * may well hand out a public /24, and "the LAN" must never mean public hosts. Mullvad lets all
 * of ALLOWED_LAN_NETS through, connected or not (talpid-core firewall/macos.rs
 * get_allow_lan_rules); we are narrower: a private net reached through a router is not the LAN.
 */
import ipaddr from 'ipaddr.js';

/** One address on the uplink with its prefix length (ifconfig / `ip -j addr`). */
export interface InterfaceAddress {
  address: string; // may carry a %scope (link-local IPv6)
  prefixLength: number;
}

/**
 * What "private or link-local" means here:
 * - RFC 1918 10/8, 172.16/12, 192.168/16; RFC 3927 169.254/16 (never forwarded by routers);
 * - RFC 4291 §2.5.6 fe80::/10 (link-local) and RFC 4193 fc00::/7 (ULA).
 * - the documentation blocks (RFC 5737 192.0.2/24, 198.51.100/24, 203.0.113/24; RFC 3849
 *   2001:db8::/32): never routed on the internet, so no public host lives there (the lab's
 *   cafés use them).
 * Not RFC 6598 100.64/10: that is a carrier's shared space (CGN, some hotspots), whose hosts
 * are the operator's and other customers', not the user's LAN.
 */
const LAN_BLOCKS: readonly [string, number][] = [
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['169.254.0.0', 16],
  ['192.0.2.0', 24],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['fe80::', 10],
  ['fc00::', 7],
  ['2001:db8::', 32],
];

/** mDNS (RFC 6762 §3, §5): the groups and the port; the only multicast the LAN rules admit. */
export const MDNS_PORT = 5353;
export const MDNS_GROUP4 = '224.0.0.251';
export const MDNS_GROUP6 = 'ff02::fb';
/** DNS (53) and DNS over TLS (853, RFC 7858) stay off the LAN: names go through the tunnel. */
export const LAN_BLOCKED_DNS_PORTS: readonly number[] = [53, 853];

function insideLanBlock(network: ipaddr.IPv4 | ipaddr.IPv6, prefixLength: number): boolean {
  return LAN_BLOCKS.some(([base, length]) => {
    const block = ipaddr.parse(base);
    return block.kind() === network.kind() && prefixLength >= length && network.match(block, length);
  });
}

/**
 * The subnets of `addresses` that are wholly inside a private or link-local block, as
 * canonical CIDRs (network address), IPv4 first, without duplicates. A prefix wider than its
 * block (10.0.0.1/7) or a host route (/32, /128: no neighbours) gives nothing.
 */
export function lanSubnetsOf(addresses: readonly InterfaceAddress[]): string[] {
  const found = new Set<string>();
  for (const { address, prefixLength } of addresses) {
    const bare = address.split('%')[0];
    if (!ipaddr.isValid(bare)) continue;
    const parsed = ipaddr.parse(bare);
    const bits = parsed.kind() === 'ipv4' ? 32 : 128;
    if (!Number.isInteger(prefixLength) || prefixLength < 1 || prefixLength >= bits) continue;
    const network =
      parsed.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(`${bare}/${prefixLength}`) : ipaddr.IPv6.networkAddressFromCIDR(`${bare}/${prefixLength}`);
    if (insideLanBlock(network, prefixLength)) found.add(`${network.toString()}/${prefixLength}`);
  }
  return [...found].sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
}

/** A CIDR as lanSubnetsOf gives it (pasted into pf.conf / nft syntax: nothing else may pass). */
export function isLanSubnet(cidr: string): boolean {
  const [address, length, ...rest] = cidr.split('/');
  if (rest.length || !length || !/^\d+$/.test(length)) return false;
  return lanSubnetsOf([{ address, prefixLength: Number(length) }])[0] === cidr;
}
