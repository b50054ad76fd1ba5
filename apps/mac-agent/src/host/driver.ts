/**
 * One host-network interface, one implementation per OS (darwin/, linux.ts), chosen at run
 * time by `mac-agent --driver`. Drivers only build argv and call the runner they are handed
 * (so each step's commands are recorded); all parsing lives in @wgctl/parsers.
 *
 * The mac-agent service (service.ts) sequences these calls into Up/Down steps, keeps the
 * journal, and runs the roaming loop; drivers hold no state of their own between calls
 * except what they return (tokens, snapshots), which the service journals.
 */
import type { Runner } from '@wgctl/runner';
import type { DnsWatch } from './dns-watch';
import type { KillSwitchWatch } from './kill-switch-watch';

export type DriverName = 'darwin' | 'linux';

export interface ServerEndpoint {
  ip: string; // literal IPv4 or IPv6 address
  port: number;
}

/** The original default route: where the WireGuard UDP must keep going. */
export interface Uplink {
  interface: string; // en0 / wlan0 / eth0
  gateway: string; // IPv4 next hop
  gateway6?: string; // IPv6 next hop (may be link-local with %scope)
  address?: string; // our IPv4 address on the uplink
}

/** The host's side of the link to the VM. */
export interface Vnic {
  interface: string; // bridge100 / vnic0 / veth…
  address: string; // our IPv4 address facing the VM
  address6?: string; // a global IPv6 address on the vnic, if any
}

/**
 * The kill switch holds on EVERY interface but loopback and the vnic (a second Wi-Fi/Ethernet,
 * a tether, the interface roamed away from, a socket bound to any of them): no rule may
 * depend on `uplink` being the only interface.
 */
export interface KillSwitchPolicy {
  uplink: string; // the uplink now: for status and messages; only the --allow-lan rules name it
  endpoints: ServerEndpoint[]; // the only non-DHCP traffic allowed on any interface but lo and the vnic
  vnic?: string; // the VM-facing interface: passes freely; the VM's forwarded traffic is held to the endpoints
  vmAddress?: string;
  allowDhcp6: boolean;
  /**
   * The DHCP server of the uplink's lease, when it is on the uplink's own subnet: the one host
   * besides the broadcast address that DHCP (client port 68) may reach, for the RENEWING unicast
   * of RFC 2131 §4.4.5. Filled in from the driver (readDhcpServer) each time the kill switch is
   * ensured; absent: broadcast only (REBINDING, §4.4.5, keeps the lease).
   */
  dhcpServer?: string;
  /** No IPv6 routed via the VM: drop all IPv6 (but on lo and the vnic) except DHCPv6/NDP basics. */
  blockIpv6: boolean;
  /**
   * Excluded destinations (canonical CIDRs, routed via the uplink's gateway): the host may open
   * flows to them on any interface, and only their replies come back (stateful; they cannot
   * open flows to the host). Absent: none.
   */
  exclude?: string[];
  /**
   * `--allow-lan`: on the uplink (the one place a rule names it), its directly connected
   * private/link-local subnets pass both ways, and mDNS; DNS to them stays blocked (lan.ts).
   */
  allowLan?: boolean;
  /**
   * With allowLan: the uplink's subnets now (lan.ts lanSubnetsOf), filled in from the driver
   * (readLanSubnets) each time the kill switch is ensured, so a roam brings the new LAN's.
   */
  lanSubnets?: string[];
  /**
   * `wgctl portal`: a captive-portal sign-in window, until `untilMs` (the engine closes it then,
   * or sooner). The host's own DNS (udp/tcp 53) to `resolvers` (the uplink's DHCP-given ones)
   * and its own TCP to ports 80 and 443 anywhere may leave, and their replies come back; the
   * VM's forwarded traffic stays held to the endpoints. Absent: no window.
   */
  portalWindow?: PortalWindow;
}

export interface PortalWindow {
  untilMs: number;
  /** IP literals (IPv6 ones are left out while IPv6 is blocked). */
  resolvers: string[];
}

/** The ports of the web a sign-in page needs (HTTP for the redirect, HTTPS for the login form). */
export const PORTAL_WEB_PORTS = [80, 443] as const;

/** What loading the kill switch handed back and what unloading needs (journaled). */
export interface KillSwitchHandle {
  /** darwin: the `pfctl -E` reference token (u64 as a string). */
  pfToken?: string;
  /** darwin: the PF anchor holding the rules (absent in journals of older wgctl: `com.wgctl`). */
  pfAnchor?: string;
  /**
   * darwin, older wgctl only: it appended `anchor "com.wgctl"` to the main ruleset. Kept in the
   * journal until a load or unload has found that reference gone (and removed it if not).
   */
  addedAnchorReference?: boolean;
  /** linux: the nftables table holding the rules (`inet wgctl`). */
  nftTable?: string;
}

export interface KillSwitchStatus {
  loaded: boolean;
  enabled: boolean;
  referenced: boolean;
  tokenHeld: boolean;
  interface?: string;
  rules: string[];
  problems: string[]; // empty when the live rules match the policy
}

export interface RouteSpec {
  destination: string; // CIDR
  gateway: string; // next hop address
  interface?: string; // for scoped or link routes
}

export interface RouteReadback extends RouteSpec {
  present: boolean;
  evidence: string; // routing-table line
  /**
   * RoutingTable.readback only: the one read cannot settle it (darwin: netstat cut the Netif
   * name, `route -n get` would tell); `present` is then false, and readRoutes must answer.
   */
  unsure?: boolean;
}

/** DNS as it was before we changed it, per network service ("none set" = empty list). */
export interface DnsSnapshot {
  services: { name: string; servers: string[]; searchDomains?: string[] }[];
  /** linux: resolv.conf content before we replaced it. */
  resolvConf?: string;
  /** linux: resolv.conf was a symlink to this target (systemd-resolved, NetworkManager…). */
  resolvConfLink?: string;
  /** linux: there was no resolv.conf at all (restore removes ours). */
  resolvConfMissing?: boolean;
  /** linux resolvectl mode: the link whose DNS we set (restore = `resolvectl revert`). */
  resolvectlLink?: string;
}

/** Where DNS is being pointed from (drivers that set DNS per link need it). */
export interface DnsContext {
  uplink?: string;
  vnic?: string;
}

export interface RouteChange {
  kind: 'default-changed' | 'link-changed' | 'other';
  line: string;
  /** For route events: the destination (CIDR), so the service can ignore its own routes. */
  destination?: string;
  deleted?: boolean;
  /** Who made the change, when the monitor says (darwin: the routing-socket writer's pid). */
  pid?: number;
}

export interface UplinkOptions {
  /** Read our address on the uplink too (default true). */
  address?: boolean;
}

/**
 * The routing table as one read found it (both families): the read-back of routes, and a
 * fingerprint of what discover depends on, so that an Up can tell whether anything changed
 * since an earlier read without reading the table again.
 */
export interface RoutingTable {
  /** As readRoutes, from this read. */
  readback(wanted: RouteSpec[]): RouteReadback[];
  /**
   * Every route but those to `ignore` (ours: pins, excluded, split routes), canonical: equal
   * fingerprints, same default routes, same interface routes (an address added or removed
   * adds or removes its prefix route), so the same uplink and vnic.
   */
  fingerprint(ignore: readonly string[]): string;
}

export interface HostNetworkDriver {
  readonly name: DriverName;

  /**
   * The unscoped default route and its interface; null when there is no uplink. `address: false`:
   * without our address on it (one read fewer: the periodic roam check compares next hops only).
   */
  discoverUplink(run: Runner, options?: UplinkOptions): Promise<Uplink | null>;
  /** The interface and address facing `vmAddress` (the VM's vnic IP). */
  discoverVnic(run: Runner, vmAddress: string): Promise<Vnic>;

  /** Routes as the routing table shows them now (for idempotency and status). */
  readRoutes(run: Runner, wanted: RouteSpec[]): Promise<RouteReadback[]>;
  /**
   * Optional: the whole table (both families) in one read, where its parts are read by the same
   * commands discoverUplink runs (through a SharedReadRunner they are read once).
   */
  readRoutingTable?(run: Runner): Promise<RoutingTable>;
  addRoute(run: Runner, route: RouteSpec): Promise<void>; // "exists" is success
  deleteRoute(run: Runner, route: RouteSpec): Promise<void>; // "not in table" is success

  /** The rules the kill switch would load, as text (for plan/dry-run and checks). */
  renderKillSwitch(policy: KillSwitchPolicy): string;
  loadKillSwitch(run: Runner, policy: KillSwitchPolicy, previous?: KillSwitchHandle): Promise<KillSwitchHandle>;
  unloadKillSwitch(run: Runner, handle: KillSwitchHandle): Promise<void>;
  readKillSwitch(run: Runner, policy?: KillSwitchPolicy, handle?: KillSwitchHandle): Promise<KillSwitchStatus>;

  /** `context` lets per-link drivers (linux resolvectl) record in the snapshot which link they will change. */
  readDns(run: Runner, context?: DnsContext): Promise<DnsSnapshot>;
  /** `prepared`: what prepareDns returned for this DNS (the file it wrote ahead is then only put in place). */
  setDns(run: Runner, servers: string[], current: DnsSnapshot, context?: DnsContext, prepared?: string): Promise<void>;
  restoreDns(run: Runner, snapshot: DnsSnapshot): Promise<void>;
  /**
   * Optional: writes ahead, where nothing reads it, what setDns(servers, current) would put in
   * place, so that setting DNS is left with one atomic rename (linux resolv-conf: resolv.conf's
   * temp file). Returns the content written, for setDns to compare; undefined: nothing prepared.
   */
  prepareDns?(run: Runner, servers: string[], current: DnsSnapshot): Promise<string | undefined>;
  /** Optional, with prepareDns: removes what it wrote, if it is still there (by its name). */
  discardPreparedDns?(run: Runner): Promise<void>;

  /**
   * Optional: the server of `uplink`'s DHCP lease if it is on-link there (see
   * KillSwitchPolicy.dhcpServer); undefined when there is no lease, no server identifier, or
   * the server is off-link (behind a relay). Never throws: the kill switch then allows the
   * broadcast only.
   */
  readDhcpServer?(run: Runner, uplink: string): Promise<string | undefined>;

  /**
   * Optional: the resolvers `uplink`'s DHCP lease gives, for drivers whose readDns does not show
   * them (darwin: networksetup lists hand-set resolvers only). [] when there are none; never throws.
   */
  readDhcpResolvers?(run: Runner, uplink: string): Promise<string[]>;

  /**
   * Optional: the LAN subnets of `uplink` (its addresses' private/link-local networks, lan.ts
   * lanSubnetsOf); [] when it has none or cannot be read (the kill switch then admits no LAN).
   */
  readLanSubnets?(run: Runner, uplink: string): Promise<string[]>;

  /** argv of the routing-event monitor (`route -n monitor`, `ip monitor route link addr`). */
  monitorArgv(): string[];
  /** Classifies one monitor event (a block of lines) ; pure. */
  classifyMonitorEvent(block: string): RouteChange;

  /**
   * Optional: after a roam, forget NAT/firewall state of the flows to the servers so they are
   * set up afresh on the new uplink (linux: `conntrack -D`, when conntrack-tools is installed).
   * Best effort: never throws for a missing tool.
   */
  forgetFlows?(run: Runner, endpoints: ServerEndpoint[]): Promise<void>;

  /** Optional: how the self-healing watches this driver's kill switch (see kill-switch-watch.ts). */
  killSwitchWatch?(): KillSwitchWatch;

  /** Optional: where this driver's DNS settings change can be watched while up (see dns-watch.ts). */
  dnsWatch?(): DnsWatch;
}
