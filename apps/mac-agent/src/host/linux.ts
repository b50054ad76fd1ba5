/**
 * The Linux host driver: iproute2 (`ip -j`), nftables (`table inet wgctl`, its rules in ./linux-kill-switch.ts), and DNS through
 * /etc/resolv.conf (default) or systemd-resolved (`resolvectl`).
 *
 * Like every driver it only builds argv and hands them to the runner it is given; parsing is
 * in @wgctl/parsers. Even resolv.conf is read and written through commands (`cat`, `tee`,
 * `mv -T`) so that every change shows up, with its argv, in the step that made it.
 */
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
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
  type IpLink,
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
  RoutingTable,
  ServerEndpoint,
  Uplink,
  UplinkOptions,
  Vnic,
} from './driver';
import type { DnsWatch } from './dns-watch';
import type { KillSwitchWatch } from './kill-switch-watch';
import { dropTableBatch, familyOfAddress, killSwitchChains, renderNftKillSwitch } from './linux-kill-switch';
import { LinuxKillSwitchWatch } from './linux-watch';
import { lanSubnetsOf } from './lan';

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

/** `wanted` as `table` shows it: present when a route to the destination goes via that gateway (and interface). */
function routeReadback(table: IpRoute[], wanted: RouteSpec[]): RouteReadback[] {
  return wanted.map((spec) => {
    const destination = canonicalCidr(spec.destination);
    const sameDestination = table.filter((r) => r.destination === destination);
    const match = sameDestination.find((r) => sameAddress(r.gateway, spec.gateway) && (spec.interface === undefined || r.dev === spec.interface));
    const shown = match ?? sameDestination[0];
    return { ...spec, present: match !== undefined, evidence: shown ? formatIpRouteLine(shown) : '' };
  });
}

/**
 * The route of `table` (one family's table main) the kernel takes to `address`: the longest
 * matching prefix, the lowest metric among equals; none when that is not a live unicast route
 * (unreachable, blackhole, prohibit; a dead one). Like the kernel's lookup by default, a
 * link-down route still counts (net.ipv4.conf.*.ignore_routes_with_linkdown is 0).
 */
export function routeTowards(table: IpRoute[], address: string): IpRoute | undefined {
  const target = ipaddr.parse(address);
  const prefixLength = (r: IpRoute) => Number(r.destination.split('/')[1]);
  const covering = table.filter((r) => {
    const [network, length] = ipaddr.parseCIDR(r.destination);
    return network.kind() === target.kind() && target.match(network, length);
  });
  const [best] = covering.sort((a, b) => prefixLength(b) - prefixLength(a) || (a.metric ?? 0) - (b.metric ?? 0));
  if (!best || best.type !== 'unicast' || best.flags.includes('dead')) return undefined;
  return best;
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

  /**
   * Every interface and its addresses in one read, for discovery: read beside the routes rather
   * than after them (the interface is not known yet), and one read for the uplink and the vnic
   * alike (through a SharedReadRunner: the Describe, discover).
   */
  private async links(run: Runner): Promise<IpLink[]> {
    return parseIpAddrJson((await run.run(['ip', '-j', 'addr', 'show'], READ)).stdout);
  }

  private static named(links: IpLink[], dev: string): IpLink {
    const link = links.find((l) => l.ifname === dev);
    if (!link) throw new Error(`interface ${dev} not found in \`ip -j addr show\``);
    return link;
  }

  async discoverUplink(run: Runner, options?: UplinkOptions): Promise<Uplink | null> {
    // Both tables at once, and the addresses with them: the IPv6 table is only wasted when
    // there is no uplink at all, the addresses then too.
    const [routes4, routes6, allLinks] = await readTogether([this.routes(run, 'inet'), this.routes(run, 'inet6'), options?.address === false ? undefined : this.links(run)]);
    const [best] = usableDefaultRoutes(routes4);
    if (!best || !best.dev || !best.gateway) return null;
    const defaults6 = usableDefaultRoutes(routes6);
    const v6 = defaults6.find((r) => r.dev === best.dev) ?? defaults6[0];
    const uplink: Uplink = { interface: best.dev, gateway: best.gateway, gateway6: v6?.gateway };
    if (!allLinks) return uplink;
    return { ...uplink, address: primaryIpAddress(LinuxDriver.named(allLinks, best.dev), 'inet')?.local };
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

  /**
   * The interface whose route in table main reaches `vmAddress` directly, the longest prefix
   * winning (lowest metric among equals), as darwin finds it from its interfaces' subnets: from
   * the table and the addresses discoverUplink reads too, so that through a SharedReadRunner
   * (the Describe, discover) the vnic costs no process of its own. Not `ip route get`: its
   * policy rules and other tables are not where a VM's directly connected network is.
   */
  async discoverVnic(run: Runner, vmAddress: string): Promise<Vnic> {
    const family = familyOfAddress(vmAddress);
    const [routes, allLinks] = await readTogether([this.routes(run, family), this.links(run)]);
    const own = allLinks.find((l) => l.addresses.some((a) => sameAddress(a.local, vmAddress)));
    if (own) throw new Error(`${vmAddress} is an address of this host (on ${own.ifname}), not the VM's`);
    const found = routeTowards(routes, vmAddress);
    // A multipath route (nexthops) is via gateways: its first hop tells which.
    const route = found && !found.dev && found.nexthops.length ? { ...found, ...found.nexthops[0] } : found;
    if (!route || !route.dev) throw new Error(`no route to the VM address ${vmAddress}`);
    if (route.gateway) {
      throw new Error(`the VM address ${vmAddress} is not on a directly connected network (it is reached via ${route.gateway} dev ${route.dev}); give the VM's vnic address`);
    }
    const link = LinuxDriver.named(allLinks, route.dev);
    const address = route.prefsrc ?? primaryIpAddress(link, 'inet')?.local;
    if (!address) throw new Error(`interface ${route.dev} facing the VM has no IPv4 address`);
    return { interface: route.dev, address, address6: primaryIpAddress(link, 'inet6')?.local };
  }

  async readRoutes(run: Runner, wanted: RouteSpec[]): Promise<RouteReadback[]> {
    const families = new Set(wanted.map((w) => familyOfAddress(w.destination.split('/')[0])));
    const reads = (['inet', 'inet6'] as const).filter((family) => families.has(family)).map((family) => this.routes(run, family));
    return routeReadback((await readTogether(reads)).flat(), wanted);
  }

  /** Both families, by the very commands discoverUplink runs (`ip -j [-6] route show table main`). */
  async readRoutingTable(run: Runner): Promise<RoutingTable> {
    const table = (await readTogether([this.routes(run, 'inet'), this.routes(run, 'inet6')])).flat();
    return {
      readback: (wanted) => routeReadback(table, wanted),
      fingerprint: (ignore) => {
        const ours = new Set(ignore.map(canonicalCidr));
        const routes = table.filter((r) => !ours.has(r.destination)).map((r) => JSON.stringify(r));
        // A digest: the journal keeps it, and a host may have thousands of routes.
        return createHash('sha256').update(JSON.stringify(routes.sort())).digest('hex');
      },
    };
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

  async setDns(run: Runner, servers: string[], current: DnsSnapshot, context?: DnsContext, prepared?: string): Promise<void> {
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
    const content = renderResolvConf(servers, previous);
    // Written ahead (prepareDns): only the rename is left, unless the temp file is gone meanwhile.
    if (prepared === content && (await this.renameTempIntoPlace(run, { allowFailure: true })).exitCode === 0) return;
    await this.writeFileAtomically(run, content);
  }

  /** resolv-conf mode: the file setDns would write, in its temp file (a resolv.conf that is a link: nothing). */
  async prepareDns(run: Runner, servers: string[], current: DnsSnapshot): Promise<string | undefined> {
    if (this.dnsMode !== 'resolv-conf' || current.resolvConfLink || servers.length === 0) return undefined;
    const content = renderResolvConf(servers, current.resolvConf);
    await run.run(['tee', this.tempPath], { input: content });
    return content;
  }

  async discardPreparedDns(run: Runner): Promise<void> {
    if (this.dnsMode === 'resolv-conf') await run.run(['rm', '-f', this.tempPath]);
  }

  async restoreDns(run: Runner, snapshot: DnsSnapshot): Promise<void> {
    if (this.dnsMode === 'resolvectl') {
      if (snapshot.resolvectlLink) await run.run(['resolvectl', 'revert', snapshot.resolvectlLink]);
      return;
    }
    const path = this.resolvConfPath;
    if (snapshot.resolvConfLink) {
      await run.run(['ln', '-sfn', snapshot.resolvConfLink, this.tempPath]);
      await this.renameTempIntoPlace(run);
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

  /** The sibling temp file resolv.conf is written into, then renamed over it. */
  private get tempPath(): string {
    return `${this.resolvConfPath}.wgctl-tmp`;
  }

  private renameTempIntoPlace(run: Runner, options: { allowFailure?: boolean } = {}) {
    return run.run(['mv', '-f', '-T', this.tempPath, this.resolvConfPath], options);
  }

  /** tee into a sibling temp file, then rename over the target: readers never see half a file. */
  private async writeFileAtomically(run: Runner, content: string): Promise<void> {
    await run.run(['tee', this.tempPath], { input: content });
    await this.renameTempIntoPlace(run);
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
