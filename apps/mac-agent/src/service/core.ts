/**
 * What the engine's parts share — Up and Down (up.ts, down.ts), roaming (roam.ts), status
 * (status.ts): the host driver and runner, the journal, the clock; and the helpers more than
 * one of them needs, each written once: ensure the kill switch, the pins for an uplink, the
 * DNS services off the tunnel, same route, same uplink.
 */
import { stepCause } from '@wgctl/agent-kit';
import type { Logger } from '@wgctl/logging';
import type { Runner } from '@wgctl/runner';
import type { DnsContext, DnsSnapshot, HostNetworkDriver, KillSwitchPolicy, RouteSpec, RoutingTable, ServerEndpoint, Uplink, Vnic } from '../host/driver';
import type { FileChangeWatch } from '../host/dns-watch';
import { emptyJournal, type JournalStore, type MacJournal } from './journal';

/**
 * What the last Describe found, with the routing table it read them from (drivers with
 * readRoutingTable): the Up that follows it (`wgctl up` connects with a Describe) takes it
 * while that table is unchanged (up.ts discover). Kept in memory only, taken once.
 */
export interface HostDescription {
  vmAddress: string;
  uplink: Uplink;
  vnic: Vnic;
  table: RoutingTable;
  atMs: number;
}

/**
 * DNS as a kill-switch-only Up read it for the full Up that follows, with a watch on the files
 * it comes from (drivers whose DNS lives in files): the full Up takes it instead of reading DNS
 * again while none of them changed (up.ts readDnsAhead). In memory only, taken once.
 */
export interface DnsReadAhead {
  snapshot: DnsSnapshot;
  context: DnsContext;
  watch: FileChangeWatch;
  /** What the driver wrote ahead for the full Up's DNS (prepareDns), when it did. */
  prepared?: string;
}

/** The routing table as a kill-switch-only Up's verify read it back (whole, both families). */
export interface TableAhead {
  table: RoutingTable;
  /** Its fingerprint without the destinations of that Up's intent (ownDestinations). */
  fingerprint: string;
  atMs: number;
}

/** Schedules the work of an operation: one at a time, in call order (the engine's queue). */
export type Exclusive = <T>(fn: () => Promise<T>) => Promise<T>;

/** The host and the journal, as every part of the engine reaches them. */
export class EngineCore {
  /** The destinations of our routes, from the journal last read or written: no file read per monitor line. */
  private ownDestinations = new Set<string>();
  /** The last Describe's findings, until an Up takes them. */
  lastDescription?: HostDescription;
  /** DNS read by a kill-switch-only Up, until the next Up or Down takes it (takeDnsReadAhead). */
  private dnsReadAhead?: DnsReadAhead;
  /** The table a kill-switch-only Up read back, until the next Up or Down takes it (takeTableAhead). */
  private tableAhead?: TableAhead;

  constructor(
    readonly driver: HostNetworkDriver,
    readonly runner: Runner,
    private readonly store: JournalStore,
    readonly logger: Logger,
    readonly now: () => number,
  ) {}

  /** The journal on disk, or an empty (down) one when there is none. */
  loadJournal(): MacJournal {
    const journal = this.store.load() ?? emptyJournal(this.driver.name, this.now());
    this.ownDestinations = new Set(journal.routes.map((r) => r.destination));
    return journal;
  }

  saveJournal(journal: MacJournal): void {
    this.store.save(journal);
    this.ownDestinations = new Set(journal.routes.map((r) => r.destination));
  }

  /** Stamps the journal (updatedAtMs) and saves it. */
  persist(journal: MacJournal): void {
    journal.updatedAtMs = this.now();
    this.saveJournal(journal);
  }

  /** Keeps DNS read ahead for the next operation (an earlier one left untaken is dropped). */
  keepDnsReadAhead(ahead: DnsReadAhead): void {
    this.takeDnsReadAhead();
    this.dnsReadAhead = ahead;
  }

  /** DNS read ahead, its watch ended: once taken it is gone. */
  takeDnsReadAhead(): DnsReadAhead | undefined {
    const ahead = this.dnsReadAhead;
    this.dnsReadAhead = undefined;
    ahead?.watch.close();
    return ahead;
  }

  /** Keeps the routing table a kill-switch-only Up read back, for the full Up that follows. */
  keepTableAhead(ahead: TableAhead): void {
    this.tableAhead = ahead;
  }

  /** Once taken it is gone: only the operation right after that Up may use it. */
  takeTableAhead(): TableAhead | undefined {
    const ahead = this.tableAhead;
    this.tableAhead = undefined;
    return ahead;
  }

  isOwnRoute(destination: string): boolean {
    return this.ownDestinations.has(destination);
  }
}

/** The message of a failure (a failed step's cause). */
export function messageOf(e: unknown): string {
  const cause = stepCause(e);
  return cause instanceof Error ? cause.message : String(cause);
}

// ------------------------------------------------------------------------------ kill switch

/**
 * Sets `policy.dhcpServer` IN PLACE to the uplink's on-link lease server now (or removes it):
 * the caller's object — the Up's plan, the roam's policy, the journal's — then holds what is
 * loaded, and a lease server that changed (a roam, a new lease) makes the read-back differ and
 * the rules reload.
 */
async function followLeaseServer(driver: HostNetworkDriver, run: Runner, policy: KillSwitchPolicy): Promise<void> {
  if (!driver.readDhcpServer) return;
  const server = await driver.readDhcpServer(run, policy.uplink);
  if (server) policy.dhcpServer = server;
  else delete policy.dhcpServer;
}

/**
 * With --allow-lan, sets `policy.lanSubnets` IN PLACE to the uplink's LAN subnets now (like
 * followLeaseServer): a roam to another network brings that network's, and the old one's go.
 */
async function followLanSubnets(driver: HostNetworkDriver, run: Runner, policy: KillSwitchPolicy): Promise<void> {
  if (!policy.allowLan) {
    delete policy.lanSubnets;
    return;
  }
  policy.lanSubnets = driver.readLanSubnets ? await driver.readLanSubnets(run, policy.uplink) : [];
}

/**
 * Ensures the kill switch: `policy` in force on the host and in the journal. With `readFirst`
 * the live one is read and kept when loaded, enabled and without problems ('kept': the journal
 * is the caller's to update); otherwise it is loaded — both drivers replace their table/anchor
 * atomically, so a leftover one is replaced, never doubled or merged — and its handle
 * journaled at once ('loaded').
 */
export async function ensureKillSwitch(
  driver: HostNetworkDriver,
  run: Runner,
  journal: MacJournal,
  policy: KillSwitchPolicy,
  options: { readFirst: boolean; persist: () => void },
): Promise<'kept' | 'loaded'> {
  await Promise.all([followLeaseServer(driver, run, policy), followLanSubnets(driver, run, policy)]);
  const handle = journal.killSwitch?.handle ?? undefined;
  if (options.readFirst) {
    const live = await driver.readKillSwitch(run, policy, handle);
    if (live.loaded && live.enabled && live.problems.length === 0) return 'kept';
  }
  journal.killSwitch = { policy, handle: await driver.loadKillSwitch(run, policy, handle) };
  options.persist();
  return 'loaded';
}

// ----------------------------------------------------------------------------------- routes

export const IPV4_SPLIT = ['0.0.0.0/1', '128.0.0.0/1'];
export const IPV6_SPLIT = ['::/1', '8000::/1'];

/** A server's pin destination: its /32 or /128. */
export function hostRoute(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

/**
 * The pins for this uplink: each WireGuard server's /32 (/128) via the uplink's gateway
 * (gateway6 for an IPv6 server; '' when the uplink has none — Up refuses that, a roam leaves
 * the server unpinned).
 */
export function pinsFor(endpoints: readonly ServerEndpoint[], uplink: Uplink): RouteSpec[] {
  return endpoints.map((e) => ({
    destination: hostRoute(e.ip),
    gateway: e.ip.includes(':') ? (uplink.gateway6 ?? '') : uplink.gateway,
    interface: uplink.interface,
  }));
}

/**
 * The excluded CIDRs' routes for this uplink: via its gateway (gateway6 for IPv6; '' when it has
 * none — Up refuses that, a roam leaves the range to the split routes, i.e. the tunnel).
 */
export function excludeRoutesFor(exclude: readonly string[] | undefined, uplink: Uplink): RouteSpec[] {
  return (exclude ?? []).map((destination) => ({
    destination,
    gateway: destination.includes(':') ? (uplink.gateway6 ?? '') : uplink.gateway,
    interface: uplink.interface,
  }));
}

/** Routes via the uplink's gateway (they move with a roam), as opposed to the split routes via the VM. */
export function viaUplink(route: { role: string }): boolean {
  return route.role === 'pin' || route.role === 'exclude';
}

export function sameRoute(a: RouteSpec, b: RouteSpec): boolean {
  return a.destination === b.destination && a.gateway === b.gateway && (a.interface ?? '') === (b.interface ?? '');
}

/** The same next hops out of the same interface (the address on it does not matter for the pins). */
export function sameUplink(a: Uplink, b: Uplink): boolean {
  return a.interface === b.interface && a.gateway === b.gateway && (a.gateway6 ?? '') === (b.gateway6 ?? '');
}

// -------------------------------------------------------------------------------------- DNS

/** Whether a DNS service resolves through exactly these servers, in this order. */
export function usesServers(service: DnsSnapshot['services'][number], servers: readonly string[]): boolean {
  return service.servers.join(' ') === servers.join(' ');
}

/**
 * The services of `current` that do not resolve through the tunnel's servers, and which of
 * them the snapshot does not know yet (new since the Up: the caller journals them, with their
 * own settings, before changing them, so that Down restores them too).
 */
export function servicesOffTunnel(dns: { snapshot: DnsSnapshot; servers: string[] }, current: DnsSnapshot): { offTunnel: DnsSnapshot['services']; unknown: DnsSnapshot['services'] } {
  const offTunnel = current.services.filter((s) => !usesServers(s, dns.servers));
  const known = new Set(dns.snapshot.services.map((s) => s.name));
  return { offTunnel, unknown: offTunnel.filter((s) => !known.has(s.name)) };
}

/** A DNS snapshot in a sentence: its servers, or `none set`. */
export function describeDns(snapshot: DnsSnapshot): string {
  const servers = snapshot.services.flatMap((s) => s.servers);
  return servers.length ? servers.join(' ') : 'none set';
}

/** Re-asserting failed: make sure the journaled kill switch is loaded (after a reboot it is not). */
export async function holdKillSwitch(core: EngineCore, journal: MacJournal): Promise<void> {
  if (!journal.killSwitch) return;
  try {
    const done = await ensureKillSwitch(core.driver, core.runner, journal, journal.killSwitch.policy, { readFirst: true, persist: () => core.persist(journal) });
    if (done === 'loaded') core.logger.warn('kill switch re-loaded from the journal while the rest cannot be re-asserted (fail-closed)', { uplink: journal.killSwitch.policy.uplink });
  } catch (e) {
    core.logger.error('cannot load the journaled kill switch', { error: messageOf(e) });
  }
}
