/**
 * The Linux host driver: iproute2 (`ip -j`), nftables (`table inet wgctl`), and DNS through
 * /etc/resolv.conf (default) or systemd-resolved (`resolvectl`).
 *
 * Like every driver it only builds argv and hands them to the runner it is given; parsing is
 * in @wgctl/parsers. Even resolv.conf is read and written through commands (`cat`, `tee`,
 * `mv -T`) so that every change shows up, with its argv, in the step that made it.
 */
import ipaddr from 'ipaddr.js';
import { checkExcludedCidr } from '@wgctl/config';
import {
  formatIpRouteLine,
  parseIpAddrJson,
  parseIpMonitorLine,
  parseIpRouteJson,
  parseNftJson,
  parseResolvConf,
  parseResolvectlScopes,
  primaryIpAddress,
  usableDefaultRoutes,
  type IpFamily,
  type IpRoute,
} from '@wgctl/parsers';
import { CommandError, type Runner, readTogether } from '@wgctl/runner';
import type {
  DnsContext,
  DnsSnapshot,
  HostNetworkDriver,
  KillSwitchHandle,
  KillSwitchPolicy,
  KillSwitchStatus,
  RouteChange,
  RouteReadback,
  RouteSpec,
  ServerEndpoint,
  Uplink,
  UplinkOptions,
  Vnic,
} from './driver';
import { PORTAL_WEB_PORTS } from './driver';
import type { DnsWatch } from './dns-watch';
import type { KillSwitchWatch } from './kill-switch-watch';
import { LinuxKillSwitchWatch } from './linux-watch';
import { LAN_BLOCKED_DNS_PORTS, MDNS_GROUP4, MDNS_GROUP6, MDNS_PORT, isLanSubnet, lanSubnetsOf } from './lan';

export type LinuxDnsMode = 'resolv-conf' | 'resolvectl';

export interface LinuxDriverOptions {
  /** resolv.conf to manage (tests point this at a temp file). Default /etc/resolv.conf. */
  resolvConfPath?: string;
  dnsMode?: LinuxDnsMode;
  /** nftables table name in family inet. Default `wgctl`. */
  nftTable?: string;
}

const READ = { readOnly: true } as const;
/** systemd-resolved's own resolv.conf (all its servers), rewritten by it on each change. */
const RESOLVED_RESOLV_CONF = '/run/systemd/resolve/resolv.conf';

function familyOfAddress(address: string): IpFamily {
  return address.includes(':') ? 'inet6' : 'inet';
}

function hostCidr(address: string): string {
  return familyOfAddress(address) === 'inet' ? `${address}/32` : `${address}/128`;
}

function sameAddress(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  try {
    return ipaddr.parse(a.split('%')[0]).toString() === ipaddr.parse(b.split('%')[0]).toString();
  } catch {
    return a === b;
  }
}

function canonicalCidr(cidr: string): string {
  const [address, length] = cidr.split('/');
  const family = familyOfAddress(address);
  return `${ipaddr.parse(address).toString()}/${length ?? (family === 'inet' ? 32 : 128)}`;
}

function isDefault(cidr: string): boolean {
  return cidr === '0.0.0.0/0' || cidr === '::/0' || cidr === 'default';
}

function familyFlag(family: IpFamily): string[] {
  return family === 'inet6' ? ['-6'] : [];
}

function routeArgv(verb: 'add' | 'del', route: RouteSpec): string[] {
  const family = familyOfAddress(route.destination.split('/')[0]);
  return ['ip', ...familyFlag(family), 'route', verb, route.destination, 'via', route.gateway, ...(route.interface ? ['dev', route.interface] : [])];
}

// ---------------------------------------------------------------------------------------
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
function dropTableBatch(table: string): string {
  return `add table inet ${table}\ndelete table inet ${table}\n`;
}

// ---------------------------------------------------------------------------------------

const RESOLV_HEADER = '# Written by wgctl mac-agent: DNS goes through the tunnel. The previous file is restored on down.';

export function renderResolvConf(servers: string[], previous?: string): string {
  const kept = previous ? parseResolvConf(previous) : { search: [], options: [] };
  const lines = [RESOLV_HEADER, ...servers.map((s) => `nameserver ${s}`)];
  if (kept.search.length) lines.push(`search ${kept.search.join(' ')}`);
  if (kept.options.length) lines.push(`options ${kept.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

export class LinuxDriver implements HostNetworkDriver {
  readonly name = 'linux' as const;
  readonly resolvConfPath: string;
  readonly dnsMode: LinuxDnsMode;
  readonly nftTable: string;

  constructor(options: LinuxDriverOptions = {}) {
    this.resolvConfPath = options.resolvConfPath ?? '/etc/resolv.conf';
    this.dnsMode = options.dnsMode ?? 'resolv-conf';
    this.nftTable = options.nftTable ?? 'wgctl';
  }

  private async routes(run: Runner, family: IpFamily): Promise<IpRoute[]> {
    const result = await run.run(['ip', '-j', ...familyFlag(family), 'route', 'show', 'table', 'main'], READ);
    return parseIpRouteJson(result.stdout, family);
  }

  private async link(run: Runner, dev: string) {
    const result = await run.run(['ip', '-j', 'addr', 'show', 'dev', dev], READ);
    const [link] = parseIpAddrJson(result.stdout);
    if (!link) throw new Error(`interface ${dev} not found in \`ip -j addr show dev ${dev}\``);
    return link;
  }

  async discoverUplink(run: Runner, options?: UplinkOptions): Promise<Uplink | null> {
    // Both tables at once: the IPv6 one is only wasted when there is no uplink at all.
    const [routes4, routes6] = await readTogether([this.routes(run, 'inet'), this.routes(run, 'inet6')]);
    const [best] = usableDefaultRoutes(routes4);
    if (!best || !best.dev || !best.gateway) return null;
    const defaults6 = usableDefaultRoutes(routes6);
    const v6 = defaults6.find((r) => r.dev === best.dev) ?? defaults6[0];
    const uplink: Uplink = { interface: best.dev, gateway: best.gateway, gateway6: v6?.gateway };
    if (options?.address === false) return uplink;
    const link = await this.link(run, best.dev);
    return { ...uplink, address: primaryIpAddress(link, 'inet')?.local };
  }

  /** The uplink's LAN subnets (lan.ts), from its usable addresses; [] when it cannot be read. */
  async readLanSubnets(run: Runner, uplink: string): Promise<string[]> {
    try {
      const link = await this.link(run, uplink);
      const usable = link.addresses.filter((a) => !a.flags.includes('tentative') && !a.flags.includes('dadfailed'));
      return lanSubnetsOf(usable.map((a) => ({ address: a.local, prefixLength: a.prefixlen })));
    } catch {
      return [];
    }
  }

  async discoverVnic(run: Runner, vmAddress: string): Promise<Vnic> {
    const result = await run.run(['ip', '-j', 'route', 'get', vmAddress], READ);
    const [route] = parseIpRouteJson(result.stdout, familyOfAddress(vmAddress));
    if (!route || !route.dev) throw new Error(`no route to the VM address ${vmAddress}`);
    if (route.type === 'local') throw new Error(`${vmAddress} is an address of this host, not the VM's`);
    if (route.gateway) {
      throw new Error(`the VM address ${vmAddress} is not on a directly connected network (it is reached via ${route.gateway} dev ${route.dev}); give the VM's vnic address`);
    }
    const link = await this.link(run, route.dev);
    const address = route.prefsrc ?? primaryIpAddress(link, 'inet')?.local;
    if (!address) throw new Error(`interface ${route.dev} facing the VM has no IPv4 address`);
    return { interface: route.dev, address, address6: primaryIpAddress(link, 'inet6')?.local };
  }

  async readRoutes(run: Runner, wanted: RouteSpec[]): Promise<RouteReadback[]> {
    const families = new Set(wanted.map((w) => familyOfAddress(w.destination.split('/')[0])));
    const reads = (['inet', 'inet6'] as const).filter((family) => families.has(family)).map((family) => this.routes(run, family));
    const table: IpRoute[] = (await readTogether(reads)).flat();
    return wanted.map((spec) => {
      const destination = canonicalCidr(spec.destination);
      const sameDestination = table.filter((r) => r.destination === destination);
      const match = sameDestination.find(
        (r) => sameAddress(r.gateway, spec.gateway) && (spec.interface === undefined || r.dev === spec.interface),
      );
      const shown = match ?? sameDestination[0];
      return { ...spec, present: match !== undefined, evidence: shown ? formatIpRouteLine(shown) : '' };
    });
  }

  async addRoute(run: Runner, route: RouteSpec): Promise<void> {
    const result = await run.run(routeArgv('add', route), { allowFailure: true });
    if (result.exitCode === 0) return;
    if (/File exists/.test(result.stderr)) {
      const [readback] = await this.readRoutes(run, [route]);
      if (readback.present) return;
      throw new Error(`cannot add ${route.destination} via ${route.gateway}: a different route is in the way: ${readback.evidence}`);
    }
    throw new CommandError(result);
  }

  async deleteRoute(run: Runner, route: RouteSpec): Promise<void> {
    // Never the user's default route, whatever the caller asks.
    if (isDefault(route.destination)) throw new Error(`refusing to delete a default route (${route.destination})`);
    const result = await run.run(routeArgv('del', route), { allowFailure: true });
    if (result.exitCode === 0) return;
    // ESRCH: not in the table; a vanished device took its routes with it.
    if (/No such process|Cannot find device|No such device/.test(result.stderr)) return;
    throw new CommandError(result);
  }

  renderKillSwitch(policy: KillSwitchPolicy): string {
    return renderNftKillSwitch(this.nftTable, policy);
  }

  async loadKillSwitch(run: Runner, policy: KillSwitchPolicy): Promise<KillSwitchHandle> {
    // One batch replaces the table atomically: there is no moment without rules. `nft -f` is
    // one transaction: a batch nft rejects changes nothing, so no `nft -c` is needed first.
    // Only when the load is not really run (dry-run) is the batch checked with `nft -c`.
    const batch = dropTableBatch(this.nftTable) + this.renderKillSwitch(policy);
    const load = await run.run(['nft', '-f', '-'], { input: batch });
    if (load.dryRun) await run.run(['nft', '-c', '-f', '-'], { input: batch, readOnly: true });
    return { nftTable: `inet ${this.nftTable}` };
  }

  async unloadKillSwitch(run: Runner, _handle: KillSwitchHandle): Promise<void> {
    await run.run(['nft', '-f', '-'], { input: dropTableBatch(this.nftTable) });
  }

  async readKillSwitch(run: Runner, policy?: KillSwitchPolicy): Promise<KillSwitchStatus> {
    const result = await run.run(['nft', '-j', 'list', 'table', 'inet', this.nftTable], { readOnly: true, allowFailure: true });
    const status: KillSwitchStatus = { loaded: false, enabled: false, referenced: false, tokenHeld: false, rules: [], problems: [] };
    if (result.exitCode !== 0) {
      if (/No such file or directory/.test(result.stderr)) {
        if (policy) status.problems.push(`nftables table inet ${this.nftTable} is not loaded`);
        return status;
      }
      throw new CommandError(result);
    }
    const ruleset = parseNftJson(result.stdout);
    status.loaded = true;
    status.rules = ruleset.rules.map((r) => `${r.chain}: ${r.text}`);
    // The rules name no uplink (they hold on every interface): the policy's uplink is shown.
    if (policy) status.interface = policy.uplink;
    const hooked = ruleset.chains.filter((c) => c.hook !== undefined);
    // nftables has no separate "enabled" switch or reference: a table whose base chains are
    // hooked is in force. `referenced`/`tokenHeld` (PF concepts) mirror that on linux.
    status.enabled = ['output', 'input', 'forward'].every((hook) => hooked.some((c) => c.hook === hook));
    status.referenced = status.enabled;
    status.tokenHeld = status.enabled;
    if (policy) {
      for (const spec of killSwitchChains(policy)) {
        const chain = ruleset.chains.find((c) => c.name === spec.name);
        if (!chain) {
          status.problems.push(`chain ${spec.name} is missing`);
          continue;
        }
        if (chain.hook !== spec.name || chain.policy !== 'accept' || chain.type !== 'filter') {
          status.problems.push(`chain ${spec.name} is not a filter chain on the ${spec.name} hook (hook ${chain.hook ?? 'none'})`);
        }
        const live = ruleset.rules.filter((r) => r.chain === spec.name).map((r) => r.text);
        const wanted = spec.rules.map((r) => r.text);
        if (JSON.stringify(live) !== JSON.stringify(wanted)) {
          const missing = wanted.filter((w) => !live.includes(w));
          const extra = live.filter((l) => !wanted.includes(l));
          const detail = [...missing.map((m) => `missing: ${m}`), ...extra.map((e) => `unexpected: ${e}`)];
          status.problems.push(`chain ${spec.name} differs from the policy${detail.length ? `: ${detail.join('; ')}` : ' (order)'}`);
        }
      }
      if (!status.enabled) status.problems.push('not every base chain (output, input, forward) is hooked');
    }
    return status;
  }

  // ----- DNS -----

  async readDns(run: Runner, context?: DnsContext): Promise<DnsSnapshot> {
    if (this.dnsMode === 'resolvectl') {
      const [dnsRead, domainRead] = await readTogether([run.run(['resolvectl', 'dns'], READ), run.run(['resolvectl', 'domain'], READ)]);
      const dns = parseResolvectlScopes(dnsRead.stdout);
      const domains = parseResolvectlScopes(domainRead.stdout);
      return {
        resolvectlLink: context?.vnic,
        services: dns.map((scope) => ({
          name: scope.scope,
          servers: scope.values,
          searchDomains: domains.find((d) => d.scope === scope.scope)?.values ?? [],
        })),
      };
    }
    const path = this.resolvConfPath;
    const [link, cat] = await readTogether([
      run.run(['readlink', path], { readOnly: true, allowFailure: true }),
      run.run(['cat', path], { readOnly: true, allowFailure: true }),
    ]);
    const snapshot: DnsSnapshot = { services: [] };
    if (link.exitCode === 0 && link.stdout.trim()) snapshot.resolvConfLink = link.stdout.replace(/\n$/, '');
    if (cat.exitCode === 0) {
      if (!snapshot.resolvConfLink) snapshot.resolvConf = cat.stdout;
      const parsed = parseResolvConf(cat.stdout);
      snapshot.services.push({ name: path, servers: parsed.nameservers, searchDomains: parsed.search });
    } else if (/No such file or directory/.test(cat.stderr)) {
      if (!snapshot.resolvConfLink) snapshot.resolvConfMissing = true;
      snapshot.services.push({ name: path, servers: [] });
    } else {
      throw new CommandError(cat);
    }
    return snapshot;
  }

  async setDns(run: Runner, servers: string[], current: DnsSnapshot, context?: DnsContext): Promise<void> {
    if (servers.length === 0) throw new Error('setDns: no DNS servers given');
    if (this.dnsMode === 'resolvectl') {
      const link = context?.vnic;
      if (!link) throw new Error('resolvectl DNS needs the VM-facing interface (vnic)');
      await run.run(['resolvectl', 'dns', link, ...servers]);
      await run.run(['resolvectl', 'domain', link, '~.']);
      await run.run(['resolvectl', 'default-route', link, 'yes']);
      return;
    }
    // Keep search domains and options of the file we replace (from the target if it was a link).
    const previous = current.resolvConf ?? (await this.currentResolvConf(run));
    await this.writeFileAtomically(run, renderResolvConf(servers, previous));
  }

  async restoreDns(run: Runner, snapshot: DnsSnapshot): Promise<void> {
    if (this.dnsMode === 'resolvectl') {
      if (snapshot.resolvectlLink) await run.run(['resolvectl', 'revert', snapshot.resolvectlLink]);
      return;
    }
    const path = this.resolvConfPath;
    const tmp = `${path}.wgctl-tmp`;
    if (snapshot.resolvConfLink) {
      await run.run(['ln', '-sfn', snapshot.resolvConfLink, tmp]);
      await run.run(['mv', '-f', '-T', tmp, path]);
    } else if (snapshot.resolvConfMissing) {
      await run.run(['rm', '-f', path]);
    } else if (snapshot.resolvConf !== undefined) {
      await this.writeFileAtomically(run, snapshot.resolvConf);
    }
  }

  private async currentResolvConf(run: Runner): Promise<string | undefined> {
    const cat = await run.run(['cat', this.resolvConfPath], { readOnly: true, allowFailure: true });
    return cat.exitCode === 0 ? cat.stdout : undefined;
  }

  /** tee into a sibling temp file, then rename over the target: readers never see half a file. */
  private async writeFileAtomically(run: Runner, content: string): Promise<void> {
    const tmp = `${this.resolvConfPath}.wgctl-tmp`;
    await run.run(['tee', tmp], { input: content });
    await run.run(['mv', '-f', '-T', tmp, this.resolvConfPath]);
  }

  /**
   * resolv-conf mode: the file this driver writes (it replaces a symlink there by a file of its
   * own, so the link's target is not what it manages). resolvectl mode: systemd-resolved
   * rewrites its /run/systemd/resolve/resolv.conf on each change of its servers.
   */
  dnsWatch(): DnsWatch {
    return { files: [this.dnsMode === 'resolvectl' ? RESOLVED_RESOLV_CONF : this.resolvConfPath] };
  }

  /** `nft monitor` reports changes of the table as they are committed (linux-watch.ts). */
  killSwitchWatch(): KillSwitchWatch {
    return new LinuxKillSwitchWatch(this.nftTable, (run, policy) => this.readKillSwitch(run, policy));
  }

  // ----- roaming -----

  async forgetFlows(run: Runner, endpoints: ServerEndpoint[]): Promise<void> {
    for (const endpoint of endpoints) {
      // A NAT binding made on the old uplink would keep the old source address; conntrack-tools
      // may be absent (exit 127) and "0 flow entries" exits 1: both are fine.
      await run.run(
        ['conntrack', '-D', '-f', familyOfAddress(endpoint.ip) === 'inet' ? 'ipv4' : 'ipv6', '-p', 'udp', '--orig-dst', endpoint.ip, '--orig-port-dst', String(endpoint.port)],
        { allowFailure: true },
      );
    }
  }

  monitorArgv(): string[] {
    // -o folds each event onto one line; `label` says which kind it is.
    return ['ip', '-o', 'monitor', 'label', 'route', 'link', 'address'];
  }

  classifyMonitorEvent(block: string): RouteChange {
    let event;
    try {
      event = parseIpMonitorLine(block);
    } catch {
      // Unreadable: let the service re-read the routing table rather than miss a change.
      return { kind: 'link-changed', line: block };
    }
    if (event.object === 'route') {
      const inMain = event.route.table === undefined || event.route.table === 'main';
      const kind = inMain && isDefault(event.route.destination) && event.route.type === 'unicast' ? 'default-changed' : 'other';
      return { kind, line: event.line, destination: event.route.destination, deleted: event.deleted };
    }
    if (event.object === 'link') return { kind: 'link-changed', line: event.line, deleted: event.deleted };
    return { kind: 'other', line: event.line, deleted: event.deleted };
  }
}
