/**
 * The Linux kill switch as nftables rules (table `inet wgctl`): what passes on every interface
 * but loopback and the VM's link, for the host's own traffic and the VM's forwarded traffic —
 * rendered as one atomic `nft -f` batch. Pure: the driver (./linux.ts) loads and reads it back.
 */
import ipaddr from 'ipaddr.js';
import { checkExcludedCidr } from '@wgctl/config';
import type { IpFamily } from '@wgctl/parsers';
import { PORTAL_WEB_PORTS, type KillSwitchPolicy, type ServerEndpoint } from './driver';
import { LAN_BLOCKED_DNS_PORTS, MDNS_GROUP4, MDNS_GROUP6, MDNS_PORT, isLanSubnet } from './lan';

export function familyOfAddress(address: string): IpFamily {
  return address.includes(':') ? 'inet6' : 'inet';
}

// Kill switch: the nftables rules, as data first so that rendering and read-back checks use
// one definition. Each rule's text is exactly what `nft list` prints back for it.

export interface NftRuleSpec {
  text: string;
  comment: string;
}

export interface NftChainSpec {
  name: 'output' | 'input' | 'forward';
  rules: NftRuleSpec[];
}

/**
 * DHCPv4 out (RFC 2131): to the limited broadcast (DISCOVER/REQUEST from 0.0.0.0, REBINDING,
 * §4.4.5), and in RENEWING to the lease's server (§4.4.5) only when the policy names an on-link
 * one. This driver reads no lease (DHCP clients on Linux keep them in different places): the
 * broadcast alone, which renews the lease by REBINDING at T2. Port 68 reaches no off-link host.
 */
function dhcpOut(policy: KillSwitchPolicy): NftRuleSpec[] {
  // Pasted into nft syntax: a plain IPv4 address or nothing.
  if (policy.dhcpServer !== undefined && !ipaddr.IPv4.isValidFourPartDecimal(policy.dhcpServer)) {
    throw new Error(`kill switch: DHCP server "${policy.dhcpServer}" is not an IPv4 address`);
  }
  return [
    { text: 'ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept', comment: 'dhcp (broadcast)' },
    ...(policy.dhcpServer ? [{ text: `ip daddr ${policy.dhcpServer} udp sport 68 udp dport 67 accept`, comment: 'dhcp renewal (on-link lease server)' }] : []),
  ];
}
const DHCP_IN: NftRuleSpec = { text: 'meta nfproto ipv4 udp sport 67 udp dport 68 accept', comment: 'dhcp' };
/** DHCPv6 (RFC 8415 §7.1, §18): link-local client -> All_DHCP_Relay_Agents_and_Servers; answers between link-local addresses. */
const DHCP6_OUT: NftRuleSpec = { text: 'ip6 saddr fe80::/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 accept', comment: 'dhcpv6' };
const DHCP6_IN: NftRuleSpec = { text: 'ip6 saddr fe80::/10 ip6 daddr fe80::/10 udp sport 547 udp dport 546 accept', comment: 'dhcpv6' };
/**
 * Neighbour discovery (RFC 4861) with the hop limit every ND message carries (255: proof it was
 * not routed, §6.1/§7.1) and link-scoped destinations only: RS to all-routers (§6.3.7), NS to a
 * solicited-node group (§7.2.2) or a link-local neighbour (NUD, §7.3.1), NA to a link-local
 * neighbour or all-nodes (§7.2.4); in, RA and redirect only from link-local (§6.1.2, §8.1).
 * The same set as the darwin anchor (host/darwin/pf.ts), where PF cannot match the hop limit.
 */
const ND = (match: string) => ({ text: `${match} accept`, comment: 'ipv6 neighbour discovery' });
const NDP_OUT: NftRuleSpec[] = [
  ND('ip6 daddr ff02::2 ip6 hoplimit 255 icmpv6 type nd-router-solicit'),
  ND('ip6 daddr ff02::1:ff00:0/104 ip6 hoplimit 255 icmpv6 type nd-neighbor-solicit'),
  ND('ip6 daddr fe80::/10 ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }'),
  ND('ip6 daddr ff02::1 ip6 hoplimit 255 icmpv6 type nd-neighbor-advert'),
];
const NDP_IN: NftRuleSpec[] = [
  ND('ip6 saddr fe80::/10 ip6 hoplimit 255 icmpv6 type { nd-router-advert, nd-redirect }'),
  ND('ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }'),
];
const ICMP_ERRORS = 'meta l4proto { icmp, ipv6-icmp } ct state related';

/**
 * `--allow-lan` (lan.ts; the same set as the darwin anchor, host/darwin/pf.ts darwinLanRules): on
 * the uplink only, DNS and DNS over TLS to its LAN subnets rejected first, then those subnets
 * both ways and mDNS out to its groups. IPv6 subnets and ff02::fb only when IPv6 is not blocked.
 */
function lanRules(policy: KillSwitchPolicy): { output: NftRuleSpec[]; input: NftRuleSpec[] } {
  if (!policy.allowLan) return { output: [], input: [] };
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(policy.uplink)) throw new Error(`kill switch: bad uplink interface name "${policy.uplink}"`);
  const subnets = (policy.lanSubnets ?? []).filter((s) => !(policy.blockIpv6 && s.includes(':')));
  for (const subnet of subnets) if (!isLanSubnet(subnet)) throw new Error(`kill switch: LAN subnet "${subnet}" is not a private or link-local network`);
  const ip = (s: string) => (s.includes(':') ? 'ip6' : 'ip');
  const groups = policy.blockIpv6 ? [MDNS_GROUP4] : [MDNS_GROUP4, MDNS_GROUP6];
  const dnsPorts = `{ ${LAN_BLOCKED_DNS_PORTS.join(', ')} }`;
  return {
    output: [
      ...subnets.map((s) => ({
        text: `oifname "${policy.uplink}" ${ip(s)} daddr ${s} meta l4proto { tcp, udp } th dport ${dnsPorts} reject with icmpx admin-prohibited`,
        comment: 'lan: dns goes through the tunnel',
      })),
      ...subnets.map((s) => ({ text: `oifname "${policy.uplink}" ${ip(s)} daddr ${s} accept`, comment: 'lan (allow-lan)' })),
      ...groups.map((g) => ({ text: `oifname "${policy.uplink}" ${ip(g)} daddr ${g} udp dport ${MDNS_PORT} accept`, comment: 'lan: mdns' })),
    ],
    input: subnets.map((s) => ({ text: `iifname "${policy.uplink}" ${ip(s)} saddr ${s} accept`, comment: 'lan (allow-lan)' })),
  };
}

/**
 * Excluded destinations (wgctl --exclude; the same as the darwin anchor's darwinExcludeRules):
 * out to them on any interface (no rule names the uplink: a roam needs no reload), and in from
 * them only what conntrack ties to a flow the host opened (`established,related`: replies and
 * their ICMP errors), so an excluded host cannot open a flow to the host. Host prefixes are
 * written bare, as nft lists them (`ip daddr 198.51.100.7`), so the read-back compares equal.
 */
function excludeRules(policy: KillSwitchPolicy): { output: NftRuleSpec[]; input: NftRuleSpec[] } {
  const cidrs = policy.exclude ?? [];
  for (const cidr of cidrs) {
    const checked = checkExcludedCidr(cidr);
    if (!('cidr' in checked) || checked.cidr !== cidr) throw new Error(`kill switch: excluded "${cidr}" is not a canonical CIDR that may be excluded`);
  }
  const match = (cidr: string, side: 'daddr' | 'saddr') => `${cidr.includes(':') ? 'ip6' : 'ip'} ${side} ${cidr.replace(/\/(32|128)$/, '')}`;
  return {
    output: cidrs.map((c) => ({ text: `${match(c, 'daddr')} accept`, comment: `excluded ${c}` })),
    input: cidrs.map((c) => ({ text: `${match(c, 'saddr')} ct state established,related accept`, comment: `excluded ${c} (replies)` })),
  };
}

/**
 * `wgctl portal` (driver.ts PortalWindow; the same set as the darwin anchor's
 * darwinPortalWindowRules): out, the host's DNS to the uplink's resolvers and its TCP to ports
 * 80/443 anywhere; in, only the replies of those flows (conntrack: a flow this host opened).
 * Output and input only: the VM's forwarded traffic stays held to the endpoints. IPv6 only when
 * it is not blocked.
 */
function portalWindowRules(policy: KillSwitchPolicy): { output: NftRuleSpec[]; input: NftRuleSpec[] } {
  const window = policy.portalWindow;
  if (!window) return { output: [], input: [] };
  for (const r of window.resolvers) if (!ipaddr.isValid(r)) throw new Error(`kill switch: portal-window resolver "${r}" is not an IP address`);
  const resolvers = window.resolvers.filter((r) => !(policy.blockIpv6 && r.includes(':'))).map((r) => ipaddr.parse(r).toString());
  const ip = (a: string) => (a.includes(':') ? 'ip6' : 'ip');
  const family = policy.blockIpv6 ? 'meta nfproto ipv4 ' : '';
  const ports = `{ ${PORTAL_WEB_PORTS.join(', ')} }`;
  const comment = 'portal window (wgctl portal)';
  return {
    output: [...resolvers.map((r) => ({ text: `${ip(r)} daddr ${r} meta l4proto { tcp, udp } th dport 53 accept`, comment })), { text: `${family}tcp dport ${ports} accept`, comment }],
    input: [
      ...resolvers.map((r) => ({ text: `${ip(r)} saddr ${r} meta l4proto { tcp, udp } th sport 53 ct state established accept`, comment })),
      { text: `${family}tcp sport ${ports} ct state established accept`, comment },
    ],
  };
}

function endpointMatch(endpoint: ServerEndpoint, direction: 'to' | 'from'): string {
  const ip = familyOfAddress(endpoint.ip) === 'inet' ? 'ip' : 'ip6';
  const address = ipaddr.parse(endpoint.ip).toString();
  return direction === 'to' ? `${ip} daddr ${address} udp dport ${endpoint.port}` : `${ip} saddr ${address} udp sport ${endpoint.port}`;
}

/**
 * The kill switch, fail-closed on every interface: only loopback and the VM's link (the vnic)
 * pass freely. On any other interface — the uplink, a second Wi-Fi/Ethernet, a tether, the
 * interface we roamed away from — only DHCP, IPv6 neighbour discovery when IPv6 is in use,
 * and WireGuard UDP to/from each server endpoint may pass, for the host's own traffic
 * (output/input hooks, so a socket bound to another interface is covered too) and for
 * forwarded traffic (the VM's, seen in the forward hook before the hypervisor's masquerade
 * rewrites it: from the vnic only UDP to a server may leave; towards the vnic only replies
 * and UDP from a server may enter). No rule names the uplink (`policy.uplink` is for status)
 * but --allow-lan's (lanRules), which hold on the uplink alone.
 */
export function killSwitchChains(policy: KillSwitchPolicy): NftChainSpec[] {
  const vnic = policy.vnic;
  const ipv6InUse = policy.allowDhcp6 || policy.endpoints.some((e) => familyOfAddress(e.ip) === 'inet6');
  const lan = lanRules(policy);
  const excluded = excludeRules(policy);
  const portal = portalWindowRules(policy);
  const endpoints = (direction: 'to' | 'from', prefix = '') =>
    policy.endpoints.map((e) => ({ text: `${prefix}${endpointMatch(e, direction)} accept`, comment: `wireguard endpoint ${e.ip}:${e.port}` }));
  const output: NftRuleSpec[] = [
    { text: 'oifname "lo" accept', comment: 'loopback' },
    ...(vnic ? [{ text: `oifname "${vnic}" accept`, comment: 'the link to the VM' }] : []),
    ...dhcpOut(policy),
    ...(policy.allowDhcp6 ? [DHCP6_OUT] : []),
    ...(ipv6InUse ? NDP_OUT : []),
    ...lan.output,
    ...excluded.output,
    ...portal.output,
    ...endpoints('to'),
    // Rejected, not dropped: the host's own programs fail at once (IPv6 falls back to IPv4
    // without waiting) and the ICMP error is delivered locally, never sent on any interface.
    { text: 'counter reject with icmpx admin-prohibited', comment: 'kill switch' },
  ];
  const input: NftRuleSpec[] = [
    { text: 'iifname "lo" accept', comment: 'loopback' },
    ...(vnic ? [{ text: `iifname "${vnic}" accept`, comment: 'the link to the VM' }] : []),
    DHCP_IN,
    ...(policy.allowDhcp6 ? [DHCP6_IN] : []),
    ...(ipv6InUse ? NDP_IN : []),
    ...lan.input,
    ...excluded.input,
    ...portal.input,
    ...endpoints('from'),
    { text: `${ICMP_ERRORS} accept`, comment: 'icmp errors for allowed flows (path mtu)' },
    { text: 'counter drop', comment: 'kill switch' },
  ];
  const forward: NftRuleSpec[] = vnic
    ? [
        // With the split routes, whatever the VM sends that is not pinned is routed straight back
        // to it: a loop. Dropping it also keeps conntrack from remembering such a flow without NAT
        // (while a roam briefly unpins the server), which would strand the VM's WireGuard flow.
        { text: `iifname "${vnic}" oifname "${vnic}" drop`, comment: 'routed back to the VM: a loop' },
        ...endpoints('to', `iifname "${vnic}" `),
        { text: `iifname "${vnic}" counter drop`, comment: 'kill switch (the VM, whatever interface it would leave by)' },
        { text: `oifname "${vnic}" ct state established,related accept`, comment: 'replies to the VM (and their icmp errors)' },
        ...endpoints('from', `oifname "${vnic}" `),
        { text: `oifname "${vnic}" counter drop`, comment: 'kill switch (towards the VM)' },
        { text: 'counter drop', comment: 'kill switch (forwarded between other interfaces)' },
      ]
    : [
        ...endpoints('to'),
        ...endpoints('from'),
        { text: `${ICMP_ERRORS} accept`, comment: 'icmp errors for allowed flows (path mtu)' },
        { text: 'counter drop', comment: 'kill switch (forwarded)' },
      ];
  return [
    { name: 'output', rules: output },
    { name: 'input', rules: input },
    { name: 'forward', rules: forward },
  ];
}

export function renderNftKillSwitch(table: string, policy: KillSwitchPolicy): string {
  const chains = killSwitchChains(policy).map((chain) =>
    [
      `\tchain ${chain.name} {`,
      `\t\ttype filter hook ${chain.name} priority filter; policy accept;`,
      ...chain.rules.map((r) => `\t\t${r.text} comment "${r.comment}"`),
      '\t}',
    ].join('\n'),
  );
  return `table inet ${table} {\n${chains.join('\n')}\n}\n`;
}

/** `add; delete` makes the delete succeed whether or not the table exists (nft 1.0.6 has no `destroy`). */
export function dropTableBatch(table: string): string {
  return `add table inet ${table}\ndelete table inet ${table}\n`;
}
