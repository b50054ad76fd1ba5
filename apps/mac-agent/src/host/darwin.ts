/**
 * The macOS host driver: netstat/route/ifconfig for routes, a PF anchor for the kill switch,
 * networksetup for DNS, `route -n monitor` for roaming.
 *
 * Like every driver it only builds argv and hands them to the runner it is given (so each
 * step records its commands); parsing is in @wgctl/parsers. Facts it relies on (see
 * shared/notes/macos.md): `route` exits 0 on kernel errors, so its text decides; PF is taken
 * with `pfctl -E` (a reference token, a u64 kept as a string) and released with `-X`, never
 * `-e`/`-d`, which would break other PF users (the Application Firewall, Internet Sharing,
 * other VPNs); the main ruleset is never reloaded or edited: the rules live in a child of the
 * stock `anchor "com.apple/*"`, which every macOS pf.conf evaluates (see DARWIN_PF_ANCHOR).
 */
import ipaddr from 'ipaddr.js';
import { isIpAddress, isIpAddressOrZoned } from '@wgctl/config';
import {
  DARWIN_INTERFACE_NAME,
  NetworksetupUnknownServiceError,
  ParseError,
  classifyNetstatGateway,
  classifyPfRelease,
  classifyRouteChange,
  classifyRouteMonitorMessage,
  findDefaultGateway,
  findIfconfigInterfaceForAddress,
  netifMatches,
  networksetupError,
  normalizePfRuleset,
  parseDnsServers,
  parseIfconfig,
  parseNetstatRoutes,
  parseNetworkServices,
  parsePfEnableOutput,
  parsePfInfo,
  parsePfReferences,
  parsePfRules,
  parsePfSyntaxErrors,
  parseRouteGet,
  parseRouteMonitor,
  parseSearchDomains,
  pfRulesReferenceAnchor,
  routeMonitorDestination,
  type IfconfigInterface,
  type NetstatGateway,
  type NetstatRoute,
  type PfRule,
  type RouteGetResult,
  type RouteMonitorMessage,
} from '@wgctl/parsers';
import { CommandError, type RunResult, type Runner, mapTogether, readTogether } from '@wgctl/runner';
import type {
  DnsSnapshot,
  HostNetworkDriver,
  KillSwitchHandle,
  KillSwitchPolicy,
  KillSwitchStatus,
  RouteChange,
  RouteReadback,
  RouteSpec,
  Uplink,
  Vnic,
} from './driver';

export interface DarwinDriverOptions {
  /** Where the PF rules file is written (the agent's state dir). */
  stateDir?: string;
  /** The PF anchor holding our rules. Default DARWIN_PF_ANCHOR. */
  anchor?: string;
}

const DARWIN_DEFAULT_STATE_DIR = '/Library/Application Support/wgctl/mac-agent';
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
const PF_ANCHOR_PATH = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;

const READ = { readOnly: true } as const;
/** networksetup reads in flight at once when snapshotting DNS (two per service). */
const NETWORKSETUP_READS_AT_ONCE = 8;

type Family = 'inet' | 'inet6';

function familyOf(address: string): Family {
  return address.includes(':') ? 'inet6' : 'inet';
}

function canonicalCidr(cidr: string): string {
  const [address, length] = cidr.split('/');
  const family = familyOf(address);
  return `${ipaddr.parse(address).toString()}/${length ?? (family === 'inet' ? 32 : 128)}`;
}

function isDefault(cidr: string): boolean {
  return cidr === 'default' || /^(0\.0\.0\.0|::)\/0$/.test(cidr);
}

/** `fe80::1%en0` and `FE80::1%en0` are the same next hop; the scope counts only when given. */
function gatewayMatches(gateway: NetstatGateway, wanted: string): boolean {
  if (gateway.kind !== 'ip') return false;
  const [address, scope] = wanted.split('%');
  try {
    if (ipaddr.parse(address).toString() !== gateway.address) return false;
  } catch {
    return false;
  }
  return scope === undefined || scope === gateway.scope;
}

/**
 * `route -q -n add|delete -inet[6] [-host] DEST GATEWAY`. Host routes get `-host`: without it
 * route(8) decides host-or-net from the classful host part (192.0.2.0 would become a net).
 */
export function darwinRouteArgv(verb: 'add' | 'delete', route: RouteSpec): string[] {
  const [address, length] = route.destination.split('/');
  const family = familyOf(address);
  const host = length === undefined || Number(length) === (family === 'inet' ? 32 : 128);
  const destination = host ? ['-host', address] : [route.destination];
  const via = route.gateway ? [route.gateway] : route.interface ? ['-interface', route.interface] : [];
  return ['route', '-q', '-n', verb, `-${family}`, ...destination, ...via];
}

function describeRoute(route: RouteSpec): string {
  return `${route.destination} via ${route.gateway}${route.interface ? ` dev ${route.interface}` : ''}`;
}

function checkExit(result: RunResult): void {
  if (result.exitCode !== 0 && !result.dryRun) throw new CommandError(result);
}

// ---------------------------------------------------------------------------------------
// Kill switch rules

function validatePolicy(policy: KillSwitchPolicy): void {
  // Everything below is pasted into pf.conf syntax: refuse anything that is not a plain value.
  if (!DARWIN_INTERFACE_NAME.test(policy.uplink)) throw new Error(`kill switch: bad uplink interface name "${policy.uplink}"`);
  if (policy.vnic !== undefined && (!DARWIN_INTERFACE_NAME.test(policy.vnic) || policy.vnic === 'lo0')) {
    throw new Error(`kill switch: bad VM interface name "${policy.vnic}"`);
  }
  for (const e of policy.endpoints) {
    if (!isIpAddressOrZoned(e.ip)) throw new Error(`kill switch: endpoint "${e.ip}" is not an IP address`);
    if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) throw new Error(`kill switch: bad endpoint port ${e.port}`);
  }
}

/**
 * The PF rules of the kill switch, for anchor `anchor`: fail-closed on EVERY interface, not
 * just the uplink. A second Wi-Fi/Ethernet with a scoped default, a USB tether, the interface
 * we roamed away from: sockets bound to them (IP_BOUND_IF, scoped routing) meet the same
 * rules. Every rule is `quick` (first match wins, whatever the main ruleset has after our
 * anchor): loopback and the VM's bridge pass with `no state` (see below); on any other interface only DHCP, the IPv6
 * link set-up when IPv6 is in use, and WireGuard UDP to/from the server(s) pass; the last two
 * rules drop everything else, in and out. No rule names the uplink (`policy.uplink` is only
 * shown in status and the header comment), so a roam needs no reload.
 */
export function renderDarwinKillSwitch(policy: KillSwitchPolicy, anchor = DARWIN_PF_ANCHOR): string {
  validatePolicy(policy);
  const endpoints = policy.endpoints.filter((e) => !(policy.blockIpv6 && familyOf(e.ip) === 'inet6'));
  const lines = [
    `# wgctl kill switch, anchor "${anchor}" (generated by the mac-agent; do not edit).`,
    `# On every interface but lo0${policy.vnic ? ` and ${policy.vnic}` : ''} nothing may pass but DHCP and WireGuard UDP`,
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
  lines.push(
    '# DHCP (client 68 <-> server 67)',
    'pass out quick inet proto udp from any port 68 to any port 67',
    'pass in quick inet proto udp from any port 67 to any port 68',
  );
  if (policy.allowDhcp6) {
    lines.push(
      '# DHCPv6 (client 546 <-> server 547) and the neighbour discovery IPv6 needs to work at all',
      'pass out quick inet6 proto udp from any port 546 to any port 547',
      'pass in quick inet6 proto udp from any port 547 to any port 546',
      'pass out quick inet6 proto ipv6-icmp all icmp6-type { routersol, neighbrsol, neighbradv }',
      'pass in quick inet6 proto ipv6-icmp all icmp6-type { routeradv, neighbrsol, neighbradv }',
    );
  }
  if (policy.blockIpv6) lines.push('# No IPv6 through the VM: none anywhere else either', 'block drop quick inet6 all');
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

export class DarwinDriver implements HostNetworkDriver {
  readonly name = 'darwin' as const;
  readonly stateDir: string;
  readonly anchor: string;
  /** Lines of a `route -n monitor` message fed one at a time (see classifyMonitorEvent). */
  private monitorLines: string[] = [];

  constructor(options: DarwinDriverOptions = {}) {
    this.stateDir = options.stateDir ?? DARWIN_DEFAULT_STATE_DIR;
    this.anchor = options.anchor ?? DARWIN_PF_ANCHOR;
    if (!PF_ANCHOR_PATH.test(this.anchor)) throw new Error(`bad PF anchor name "${this.anchor}"`);
  }

  /** The file the anchor's rules are loaded from. */
  get rulesFile(): string {
    return this.rulesFileOf(this.anchor);
  }

  private rulesFileOf(anchor: string): string {
    return `${this.stateDir.replace(/\/+$/, '')}/pf-${anchor.replace(/\//g, '_')}.conf`;
  }

  private async routes(run: Runner): Promise<NetstatRoute[]> {
    return parseNetstatRoutes((await run.run(['netstat', '-rn'], READ)).stdout);
  }

  // ----- discovery -----

  async discoverUplink(run: Runner): Promise<Uplink | null> {
    const routes = await this.routes(run);
    const v4 = findDefaultGateway(routes, 'inet');
    if (!v4) return null;
    const v6 = findDefaultGateway(routes, 'inet6');
    const uplink: Uplink = { interface: v4.interface, gateway: v4.gateway };
    if (v6 && v6.interface === v4.interface) uplink.gateway6 = v6.gateway;
    // The address is a nicety: an interface that vanished meanwhile must not fail discovery.
    const ifconfig = await run.run(['ifconfig', v4.interface], { readOnly: true, allowFailure: true });
    if (ifconfig.exitCode === 0) {
      const address = parseIfconfig(ifconfig.stdout).find((i) => i.name === v4.interface)?.inet[0]?.address;
      if (address) uplink.address = address;
    }
    return uplink;
  }

  async discoverVnic(run: Runner, vmAddress: string): Promise<Vnic> {
    const interfaces = parseIfconfig((await run.run(['ifconfig'], READ)).stdout);
    const own = interfaces.find((i) => i.inet.some((a) => a.address === vmAddress));
    if (own) throw new Error(`${vmAddress} is an address of this Mac (on ${own.name}), not the VM's`);
    const found = findIfconfigInterfaceForAddress(interfaces, vmAddress);
    if (!found) {
      throw new Error(
        `no interface of this Mac is on the same network as the VM address ${vmAddress}: is the VM running, on a shared or host-only network (bridge100/bridge101, vnic0)?`,
      );
    }
    const vnic: Vnic = { interface: found.interface.name, address: found.inet.address };
    const global6 = found.interface.inet6.find(
      (a) => !a.scope && !a.address.startsWith('fe80:') && !a.flags.includes('deprecated') && !a.flags.includes('temporary'),
    );
    if (global6) vnic.address6 = global6.address;
    return vnic;
  }

  // ----- routes -----

  async readRoutes(run: Runner, wanted: RouteSpec[]): Promise<RouteReadback[]> {
    if (wanted.length === 0) return [];
    const table = await this.routes(run);
    const fromTable = wanted.map((spec) => {
      const destination = canonicalCidr(spec.destination);
      const same = table.filter((r) => r.destination === destination);
      // Scoped duplicates (flag I) are not what unbound sockets use: they do not count.
      const candidates = same.filter((r) => !r.scoped && gatewayMatches(r.gateway, spec.gateway));
      const netif = (r: NetstatRoute) => (spec.interface ? netifMatches(r.netif, spec.interface, r.family) : 'exact');
      const match = candidates.find((r) => netif(r) === 'exact');
      // netstat cuts long Netif names (bridge100 prints as `bridge1` up to macOS 11), so such a
      // row may be another interface's: route get, which prints the full name, decides.
      const unsure = match ? undefined : candidates.find((r) => netif(r) === 'ambiguous');
      const shown = match ?? unsure ?? same[0];
      const readback: RouteReadback = { ...spec, present: match !== undefined, evidence: shown ? shown.text.trim().replace(/\s+/g, ' ') : '' };
      return { spec, destination, needsRouteGet: unsure !== undefined, readback };
    });
    const toConfirm = fromTable.filter((entry) => entry.needsRouteGet);
    const confirmations = await mapTogether(toConfirm, ({ spec, destination }) => this.confirmRouteWithRouteGet(run, spec, destination));
    return fromTable.map((entry) => {
      const index = toConfirm.indexOf(entry);
      if (index < 0) return entry.readback;
      const { present, evidence } = confirmations[index];
      return { ...entry.readback, present, evidence: `${entry.readback.evidence} (${evidence})` };
    });
  }

  /**
   * Asks `route -n get` whether `spec` is in the table: same destination and mask, gateway,
   * full interface name, not scoped. With a mask (nets) the kernel answers only that exact
   * route; a host lookup is longest-match, hence the destination check (0.0.0.0 prints as
   * `default`; the parsed destination includes the mask). A failed get exits 0, prints nothing.
   */
  private async confirmRouteWithRouteGet(run: Runner, spec: RouteSpec, destination: string): Promise<{ present: boolean; evidence: string }> {
    const [address, length] = destination.split('/');
    const family = familyOf(address);
    const host = Number(length) === (family === 'inet' ? 32 : 128);
    const argv = ['route', '-n', 'get', `-${family}`, ...(host ? ['-host', address] : [destination])];
    const result = await run.run(argv, { readOnly: true, allowFailure: true });
    const asked = argv.join(' ');
    let got: RouteGetResult | null;
    try {
      got = parseRouteGet(result.stdout);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      return { present: false, evidence: `not confirmed: ${asked} answered unreadably: ${e.message}` };
    }
    if (!got) {
      const why = result.stderr.trim().split('\n')[0].replace(/^route: (?:writing to routing socket: )?/, '');
      return { present: false, evidence: `not confirmed: ${asked} found no such route${why ? ` (${why})` : ''}` };
    }
    const scoped = got.flags.includes('IFSCOPE');
    const present =
      got.destination === destination &&
      got.interface === spec.interface &&
      got.gateway !== undefined &&
      gatewayMatches(classifyNetstatGateway(got.gateway), spec.gateway) &&
      !scoped;
    const answer = `${got.destination ?? got.destinationText} via ${got.gateway ?? 'no gateway'} dev ${got.interface ?? '?'}${scoped ? ' (scoped)' : ''}`;
    return { present, evidence: `${present ? 'confirmed' : 'not confirmed'}: ${asked} shows ${answer}` };
  }

  async addRoute(run: Runner, route: RouteSpec): Promise<void> {
    const result = await run.run(darwinRouteArgv('add', route), { allowFailure: true });
    checkExit(result);
    const outcome = classifyRouteChange(result.stdout, result.stderr);
    if (outcome.outcome === 'ok') return;
    if (outcome.outcome === 'exists') {
      // Ours from an earlier run is fine; someone else's route in the way is not.
      const [readback] = await this.readRoutes(run, [route]);
      if (readback.present) return;
      throw new Error(`cannot add ${describeRoute(route)}: a different route is in the way (${readback.evidence || 'not shown by netstat'})`);
    }
    const hint = outcome.outcome === 'unreachable' ? ` (${route.gateway} is not on a directly connected network)` : '';
    throw new Error(`route add ${describeRoute(route)} failed: ${outcome.message}${hint}`);
  }

  async deleteRoute(run: Runner, route: RouteSpec): Promise<void> {
    // Never the user's default route, whatever the caller asks.
    if (isDefault(route.destination)) throw new Error(`refusing to delete a default route (${route.destination})`);
    const result = await run.run(darwinRouteArgv('delete', route), { allowFailure: true });
    checkExit(result);
    const outcome = classifyRouteChange(result.stdout, result.stderr);
    // "not in table": already gone (a vanished vnic takes its routes with it).
    if (outcome.outcome === 'ok' || outcome.outcome === 'not-in-table') return;
    throw new Error(`route delete ${describeRoute(route)} failed: ${outcome.message}`);
  }

  // ----- kill switch -----

  renderKillSwitch(policy: KillSwitchPolicy): string {
    return renderDarwinKillSwitch(policy, this.anchor);
  }

  /**
   * Removes what an older wgctl left to reach its top-level anchor: `anchor "com.wgctl"` in the
   * main ruleset (re-loaded without it, filter rules only: `-R`) and that anchor's rules. Found
   * from the live ruleset, so a crash at any point leaves it for the next load or unload.
   * Returns whether there was one.
   */
  private async removeLegacyReference(run: Runner, main: PfRule[]): Promise<boolean> {
    if (!pfRulesReferenceAnchor(main, DARWIN_LEGACY_PF_ANCHOR)) return false;
    const kept = main.filter((r) => r.depth === 0 && !(r.action === 'anchor' && r.anchor === DARWIN_LEGACY_PF_ANCHOR)).map((r) => r.text);
    const reload = await run.run(['pfctl', '-R', '-f', '-'], { input: `${kept.join('\n')}\n`, allowFailure: true });
    if (reload.exitCode !== 0 && !reload.dryRun) throw loadError(`-R -f - (removing the old anchor reference "${DARWIN_LEGACY_PF_ANCHOR}")`, reload);
    await run.run(['pfctl', '-a', DARWIN_LEGACY_PF_ANCHOR, '-F', 'all'], { allowFailure: true });
    await run.run(['rm', '-f', this.rulesFileOf(DARWIN_LEGACY_PF_ANCHOR)], { allowFailure: true });
    return true;
  }

  async loadKillSwitch(run: Runner, policy: KillSwitchPolicy, previous?: KillSwitchHandle): Promise<KillSwitchHandle> {
    const rules = this.renderKillSwitch(policy);
    const file = this.rulesFile;
    await run.run(['mkdir', '-p', this.stateDir]);
    await run.run(['tee', file], { input: rules });
    // Validate first (-n): a rejected file changes nothing. Loading with -a replaces only the
    // anchor's rules, atomically, and never touches the main ruleset.
    const check = await run.run(['pfctl', '-n', '-a', this.anchor, '-f', file], { allowFailure: true });
    if (check.exitCode !== 0) throw loadError(`-n -a ${this.anchor} -f ${file}`, check);
    const load = await run.run(['pfctl', '-a', this.anchor, '-f', file], { allowFailure: true });
    if (load.exitCode !== 0) throw loadError(`-a ${this.anchor} -f ${file}`, load);

    // Until an older wgctl's reference is found gone, the journal keeps saying it is there.
    const handle: KillSwitchHandle = { pfAnchor: this.anchor, ...(previous?.addedAnchorReference ? { addedAnchorReference: true } : {}) };
    try {
      // Independent reads, side by side: the main ruleset (an older wgctl's reference), the
      // interfaces (whose states to forget), the references held (is our token still one?).
      const [mainRead, ifconfigRead, referencesRead] = await readTogether([
        run.run(['pfctl', '-sr'], READ),
        run.run(['ifconfig'], READ),
        previous?.pfToken ? run.run(['pfctl', '-s', 'References'], READ) : undefined,
      ]);
      await this.removeLegacyReference(run, parsePfRules(mainRead.stdout));
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

  async unloadKillSwitch(run: Runner, handle: KillSwitchHandle): Promise<void> {
    const failures: string[] = [];
    const flush = await run.run(['pfctl', '-a', this.anchor, '-F', 'all'], { allowFailure: true });
    if (flush.exitCode !== 0) failures.push(loadError(`-a ${this.anchor} -F all`, flush).message);

    if (handle.pfToken) {
      const release = await run.run(['pfctl', '-X', handle.pfToken], { allowFailure: true });
      const outcome = classifyPfRelease(release.stdout, release.stderr);
      // "pf not enabled" (after a reboot) and "token invalid" mean it is already released.
      if (outcome.outcome === 'failed' && !release.dryRun) failures.push(`pfctl -X ${handle.pfToken}: ${outcome.reason}`);
    }

    // An older wgctl's reference: removed here too (a Down right after upgrading).
    try {
      await this.removeLegacyReference(run, parsePfRules((await run.run(['pfctl', '-sr'], READ)).stdout));
    } catch (e) {
      failures.push(e instanceof Error ? e.message : String(e));
    }
    await run.run(['rm', '-f', this.rulesFile], { allowFailure: true });
    if (failures.length > 0) throw new Error(`unloading the kill switch: ${failures.join('; ')}`);
  }

  async readKillSwitch(run: Runner, policy?: KillSwitchPolicy, handle?: KillSwitchHandle): Promise<KillSwitchStatus> {
    // Independent reads: side by side.
    const [infoRead, mainRead, anchorResult, referencesRead] = await readTogether([
      run.run(['pfctl', '-s', 'info'], READ),
      run.run(['pfctl', '-sr'], READ),
      run.run(['pfctl', '-a', this.anchor, '-sr'], { readOnly: true, allowFailure: true }),
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
      referenced: pfAnchorEvaluated(main, this.anchor),
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
      if (policy) status.problems.push(`PF anchor ${this.anchor} has no rules loaded`);
      return status;
    }
    if (!status.enabled) status.problems.push('PF is disabled: the kill switch rules are not in force (was the Mac restarted?)');
    if (!status.referenced) {
      const parent = this.anchor.includes('/') ? `${this.anchor.slice(0, this.anchor.lastIndexOf('/'))}/*` : this.anchor;
      status.problems.push(`the main PF ruleset has no anchor "${parent}" (the stock /etc/pf.conf has it: was it edited or replaced?): the kill switch's rules are not evaluated`);
    }
    if (handle?.pfToken && !status.tokenHeld) {
      status.problems.push('our PF reference (pfctl -E token) is no longer held: another program releasing PF would turn it off');
    }
    if (policy) {
      const wanted = normalizePfRuleset(this.renderKillSwitch(policy));
      if (JSON.stringify(wanted) !== JSON.stringify(status.rules)) {
        const missing = wanted.filter((w) => !status.rules.includes(w));
        const extra = status.rules.filter((l) => !wanted.includes(l));
        const detail = [...missing.map((m) => `missing: ${m}`), ...extra.map((x) => `unexpected: ${x}`)];
        status.problems.push(`anchor ${this.anchor} differs from the policy${detail.length ? `: ${detail.join('; ')}` : ' (order)'}`);
      }
    }
    return status;
  }

  // ----- DNS -----

  /** Runs a networksetup read; its exit status is not trusted, the text is. */
  private async networksetupRead(run: Runner, argv: string[]): Promise<string> {
    const result = await run.run(argv, { readOnly: true, allowFailure: true });
    if (result.exitCode !== 0 && !networksetupError(result.stdout, result.stderr)) throw new CommandError(result);
    return result.stdout;
  }

  async readDns(run: Runner): Promise<DnsSnapshot> {
    // Every service, disabled ones included: one enabled later must not bypass our DNS.
    const services = parseNetworkServices(await this.networksetupRead(run, ['networksetup', '-listallnetworkservices']));
    // networksetup takes tens of ms a call and a Mac has several services: read them side by
    // side (a few at a time, to spare configd), started in the listed order.
    const read = await mapTogether(
      services,
      async ({ name }) => {
        try {
          const [servers, searchDomains] = await readTogether([
            this.networksetupRead(run, ['networksetup', '-getdnsservers', name]),
            this.networksetupRead(run, ['networksetup', '-getsearchdomains', name]),
          ]);
          return { name, servers: parseDnsServers(servers), searchDomains: parseSearchDomains(searchDomains) };
        } catch (e) {
          // Renamed or removed since it was listed: nothing of it to remember.
          if (e instanceof NetworksetupUnknownServiceError) return null;
          throw e;
        }
      },
      { limit: NETWORKSETUP_READS_AT_ONCE / 2 },
    );
    return { services: read.filter((s) => s !== null) };
  }

  private async networksetupSet(run: Runner, argv: string[]): Promise<'ok' | 'unknown-service'> {
    const result = await run.run(argv, { allowFailure: true });
    const error = networksetupError(result.stdout, result.stderr);
    if (error && / is not a recognized network service\.$/.test(error)) return 'unknown-service';
    if (error) throw new Error(`${argv.join(' ')}: ${error}`);
    checkExit(result);
    return 'ok';
  }

  async setDns(run: Runner, servers: string[], current: DnsSnapshot): Promise<void> {
    if (servers.length === 0) throw new Error('setDns: no DNS servers given');
    for (const address of servers) {
      if (!isIpAddress(address.split('%')[0])) throw new Error(`setDns: "${address}" is not an IP address`);
    }
    for (const service of current.services) {
      // A service gone since the snapshot has nothing to set.
      await this.networksetupSet(run, ['networksetup', '-setdnsservers', service.name, ...servers]);
    }
  }

  async restoreDns(run: Runner, snapshot: DnsSnapshot): Promise<void> {
    for (const service of snapshot.services) {
      // `Empty` = none set: back to whatever DHCP provides.
      const servers = service.servers.length > 0 ? service.servers : ['Empty'];
      if ((await this.networksetupSet(run, ['networksetup', '-setdnsservers', service.name, ...servers])) === 'unknown-service') continue;
      if (service.searchDomains) {
        const domains = service.searchDomains.length > 0 ? service.searchDomains : ['Empty'];
        await this.networksetupSet(run, ['networksetup', '-setsearchdomains', service.name, ...domains]);
      }
    }
  }

  // ----- roaming -----

  monitorArgv(): string[] {
    return ['route', '-n', 'monitor'];
  }

  /**
   * Classifies `route -n monitor` output: a whole message (several lines) at once, or — as the
   * service streams it — one line at a time, in which case the lines are gathered here and the
   * line that completes a message (its sockaddr values) carries the verdict; the others are
   * `other`. RTM_IFINFO is reported on its own header line (it usually has no more lines).
   */
  classifyMonitorEvent(block: string): RouteChange {
    if (block.includes('\n')) return this.classifyMessages(block);
    const line = block.replace(/\r$/, '');
    if (line.trim() === '') return { kind: 'other', line };
    if (/^got message of size /.test(line.trim())) {
      this.monitorLines = [line];
      return { kind: 'other', line };
    }
    if (/RTM_[A-Z0-9_]+: /.test(line)) {
      this.monitorLines = this.monitorLines.length === 1 && /^got message/.test(this.monitorLines[0].trim()) ? [...this.monitorLines, line] : [line];
      if (/RTM_IFINFO: /.test(line)) {
        const text = this.monitorLines.join('\n');
        this.monitorLines = []; // its sockaddr lines, if any, add nothing
        return this.classifyMessages(text);
      }
      return { kind: 'other', line };
    }
    if (this.monitorLines.length === 0) return { kind: 'other', line };
    this.monitorLines.push(line);
    if (line.startsWith(' ') && this.monitorLines.some((l) => /^sockaddrs: /.test(l.trim()))) {
      const text = this.monitorLines.join('\n');
      this.monitorLines = [];
      return this.classifyMessages(text);
    }
    if (this.monitorLines.length > 16) this.monitorLines = []; // not a message we understand
    return { kind: 'other', line };
  }

  private classifyMessages(text: string): RouteChange {
    let messages: RouteMonitorMessage[];
    try {
      messages = parseRouteMonitor(text);
    } catch {
      // Unreadable: let the service re-read the routing table rather than miss a change.
      return { kind: 'link-changed', line: text.trim() };
    }
    const rank = { 'default-changed': 2, 'link-changed': 1, other: 0 } as const;
    let best: RouteChange = { kind: 'other', line: text.trim() };
    for (const message of messages) {
      const verdict = classifyRouteMonitorMessage(message);
      const summary = [message.type, ...message.sockaddrs.map((name) => message.addresses[name] ?? '')].join(' ').trim();
      const change: RouteChange = { kind: verdict.kind, line: `${summary} (${verdict.reason})` };
      const destination = routeMonitorDestination(message);
      if (destination !== undefined) change.destination = destination;
      if (message.type === 'RTM_DELETE' || message.type === 'RTM_OLDDEL') change.deleted = true;
      if (rank[change.kind] > rank[best.kind] || (best.destination === undefined && change.destination !== undefined && rank[change.kind] === rank[best.kind])) {
        best = change;
      }
    }
    return best;
  }
}
