/**
 * The kill switch on macOS: a PF anchor. PF is taken with `pfctl -E` (a reference token, a u64
 * kept as a string) and released with `-X`, never `-e`/`-d`, which would break other PF users
 * (the Application Firewall, Internet Sharing, other VPNs); the main ruleset is never reloaded
 * or edited: the rules live in a child of the stock `anchor "com.apple/*"`, which every macOS
 * pf.conf evaluates (see DARWIN_PF_ANCHOR).
 *
 * The rules (renderDarwinKillSwitch), the states to forget (darwinStateKillArgv), and load,
 * unload and read, as functions of the runner, the anchor and the state dir the rules file is
 * written to.
 */
import ipaddr from 'ipaddr.js';
import { checkExcludedCidr, isIpAddressOrZoned } from '@wgctl/config';
import {
  DARWIN_INTERFACE_NAME,
  classifyPfRelease,
  normalizePfRuleset,
  parseIfconfig,
  parsePfEnableOutput,
  parsePfInfo,
  parsePfReferences,
  parsePfRules,
  parsePfSyntaxErrors,
  pfRulesReferenceAnchor,
  type IfconfigInterface,
  type PfRule,
} from '@wgctl/parsers';
import { CommandError, type RunResult, type Runner, readTogether } from '@wgctl/runner';
import { PORTAL_WEB_PORTS, type KillSwitchHandle, type KillSwitchPolicy, type KillSwitchStatus } from '../driver';
import { READ, familyOf } from './common';
import { LAN_BLOCKED_DNS_PORTS, MDNS_GROUP4, MDNS_GROUP6, MDNS_PORT, isLanSubnet } from '../lan';

/**
 * Where the kill switch lives: a child of the stock `anchor "com.apple/*"` of /etc/pf.conf.
 * xnu evaluates a wildcard anchor's children in name order (its anchor tree is sorted by
 * name), so `000.` puts ours before Apple's own children (`200.AirDrop/Bonjour`,
 * `250.ApplicationFirewall`, …); and a reload of /etc/pf.conf — by macOS or another app —
 * replaces the main ruleset but not the rulesets of anchors, so the rules stay evaluated
 * without any edit of the main ruleset (an appended reference would be dropped by that reload,
 * and would come after every earlier `quick` rule).
 */
export const DARWIN_PF_ANCHOR = 'com.apple/000.wgctl';
/**
 * Where wgctl before this layout kept the kill switch: a top-level anchor made reachable by
 * re-loading the main ruleset with `anchor "com.wgctl"` appended. Its reference is removed (and
 * the anchor flushed) by the next load or unload that finds it.
 */
const DARWIN_LEGACY_PF_ANCHOR = 'com.wgctl';
/** What an anchor name may be (it is pasted into pfctl's argv and the rules file's name). */
export const PF_ANCHOR_PATH = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;

/** The file the rules of `anchor` are loaded from, in the state dir. */
export function pfRulesFile(stateDir: string, anchor: string): string {
  return `${stateDir.replace(/\/+$/, '')}/pf-${anchor.replace(/\//g, '_')}.conf`;
}

// ---------------------------------------------------------------------------------------
// Kill switch rules

function validatePolicy(policy: KillSwitchPolicy): void {
  // Everything below is pasted into pf.conf syntax: refuse anything that is not a plain value.
  if (!DARWIN_INTERFACE_NAME.test(policy.uplink)) throw new Error(`kill switch: bad uplink interface name "${policy.uplink}"`);
  if (policy.vnic !== undefined && (!DARWIN_INTERFACE_NAME.test(policy.vnic) || policy.vnic === 'lo0')) {
    throw new Error(`kill switch: bad VM interface name "${policy.vnic}"`);
  }
  if (policy.dhcpServer !== undefined && !ipaddr.IPv4.isValidFourPartDecimal(policy.dhcpServer)) {
    throw new Error(`kill switch: DHCP server "${policy.dhcpServer}" is not an IPv4 address`);
  }
  for (const subnet of policy.lanSubnets ?? []) {
    if (!isLanSubnet(subnet)) throw new Error(`kill switch: LAN subnet "${subnet}" is not a private or link-local network`);
  }
  for (const cidr of policy.exclude ?? []) {
    const checked = checkExcludedCidr(cidr);
    if (!('cidr' in checked) || checked.cidr !== cidr) throw new Error(`kill switch: excluded "${cidr}" is not a canonical CIDR that may be excluded`);
  }
  for (const e of policy.endpoints) {
    if (!isIpAddressOrZoned(e.ip)) throw new Error(`kill switch: endpoint "${e.ip}" is not an IP address`);
    if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) throw new Error(`kill switch: bad endpoint port ${e.port}`);
  }
}

/**
 * DHCPv4 through the kill switch, no wider than the protocol (RFC 2131): a client sends to
 * 255.255.255.255:67 (DISCOVER/REQUEST from 0.0.0.0 before a lease, REBINDING from its address,
 * §4.4.5) and, in RENEWING only, unicasts to its lease's server (§4.4.5): allowed only when
 * that server is on-link (policy.dhcpServer, see onLinkLeaseServer), so port 68 reaches no
 * off-link host. Mullvad allows the broadcast alone (talpid-core firewall/macos.rs). Replies
 * come from port 67 to port 68 from any address (a relay's, or the server's). Every rule is
 * `no state`: a state made by an inbound packet would let the reversed flow out — a far host
 * sending from port 67 would open port 68 -> that host:67, which no rule allows. RELEASE and
 * INFORM unicasts (§4.4.6, §4.4.3) pass only to that same on-link server.
 */
function darwinDhcpRules(policy: KillSwitchPolicy): string[] {
  return [
    '# DHCP (RFC 2131): client 68 -> the limited broadcast:67, or the on-link server of our lease; server 67 -> 68',
    'pass out quick inet proto udp from any port 68 to 255.255.255.255 port 67 no state',
    ...(policy.dhcpServer ? [`pass out quick inet proto udp from any port 68 to ${policy.dhcpServer} port 67 no state`] : []),
    'pass in quick inet proto udp from any port 67 to any port 68 no state',
  ];
}

/**
 * DHCPv6 and neighbour discovery, each to link-scoped destinations only (routers never forward
 * fe80::/10 or ff02::/16, RFC 4291 §2.5.6/§2.7), as Mullvad does (talpid-core firewall/macos.rs):
 * - DHCPv6 (RFC 8415 §7.1, §18): the client sends from its link-local address to
 *   All_DHCP_Relay_Agents_and_Servers ff02::1:2; servers and relays answer from link-local to
 *   it. ff05::1:3 is for relays talking to servers, not clients: not allowed. The Server
 *   Unicast option is not honoured (a unicast to a global address would leave the link): a
 *   client whose unicast goes unanswered falls back to multicast.
 * - ND (RFC 4861): router solicitation to all-routers ff02::2 (§6.3.7); neighbour solicitation
 *   to a solicited-node group ff02::1:ff00:0/104 (§7.2.2, DAD from ::) or, for reachability
 *   checks, to the neighbour's link-local address (§7.3.1: routers are known by link-local
 *   addresses, §6.1.2, and the kill switch lets no other neighbour through); neighbour
 *   advertisement to the soliciting link-local address, or to all-nodes ff02::1 (§7.2.4,
 *   unsolicited or answering DAD). In: router advertisement and redirect only from fe80::/10
 *   (§6.1.2, §8.1); neighbour solicitation/advertisement from any source (DAD comes from ::).
 * PF cannot match the hop limit of 255 every ND message carries (pf.conf has no such keyword;
 * xnu's nd6 input drops ND with any other hop limit, RFC 4861 §6.1/§7.1, after PF). Only root
 * can send ND at all (xnu icmp6_dgram_send lets other users send echo and node-information
 * requests only), so these rules are defence in depth. Cost of the link-local-only unicasts: a
 * neighbour known by a global address (a static global gateway6) fails its reachability probe
 * and is resolved again by multicast (§7.3.3); one that solicits us from a global source gets
 * no answer (Linux routers use their link-local address: dhcp-exfiltration.netns.test.ts).
 * `no state` for the same reason as DHCP.
 */
const DARWIN_DHCP6_ND_RULES: readonly string[] = [
  '# DHCPv6 (RFC 8415): link-local 546 -> ff02::1:2 547; 547 -> 546 between link-local addresses',
  'pass out quick inet6 proto udp from fe80::/10 port 546 to ff02::1:2 port 547 no state',
  'pass in quick inet6 proto udp from fe80::/10 port 547 to fe80::/10 port 546 no state',
  '# Neighbour discovery (RFC 4861), to link-scoped destinations only',
  'pass out quick inet6 proto ipv6-icmp from any to ff02::2 icmp6-type routersol no state',
  'pass out quick inet6 proto ipv6-icmp from any to ff02::1:ff00:0/104 icmp6-type neighbrsol no state',
  'pass out quick inet6 proto ipv6-icmp from any to fe80::/10 icmp6-type neighbrsol no state',
  'pass out quick inet6 proto ipv6-icmp from any to fe80::/10 icmp6-type neighbradv no state',
  'pass out quick inet6 proto ipv6-icmp from any to ff02::1 icmp6-type neighbradv no state',
  'pass in quick inet6 proto ipv6-icmp from fe80::/10 to any icmp6-type { routeradv, redir } no state',
  'pass in quick inet6 proto ipv6-icmp all icmp6-type { neighbrsol, neighbradv } no state',
];

/**
 * `--allow-lan` (lan.ts): on the uplink only (so not awdl0, a tether or the interface roamed
 * away from), its LAN subnets both ways and mDNS out to its groups (answers come from LAN
 * addresses); first, DNS and DNS over TLS to the LAN are dropped: names go through the tunnel
 * (Mullvad drops DNS to LAN hosts too). `no state`, like lo0 and the vnic: both directions pass
 * anyway, and sessions opened before the load (an SMB mount, AirPlay) keep working. Inbound
 * from the LAN is admitted like Mullvad's `pass in from <lan net> to any`: LAN hosts may reach
 * the Mac's services (that is what "allow LAN" means to users of Mullvad, Tailscale, IVPN).
 * IPv6 subnets and ff02::fb only when IPv6 is not blocked.
 */
function darwinLanRules(policy: KillSwitchPolicy): string[] {
  if (!policy.allowLan) return [];
  const on = `on ${policy.uplink}`;
  const subnets = (policy.lanSubnets ?? []).filter((s) => !(policy.blockIpv6 && s.includes(':')));
  const groups = policy.blockIpv6 ? [MDNS_GROUP4] : [MDNS_GROUP4, MDNS_GROUP6];
  const dnsPorts = `{ ${LAN_BLOCKED_DNS_PORTS.join(', ')} }`;
  return [
    `# LAN (--allow-lan): ${policy.uplink}'s private subnets both ways and mDNS; never DNS to the LAN`,
    ...subnets.map((s) => `block drop out quick ${on} proto { tcp, udp } from any to ${s} port ${dnsPorts}`),
    ...subnets.flatMap((s) => [`pass out quick ${on} ${familyOf(s.split('/')[0])} from any to ${s} no state`, `pass in quick ${on} ${familyOf(s.split('/')[0])} from ${s} to any no state`]),
    ...groups.map((g) => `pass out quick ${on} ${familyOf(g)} proto udp from any to ${g} port ${MDNS_PORT} no state`),
  ];
}

/**
 * Excluded destinations (routed via the uplink's gateway, in clear): the host may open flows to
 * them, on any interface (no rule names the uplink, so a roam needs no reload), and only their
 * replies come back, by the state each first packet makes (xnu pf_test looks states up before
 * any rule: the `block drop in quick all` below never sees them). `flags S/SA keep state` is
 * what pfctl makes of a bare pass rule anyway (written out so the rules read as loaded): a TCP
 * flow opened before the load has no state and is blocked, and an excluded host cannot open a
 * flow to the Mac. Before `block drop quick inet6 all`: an IPv6 range excluded on purpose
 * leaves even while the rest of IPv6 is blocked.
 */
function darwinExcludeRules(policy: KillSwitchPolicy): string[] {
  if (!policy.exclude?.length) return [];
  return [
    '# Excluded destinations (wgctl --exclude), routed outside the tunnel: out, and their replies by state',
    ...policy.exclude.map((cidr) => `pass out quick ${familyOf(cidr.split('/')[0])} from any to ${cidr} flags S/SA keep state`),
  ];
}

/**
 * `wgctl portal` (driver.ts PortalWindow; the same set as linux.ts portalWindowRules): out, DNS
 * to the uplink's resolvers and TCP to ports 80/443 anywhere, with `keep state` so their replies
 * (and only those: xnu pf_test looks states up before any rule) come back; nobody may open a
 * flow to the Mac. After `block drop quick inet6 all`: blocked IPv6 stays blocked. QUIC (UDP
 * 443) is not let out: browsers fall back to TCP.
 */
function darwinPortalWindowRules(policy: KillSwitchPolicy): string[] {
  const window = policy.portalWindow;
  if (!window) return [];
  for (const r of window.resolvers) if (!isIpAddressOrZoned(r) || r.includes('%')) throw new Error(`kill switch: portal-window resolver "${r}" is not an IP address`);
  const resolvers = window.resolvers.filter((r) => !(policy.blockIpv6 && familyOf(r) === 'inet6')).map((r) => ipaddr.parse(r).toString());
  return [
    `# Captive-portal sign-in window (wgctl portal), until ${new Date(window.untilMs).toISOString()}: DNS to the uplink's resolvers, web anywhere`,
    ...resolvers.flatMap((r) => [
      `pass out quick ${familyOf(r)} proto udp from any to ${r} port 53 keep state`,
      `pass out quick ${familyOf(r)} proto tcp from any to ${r} port 53 flags S/SA keep state`,
    ]),
    ...PORTAL_WEB_PORTS.map((port) => `pass out quick proto tcp from any to any port ${port} flags S/SA keep state`),
  ];
}

/**
 * The PF rules of the kill switch, for anchor `anchor`: fail-closed on EVERY interface, not
 * just the uplink. A second Wi-Fi/Ethernet with a scoped default, a USB tether, the interface
 * we roamed away from: sockets bound to them (IP_BOUND_IF, scoped routing) meet the same
 * rules. Every rule is `quick` (first match wins, whatever the main ruleset has after our
 * anchor): loopback and the VM's bridge pass with `no state` (see below); on any other interface only DHCP, the IPv6
 * link set-up when IPv6 is in use (both as narrow as their protocols), and WireGuard UDP to/from the server(s) pass; the last two
 * rules drop everything else, in and out. No rule names the uplink (`policy.uplink` is only
 * shown in status and the header comment), so a roam needs no reload — except the --allow-lan
 * rules (darwinLanRules), which hold on the uplink alone and are reloaded with its subnets.
 */
export function renderDarwinKillSwitch(policy: KillSwitchPolicy, anchor = DARWIN_PF_ANCHOR): string {
  validatePolicy(policy);
  const endpoints = policy.endpoints.filter((e) => !(policy.blockIpv6 && familyOf(e.ip) === 'inet6'));
  const lines = [
    `# wgctl kill switch, anchor "${anchor}" (generated by the mac-agent; do not edit).`,
    `# On every interface but lo0${policy.vnic ? ` and ${policy.vnic}` : ''} nothing may pass but DHCP and WireGuard UDP${policy.allowLan ? ' (and the LAN on the uplink)' : ''}`,
    `# to/from the server(s). (Uplink now: ${policy.uplink}; no rule depends on it.)`,
    '#',
    `# The VM's traffic is covered too: the hypervisor NATs it (PF nat, or vmnet's own) and it`,
    '# leaves through a physical interface after translation, where these rules see the',
    '# translated packets: a leak from the VM is blocked like one from the Mac.',
    '#',
    '# lo0 and the VM\'s interface pass every packet, stateless: a bare pass rule is held as',
    '# `flags S/SA keep state`, which a TCP packet of a session opened before this load (no',
    '# state: the controller\'s gRPC to the VM, SSH to the VM, local services) does not match, so',
    '# it would fall to the block below. `no state` matches every packet of every session, old or',
    '# new, and keeps nothing in the state table for traffic that is never restricted.',
    'pass quick on lo0 all no state',
  ];
  if (policy.vnic) lines.push(`pass quick on ${policy.vnic} all no state`);
  lines.push(...darwinDhcpRules(policy));
  if (policy.allowDhcp6) lines.push(...DARWIN_DHCP6_ND_RULES);
  lines.push(...darwinLanRules(policy));
  lines.push(...darwinExcludeRules(policy));
  if (policy.blockIpv6) lines.push('# No IPv6 through the VM: none anywhere else either', 'block drop quick inet6 all');
  lines.push(...darwinPortalWindowRules(policy));
  if (endpoints.length > 0) lines.push('# WireGuard to and from the server(s) (from: a state may have expired or be on another interface)');
  for (const e of endpoints) {
    const [family, address] = [familyOf(e.ip), ipaddr.parse(e.ip).toString()];
    lines.push(`pass out quick ${family} proto udp from any to ${address} port ${e.port}`, `pass in quick ${family} proto udp from ${address} port ${e.port} to any`);
  }
  lines.push('# Everything else, on every interface, both directions', 'block drop in quick all', 'block drop out quick all');
  return `${lines.join('\n')}\n`;
}

/**
 * Whether the main ruleset (as `pfctl -sr` prints it) makes `anchor` evaluated: a top-level
 * `anchor "NAME"`, or for a child `PARENT/NAME` the parent's wildcard `anchor "PARENT/*"`.
 */
function pfAnchorEvaluated(main: readonly PfRule[], anchor: string): boolean {
  if (pfRulesReferenceAnchor(main, anchor)) return true;
  const slash = anchor.lastIndexOf('/');
  return slash > 0 && pfRulesReferenceAnchor(main, `${anchor.slice(0, slash)}/*`);
}

/**
 * The `pfctl -k` commands that forget the PF states the kill switch forbids, and only those.
 *
 * Why not `pfctl -F states`: it clears every state on the system (DIOCCLRSTATES with no
 * interface) — Internet Sharing's NAT mappings, other VPNs' states. Why not `pfctl -i IF -F
 * states` per interface: xnu keeps states floating unless the rule that made them is if-bound
 * (pf.c `BOUND_IFACE`: the state's interface is `pfi_all`), so a per-interface flush matches
 * almost nothing. `pfctl -k SRC [-k DST]` (DIOCKILLSTATES) matches by address instead, SRC
 * being the side that opened the flow; so for every network of every interface but lo0 and
 * the VM's: the flows opened from it (`-k NET`: the Mac's and its LAN neighbours') and those
 * opened towards it (`-k 0.0.0.0/0|::/0 -k NET`); link-local IPv6 as one prefix (fe80::/10,
 * a scoped address cannot be named); and the flows the VM opened (`-k VM`): behind the
 * hypervisor's NAT a state keeps the VM's own address as its source. Loopback and Mac<->VM
 * flows are not targeted; any of their states that goes anyway costs nothing, since their
 * packets pass the kill switch statelessly.
 */
export function darwinStateKillArgv(interfaces: readonly IfconfigInterface[], policy: Pick<KillSwitchPolicy, 'vnic' | 'vmAddress'>): string[][] {
  const argvs: string[][] = [];
  const seen = new Set<string>();
  const add = (...targets: string[]) => {
    const key = targets.join(' ');
    if (seen.has(key)) return;
    seen.add(key);
    argvs.push(['pfctl', ...targets.flatMap((t) => ['-k', t])]);
  };
  let linkLocal6 = false;
  for (const iface of interfaces) {
    if (iface.name === 'lo0' || iface.name === policy.vnic) continue;
    for (const a of iface.inet) {
      const network = `${ipaddr.IPv4.networkAddressFromCIDR(`${a.address}/${a.prefixLength}`).toString()}/${a.prefixLength}`;
      add(network);
      add('0.0.0.0/0', network);
    }
    for (const a of iface.inet6) {
      if (a.scope || ipaddr.parse(a.address).range() === 'linkLocal') {
        linkLocal6 = true;
        continue;
      }
      const network = `${ipaddr.IPv6.networkAddressFromCIDR(`${a.address}/${a.prefixLength}`).toString()}/${a.prefixLength}`;
      add(network);
      add('::/0', network);
    }
  }
  if (linkLocal6) {
    add('fe80::/10');
    add('::/0', 'fe80::/10');
  }
  if (policy.vmAddress) add(policy.vmAddress);
  return argvs;
}

function loadError(what: string, result: RunResult): Error {
  const parsed = parsePfSyntaxErrors(result.stderr);
  const details = [...parsed.errors.map((e) => `line ${e.line}: ${e.message}`), ...parsed.other];
  return new Error(`pfctl ${what} failed (exit ${result.exitCode})${details.length ? `: ${details.join('; ')}` : ''}`);
}

export class DarwinKillSwitchError extends Error {
  constructor(
    message: string,
    /** What was taken before the failure (journal it: the token must be released later). */
    readonly handle: KillSwitchHandle,
  ) {
    super(message);
    this.name = 'DarwinKillSwitchError';
  }
}

// ---------------------------------------------------------------------------------------
// Load, unload, read

/**
 * Removes what an older wgctl left to reach its top-level anchor: `anchor "com.wgctl"` in the
 * main ruleset (re-loaded without it, filter rules only: `-R`) and that anchor's rules. Found
 * from the live ruleset, so a crash at any point leaves it for the next load or unload.
 * Returns whether there was one.
 */
async function removeLegacyReference(run: Runner, stateDir: string, main: PfRule[]): Promise<boolean> {
  if (!pfRulesReferenceAnchor(main, DARWIN_LEGACY_PF_ANCHOR)) return false;
  const kept = main.filter((r) => r.depth === 0 && !(r.action === 'anchor' && r.anchor === DARWIN_LEGACY_PF_ANCHOR)).map((r) => r.text);
  const reload = await run.run(['pfctl', '-R', '-f', '-'], { input: `${kept.join('\n')}\n`, allowFailure: true });
  if (reload.exitCode !== 0 && !reload.dryRun) throw loadError(`-R -f - (removing the old anchor reference "${DARWIN_LEGACY_PF_ANCHOR}")`, reload);
  await run.run(['pfctl', '-a', DARWIN_LEGACY_PF_ANCHOR, '-F', 'all'], { allowFailure: true });
  await run.run(['rm', '-f', pfRulesFile(stateDir, DARWIN_LEGACY_PF_ANCHOR)], { allowFailure: true });
  return true;
}

export async function loadDarwinKillSwitch(
  run: Runner,
  anchor: string,
  stateDir: string,
  policy: KillSwitchPolicy,
  previous?: KillSwitchHandle,
): Promise<KillSwitchHandle> {
  const rules = renderDarwinKillSwitch(policy, anchor);
  const file = pfRulesFile(stateDir, anchor);
  await run.run(['mkdir', '-p', stateDir]);
  await run.run(['tee', file], { input: rules });
  // Validate first (-n): a rejected file changes nothing. Loading with -a replaces only the
  // anchor's rules, atomically, and never touches the main ruleset.
  const check = await run.run(['pfctl', '-n', '-a', anchor, '-f', file], { allowFailure: true });
  if (check.exitCode !== 0) throw loadError(`-n -a ${anchor} -f ${file}`, check);
  const load = await run.run(['pfctl', '-a', anchor, '-f', file], { allowFailure: true });
  if (load.exitCode !== 0) throw loadError(`-a ${anchor} -f ${file}`, load);

  // Until an older wgctl's reference is found gone, the journal keeps saying it is there.
  const handle: KillSwitchHandle = { pfAnchor: anchor, ...(previous?.addedAnchorReference ? { addedAnchorReference: true } : {}) };
  try {
    // Independent reads, side by side: the main ruleset (an older wgctl's reference), the
    // interfaces (whose states to forget), the references held (is our token still one?).
    const [mainRead, ifconfigRead, referencesRead] = await readTogether([
      run.run(['pfctl', '-sr'], READ),
      run.run(['ifconfig'], READ),
      previous?.pfToken ? run.run(['pfctl', '-s', 'References'], READ) : undefined,
    ]);
    await removeLegacyReference(run, stateDir, parsePfRules(mainRead.stdout));
    delete handle.addedAnchorReference;

    // Our own PF reference: -E starts PF if needed and hands back a token; an earlier token
    // still held is reused (each -E adds a reference that only its -X removes).
    if (previous?.pfToken && referencesRead && parsePfReferences(referencesRead.stdout).some((r) => r.token === previous.pfToken)) {
      handle.pfToken = previous.pfToken;
    }
    if (!handle.pfToken) {
      const enable = await run.run(['pfctl', '-E']);
      if (!enable.dryRun) handle.pfToken = parsePfEnableOutput(enable.stderr).token;
    }

    // States made before these rules keep passing their packets on any interface (they are
    // floating): forget exactly the flows the kill switch forbids (see darwinStateKillArgv).
    for (const argv of darwinStateKillArgv(parseIfconfig(ifconfigRead.stdout), policy)) {
      const kill = await run.run(argv, { allowFailure: true });
      if (kill.exitCode !== 0 && !kill.dryRun) throw loadError(argv.slice(1).join(' '), kill);
    }
    return handle;
  } catch (e) {
    throw new DarwinKillSwitchError(`loading the kill switch failed after its rules were loaded: ${e instanceof Error ? e.message : String(e)}`, handle);
  }
}

export async function unloadDarwinKillSwitch(run: Runner, anchor: string, stateDir: string, handle: KillSwitchHandle): Promise<void> {
  const failures: string[] = [];
  const flush = await run.run(['pfctl', '-a', anchor, '-F', 'all'], { allowFailure: true });
  if (flush.exitCode !== 0) failures.push(loadError(`-a ${anchor} -F all`, flush).message);

  if (handle.pfToken) {
    const release = await run.run(['pfctl', '-X', handle.pfToken], { allowFailure: true });
    const outcome = classifyPfRelease(release.stdout, release.stderr);
    // "pf not enabled" (after a reboot) and "token invalid" mean it is already released.
    if (outcome.outcome === 'failed' && !release.dryRun) failures.push(`pfctl -X ${handle.pfToken}: ${outcome.reason}`);
  }

  // An older wgctl's reference: removed here too (a Down right after upgrading).
  try {
    await removeLegacyReference(run, stateDir, parsePfRules((await run.run(['pfctl', '-sr'], READ)).stdout));
  } catch (e) {
    failures.push(e instanceof Error ? e.message : String(e));
  }
  await run.run(['rm', '-f', pfRulesFile(stateDir, anchor)], { allowFailure: true });
  if (failures.length > 0) throw new Error(`unloading the kill switch: ${failures.join('; ')}`);
}

export async function readDarwinKillSwitch(run: Runner, anchor: string, policy?: KillSwitchPolicy, handle?: KillSwitchHandle): Promise<KillSwitchStatus> {
  // Independent reads: side by side.
  const [infoRead, mainRead, anchorResult, referencesRead] = await readTogether([
    run.run(['pfctl', '-s', 'info'], READ),
    run.run(['pfctl', '-sr'], READ),
    run.run(['pfctl', '-a', anchor, '-sr'], { readOnly: true, allowFailure: true }),
    handle?.pfToken ? run.run(['pfctl', '-s', 'References'], READ) : undefined,
  ]);
  const info = parsePfInfo(infoRead.stdout);
  const main = parsePfRules(mainRead.stdout);
  let live: PfRule[] = [];
  if (anchorResult.exitCode === 0) live = parsePfRules(anchorResult.stdout);
  // An anchor that was never created cannot be listed; that is "nothing loaded".
  else if (!/Invalid argument|does not exist/i.test(anchorResult.stderr)) throw new CommandError(anchorResult);

  const status: KillSwitchStatus = {
    loaded: live.length > 0,
    enabled: info.enabled,
    referenced: pfAnchorEvaluated(main, anchor),
    tokenHeld: false,
    rules: live.map((r) => r.text),
    problems: [],
  };
  // The rules name no uplink (they hold on every interface): the policy's uplink is shown.
  if (policy && live.length > 0) status.interface = policy.uplink;
  if (handle?.pfToken && referencesRead) {
    status.tokenHeld = parsePfReferences(referencesRead.stdout).some((r) => r.token === handle.pfToken);
  }

  if (!status.loaded) {
    if (policy) status.problems.push(`PF anchor ${anchor} has no rules loaded`);
    return status;
  }
  if (!status.enabled) status.problems.push('PF is disabled: the kill switch rules are not in force (was the Mac restarted?)');
  if (!status.referenced) {
    const parent = anchor.includes('/') ? `${anchor.slice(0, anchor.lastIndexOf('/'))}/*` : anchor;
    status.problems.push(`the main PF ruleset has no anchor "${parent}" (the stock /etc/pf.conf has it: was it edited or replaced?): the kill switch's rules are not evaluated`);
  }
  if (handle?.pfToken && !status.tokenHeld) {
    status.problems.push('our PF reference (pfctl -E token) is no longer held: another program releasing PF would turn it off');
  }
  if (policy) {
    const wanted = normalizePfRuleset(renderDarwinKillSwitch(policy, anchor));
    if (JSON.stringify(wanted) !== JSON.stringify(status.rules)) {
      const missing = wanted.filter((w) => !status.rules.includes(w));
      const extra = status.rules.filter((l) => !wanted.includes(l));
      const detail = [...missing.map((m) => `missing: ${m}`), ...extra.map((x) => `unexpected: ${x}`)];
      status.problems.push(`anchor ${anchor} differs from the policy${detail.length ? `: ${detail.join('; ')}` : ' (order)'}`);
    }
  }
  return status;
}
