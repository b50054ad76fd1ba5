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
 *
 * This class only delegates, one file per concern: routes.ts (discovery, route add/delete and
 * their read-back), pf.ts (the kill switch), dns.ts (networksetup), monitor.ts (roaming).
 */
import type { Runner } from '@wgctl/runner';
import type {
  DnsSnapshot,
  HostNetworkDriver,
  KillSwitchHandle,
  KillSwitchPolicy,
  KillSwitchStatus,
  RouteChange,
  RouteReadback,
  RouteSpec,
  RoutingTable,
  Uplink,
  UplinkOptions,
  Vnic,
} from '../driver';
import { readDarwinDns, restoreDarwinDns, setDarwinDns } from './dns';
import { darwinDnsWatch } from './dns-watch';
import type { DnsWatch } from '../dns-watch';
import { readDarwinDhcpResolvers, readDarwinDhcpServer } from './dhcp';
import { readDarwinLanSubnets } from './lan';
import type { KillSwitchWatch } from '../kill-switch-watch';
import { DarwinRouteMonitor, darwinMonitorArgv } from './monitor';
import {
  DARWIN_PF_ANCHOR,
  PF_ANCHOR_PATH,
  loadDarwinKillSwitch,
  pfRulesFile,
  readDarwinKillSwitch,
  renderDarwinKillSwitch,
  unloadDarwinKillSwitch,
} from './pf';
import { DarwinKillSwitchWatch } from './pf-watch';
import { addDarwinRoute, deleteDarwinRoute, discoverDarwinUplink, discoverDarwinVnic, readDarwinRoutes, readDarwinRoutingTable } from './routes';

export { DARWIN_PF_ANCHOR, DarwinKillSwitchError, darwinStateKillArgv, renderDarwinKillSwitch } from './pf';
export { darwinRouteArgv } from './routes';

export interface DarwinDriverOptions {
  /** Where the PF rules file is written (the agent's state dir). */
  stateDir?: string;
  /** The PF anchor holding our rules. Default DARWIN_PF_ANCHOR. */
  anchor?: string;
}

const DARWIN_DEFAULT_STATE_DIR = '/Library/Application Support/wgctl/mac-agent';

export class DarwinDriver implements HostNetworkDriver {
  readonly name = 'darwin' as const;
  readonly stateDir: string;
  readonly anchor: string;
  /** Gathers a `route -n monitor` message fed one line at a time (see classifyMonitorEvent). */
  private readonly monitor = new DarwinRouteMonitor();

  constructor(options: DarwinDriverOptions = {}) {
    this.stateDir = options.stateDir ?? DARWIN_DEFAULT_STATE_DIR;
    this.anchor = options.anchor ?? DARWIN_PF_ANCHOR;
    if (!PF_ANCHOR_PATH.test(this.anchor)) throw new Error(`bad PF anchor name "${this.anchor}"`);
  }

  /** The file the anchor's rules are loaded from. */
  get rulesFile(): string {
    return pfRulesFile(this.stateDir, this.anchor);
  }

  // ----- discovery -----

  discoverUplink(run: Runner, options?: UplinkOptions): Promise<Uplink | null> {
    return discoverDarwinUplink(run, options?.address ?? true);
  }

  discoverVnic(run: Runner, vmAddress: string): Promise<Vnic> {
    return discoverDarwinVnic(run, vmAddress);
  }

  // ----- routes -----

  readRoutes(run: Runner, wanted: RouteSpec[]): Promise<RouteReadback[]> {
    return readDarwinRoutes(run, wanted);
  }

  /** `netstat -rn`, as discoverUplink reads it. */
  readRoutingTable(run: Runner): Promise<RoutingTable> {
    return readDarwinRoutingTable(run);
  }

  addRoute(run: Runner, route: RouteSpec): Promise<void> {
    return addDarwinRoute(run, route);
  }

  deleteRoute(run: Runner, route: RouteSpec): Promise<void> {
    return deleteDarwinRoute(run, route);
  }

  // ----- kill switch -----

  renderKillSwitch(policy: KillSwitchPolicy): string {
    return renderDarwinKillSwitch(policy, this.anchor);
  }

  loadKillSwitch(run: Runner, policy: KillSwitchPolicy, previous?: KillSwitchHandle): Promise<KillSwitchHandle> {
    return loadDarwinKillSwitch(run, this.anchor, this.stateDir, policy, previous);
  }

  unloadKillSwitch(run: Runner, handle: KillSwitchHandle): Promise<void> {
    return unloadDarwinKillSwitch(run, this.anchor, this.stateDir, handle);
  }

  readKillSwitch(run: Runner, policy?: KillSwitchPolicy, handle?: KillSwitchHandle): Promise<KillSwitchStatus> {
    return readDarwinKillSwitch(run, this.anchor, policy, handle);
  }

  /** The uplink's lease server when on-link (`ipconfig getpacket`): see KillSwitchPolicy.dhcpServer. */
  readDhcpServer(run: Runner, uplink: string): Promise<string | undefined> {
    return readDarwinDhcpServer(run, uplink);
  }

  /** The resolvers of the uplink's lease (`ipconfig getpacket`): networksetup never lists them. */
  readDhcpResolvers(run: Runner, uplink: string): Promise<string[]> {
    return readDarwinDhcpResolvers(run, uplink);
  }

  /** The uplink's private/link-local subnets (`ifconfig IF`), for --allow-lan. */
  readLanSubnets(run: Runner, uplink: string): Promise<string[]> {
    return readDarwinLanSubnets(run, uplink);
  }

  /** PF has no events: our token and the anchor's rules, looked at every second (pf-watch.ts). */
  killSwitchWatch(): KillSwitchWatch {
    return new DarwinKillSwitchWatch(this.anchor);
  }

  // ----- DNS -----

  readDns(run: Runner): Promise<DnsSnapshot> {
    return readDarwinDns(run);
  }

  setDns(run: Runner, servers: string[], current: DnsSnapshot): Promise<void> {
    return setDarwinDns(run, servers, current);
  }

  restoreDns(run: Runner, snapshot: DnsSnapshot): Promise<void> {
    return restoreDarwinDns(run, snapshot);
  }

  /** configd's DNS keys, watched with `scutil` (dns-watch.ts): readDns costs a networksetup per service, so no polling. */
  dnsWatch(): DnsWatch {
    return darwinDnsWatch();
  }

  // ----- roaming -----

  monitorArgv(): string[] {
    return darwinMonitorArgv();
  }

  /** Classifies `route -n monitor` output, a whole message or one line at a time (see DarwinRouteMonitor). */
  classifyMonitorEvent(block: string): RouteChange {
    return this.monitor.classify(block);
  }
}
