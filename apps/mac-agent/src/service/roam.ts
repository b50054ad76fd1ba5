/**
 * Roaming, while up: routing events (`route -n monitor`, `ip monitor`), and a periodic roam
 * check (the backstop) for events the monitor held back, move the pins and the kill switch to
 * a new uplink and put back routes of ours; after each burst of them DNS is checked (again
 * dnsRecheckMs later) and set again wherever it left the tunnel. DNS changed with no routing
 * event (a DHCP renewal rewriting resolv.conf, configd, the user) is reported by the driver's
 * DNS watch (host/dns-watch.ts) and checked the same way, dnsEventDebounceMs after the last.
 *
 * Everything that reads or changes the host goes through the engine's queue (`exclusive`), one
 * at a time with Up, Down and Status.
 */
import { formatArgv, ObservedRunner, readTogether, SharedReadRunner, SupervisedMonitor, type Runner, type StreamingOptions, type StreamingProcess } from '@wgctl/runner';
import { DnsChangeWatcher } from '../host/dns-watch';
import type { DnsContext, KillSwitchPolicy, RouteReadback, Uplink, Vnic } from '../host/driver';
import { ensureKillSwitch, excludeRoutesFor, messageOf, pinsFor, sameRoute, sameUplink, servicesOffTunnel, viaUplink, type EngineCore, type Exclusive } from './core';
import type { HealLog } from './heal';
import type { JournalRoute, MacJournal, UpIntent } from './journal';

export type SpawnStreaming = (argv: readonly string[], options: StreamingOptions) => StreamingProcess;

/** A roam handled: the pins and the kill switch moved from one uplink to another. */
export interface Roam {
  atMs: number;
  fromInterface: string;
  toInterface: string;
  fromGateway: string;
  toGateway: string;
  tookMs: number;
}

export interface RoamingOptions {
  core: EngineCore;
  exclusive: Exclusive;
  /** Whether a requested Up or Down runs: the backstop does not check beside it. */
  operationRunning: () => boolean;
  spawnMonitor: SpawnStreaming;
  /** Quiet time after the last routing event before re-reading the table. */
  debounceMs: number;
  /** After an Up, the monitor and the DNS watch start this much later (0: once the reply is out). */
  watchAfterUpMs: number;
  /** Upper bound on that wait while events keep coming. */
  maxWaitMs: number;
  /** The roam check's interval (0: none). */
  backstopMs: number;
  /** DNS is checked after a burst and again this much later (0: not again). */
  dnsRecheckMs: number;
  /** Routes and DNS put back are counted and logged there. */
  heals: HealLog;
  /** Quiet time after the last DNS watch event before DNS is checked (default 200 ms). */
  dnsEventDebounceMs?: number;
}

/** Roams kept in memory (tests, Status's last roam): a laptop roams for months; the count keeps counting. */
export const KEPT_ROAMS = 32;

/** What Status says of the roams since start. */
export interface RoamSummary {
  count: number;
  last: Roam | undefined;
}

/** A journal that says up, with what a roam needs of it. */
type UpJournal = MacJournal & { intent: UpIntent; uplink: Uplink; killSwitch: NonNullable<MacJournal['killSwitch']> };

/**
 * Runs `fn` `delayMs` after an Up (BACKGROUND_AFTER_OPERATION_MS by default: past its reply, and
 * past what `wgctl up` does next — the CLI's exit and the first packets; the monitor's spawn, a
 * synchronous fork, and its first checks competed with them). With 0, once a reply written now
 * has left the process: two turns of the event loop. A
 * gRPC stream's last message and its trailers go out in two (node's http2 sends the data, asks
 * for the trailers, grpc-js hands them over, node sends them on the next turn); anything
 * synchronous and slow before that (spawning processes) delays the end of the call. Measured
 * on loopback, plaintext and TLS: 8 spawns right after call.end() or after one setImmediate
 * added ~15-18 ms to the client's end of call; after two, nothing.
 */
function afterUpSettled(delayMs: number, fn: () => void): void {
  if (delayMs > 0) setTimeout(fn, delayMs).unref();
  else setImmediate(() => setImmediate(fn));
}

/**
 * What the backstop found amiss against an up journal, '' when nothing: the uplink (gone,
 * back, or another one), or routes of ours missing. With no uplink nothing can be repaired, so
 * missing routes count only once it is back.
 */
function missedRoutingChange(journal: MacJournal, found: Uplink | null, routes: RouteReadback[]): string {
  const pinned = journal.uplink ? `${journal.uplink.interface} via ${journal.uplink.gateway}` : 'none';
  if (!found) return journal.uplinkLost ? '' : `no default route (pinned via ${pinned})`;
  if (journal.uplinkLost || !journal.uplink || !sameUplink(found, journal.uplink)) {
    return `default route ${found.interface} via ${found.gateway}${found.gateway6 ? ` (IPv6 via ${found.gateway6})` : ''}, pinned via ${pinned}${journal.uplinkLost ? ' (lost)' : ''}`;
  }
  const missing = routes.filter((r) => !r.present);
  return missing.length ? `routes of ours missing: ${missing.map((m) => `${m.destination} via ${m.gateway}`).join(', ')}` : '';
}

/** The routing monitor, the debounce, the roam check, the roam itself and DNS kept on the tunnel. */
export class Roaming {
  private readonly core: EngineCore;
  private readonly monitor: SupervisedMonitor;
  private monitorWanted = false;
  private debounce?: NodeJS.Timeout;
  private firstPendingEventAt = 0;
  private pendingEvents: string[] = [];
  private dnsRecheck?: NodeJS.Timeout;
  /** The driver's DNS watch (none: DNS is checked after routing events only). */
  private readonly dnsWatcher?: DnsChangeWatcher;
  private dnsEventDebounce?: NodeJS.Timeout;
  /** What reported DNS changes since the last check was queued. */
  private dnsEvents: string[] = [];
  private backstop?: NodeJS.Timeout;
  /** A backstop check is queued or running: the next tick is skipped. */
  private roamCheckRunning = false;
  /** What the last backstop check found amiss ('' = nothing): the same finding is not handled twice. */
  private lastRoamCheckFinding = '';
  /** Destinations of ours deleted by someone, and who (darwin: the pid), until the roam that puts them back. */
  private deletedBy = new Map<string, string>();
  private closed = false;
  /** The last KEPT_ROAMS roams handled since start (tests and status). */
  readonly roams: Roam[] = [];
  /** Roams handled since start, all of them. */
  private roamCount = 0;

  constructor(private readonly options: RoamingOptions) {
    this.core = options.core;
    const argv = this.core.driver.monitorArgv();
    this.monitor = new SupervisedMonitor({
      spawn: options.spawnMonitor,
      argv,
      onLine: (line) => this.onMonitorLine(line),
      onStart: (proc) => {
        this.core.logger.info('watching routing changes', { argv: formatArgv(argv), pid: proc.pid, roamCheckMs: this.options.backstopMs });
        this.startBackstop();
        // A change after the last read (verify's, or before a restart) and before the monitor
        // listened would go unseen: one re-check once it runs.
        this.scheduleRecheck('monitor started');
      },
      onExit: (exit, stderr) => {
        this.core.logger.warn('routing monitor exited; restarting', { argv: formatArgv(argv), code: exit.code, signal: exit.signal, error: exit.error, stderr: stderr.join(' | ') });
      },
    });
    const dnsWatch = this.core.driver.dnsWatch?.();
    if (dnsWatch) {
      this.dnsWatcher = new DnsChangeWatcher({ watch: dnsWatch, spawn: options.spawnMonitor, logger: this.core.logger, onChange: (trigger) => this.onDnsEvent(trigger) });
    }
  }

  /** Roams since start: how many, the last. */
  get summary(): RoamSummary {
    return { count: this.roamCount, last: this.roams[this.roams.length - 1] };
  }

  /** Whether the monitor is running. */
  get watching(): boolean {
    return this.monitor.running !== undefined;
  }

  /**
   * After an Up: the monitor is wanted now but spawned (node's spawn is a synchronous fork/exec)
   * only once the Up has settled (see afterUpSettled); its start re-checks.
   */
  startSoon(): void {
    this.monitorWanted = true;
    afterUpSettled(this.options.watchAfterUpMs, () => {
      if (this.monitorWanted) this.start();
    });
  }

  /** Down: no monitor, no pending roam, DNS check or roam check. */
  async stop(): Promise<void> {
    this.monitorWanted = false;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
    if (this.dnsRecheck) clearTimeout(this.dnsRecheck);
    this.dnsRecheck = undefined;
    if (this.dnsEventDebounce) clearTimeout(this.dnsEventDebounce);
    this.dnsEventDebounce = undefined;
    this.dnsEvents = [];
    this.deletedBy.clear();
    this.stopBackstop();
    await Promise.all([this.monitor.stop(), this.dnsWatcher?.stop()]);
  }

  /** The engine closes: stopped, and nothing starts again. */
  close(): Promise<void> {
    this.closed = true;
    return this.stop();
  }

  private start(): void {
    this.monitorWanted = true;
    if (this.closed) return;
    this.monitor.start();
    this.dnsWatcher?.start();
  }

  private onMonitorLine(line: string): void {
    const change = this.core.driver.classifyMonitorEvent(line);
    const ownDeleted = change.deleted === true && change.destination !== undefined && this.core.isOwnRoute(change.destination);
    if (change.kind === 'other' && !ownDeleted) return;
    // Our own routes echo back through the monitor; adding them is not a network change
    // (their deletion is: a link flap or someone else removed them, so they are put back).
    if (change.destination && !change.deleted && this.core.isOwnRoute(change.destination)) return;
    if (ownDeleted && change.pid !== undefined) this.deletedBy.set(change.destination as string, `pid ${change.pid}`);
    this.core.logger.debug('routing event', { kind: change.kind, line: change.line });
    this.scheduleRecheck(change.line);
  }

  /** Debounces routing events: one roam per burst, at most maxWaitMs after its first event. */
  private scheduleRecheck(trigger: string): void {
    if (this.closed) return;
    const now = this.core.now();
    if (this.pendingEvents.length === 0) this.firstPendingEventAt = now;
    this.pendingEvents.push(trigger);
    if (this.debounce) clearTimeout(this.debounce);
    const waited = now - this.firstPendingEventAt;
    const delay = Math.max(0, Math.min(this.options.debounceMs, this.options.maxWaitMs - waited));
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      const events = this.pendingEvents;
      const firstAt = this.firstPendingEventAt;
      this.pendingEvents = [];
      const deletedBy = this.deletedBy; // who deleted routes of ours in this burst
      this.deletedBy = new Map();
      void this.options.exclusive(() => this.runRoam(events, firstAt, deletedBy)).catch((e) => {
        this.lastRoamCheckFinding = ''; // a roam that failed is looked at again by the next roam check
        this.core.logger.error('roaming failed', { error: messageOf(e) });
      });
      this.checkDnsNowAndLater();
    }, delay);
  }

  // ------------------------------------------------------------------------------------ DNS

  /** After a routing-event burst (once the roam is done): DNS now, and once more dnsRecheckMs later. */
  private checkDnsNowAndLater(): void {
    this.queueDnsCheck('after routing events');
    const { dnsRecheckMs } = this.options;
    if (dnsRecheckMs <= 0) return;
    // One pending follow-up: a later burst moves it, it does not add another.
    if (this.dnsRecheck) clearTimeout(this.dnsRecheck);
    this.dnsRecheck = setTimeout(() => {
      this.dnsRecheck = undefined;
      this.queueDnsCheck(`${dnsRecheckMs} ms after routing events`);
    }, dnsRecheckMs);
    this.dnsRecheck.unref();
  }

  /** A DNS watch event: one check per burst, dnsEventDebounceMs after its last event. */
  private onDnsEvent(trigger: string): void {
    if (this.closed || !this.monitorWanted) return;
    if (!this.dnsEvents.includes(trigger) && this.dnsEvents.length < 8) this.dnsEvents.push(trigger);
    if (this.dnsEventDebounce) clearTimeout(this.dnsEventDebounce);
    this.dnsEventDebounce = setTimeout(() => {
      this.dnsEventDebounce = undefined;
      const events = this.dnsEvents;
      this.dnsEvents = [];
      this.queueDnsCheck(events.join(', '));
    }, this.options.dnsEventDebounceMs ?? 200);
    this.dnsEventDebounce.unref();
  }

  private queueDnsCheck(reason: string): void {
    void this.options.exclusive(() => this.keepDnsOnTunnel(reason)).catch((e) => this.core.logger.error('re-applying DNS failed', { reason, error: messageOf(e) }));
  }

  /**
   * While up, DNS cannot drift off the tunnel: every service whose servers are not ours is
   * set again (configd rewrote it, the user changed it, it is new). A service the snapshot
   * does not know (a USB Ethernet plugged in) is journaled first with its own settings, so
   * that Down — also one finished after a crash — restores it; a service that went away stays
   * in the snapshot (restoring skips services that no longer exist).
   */
  private async keepDnsOnTunnel(reason: string): Promise<void> {
    const { core } = this;
    const j = core.loadJournal();
    if (this.closed || j.phase !== 'up' || !j.dns) return;
    const dns = j.dns;
    const context: DnsContext = { uplink: j.uplink?.interface, vnic: j.vnic?.interface };
    const current = await core.driver.readDns(core.runner, context);
    const { offTunnel, unknown } = servicesOffTunnel(dns, current);
    if (offTunnel.length === 0) return;
    if (unknown.length > 0) {
      // Write-ahead: journaled before it is changed.
      dns.snapshot.services.push(...unknown);
      core.persist(j);
    }
    await core.driver.setDns(core.runner, dns.servers, { ...current, services: offTunnel }, context);
    const services = offTunnel.map((s) => `${s.name} (${unknown.includes(s) ? 'new, journaled with' : 'was'} ${s.servers.join(' ') || 'none set'})`);
    this.options.heals.record({ what: 'dns', detail: services.join(', '), by: '', trigger: reason }, { reason, servers: dns.servers.join(' '), services }, 'DNS re-applied: services had left the tunnel\'s resolvers');
  }

  // ------------------------------------------------------------------------------- backstop

  /** The roaming backstop runs while the monitor is wanted: from its start to a Down or close. */
  private startBackstop(): void {
    if (this.options.backstopMs <= 0 || this.backstop || this.closed) return;
    this.lastRoamCheckFinding = '';
    this.backstop = setInterval(() => this.backstopTick(), this.options.backstopMs);
    this.backstop.unref();
  }

  private stopBackstop(): void {
    if (this.backstop) clearInterval(this.backstop);
    this.backstop = undefined;
  }

  private backstopTick(): void {
    // One check at a time; none beside a requested Up/Down, none while a roam is already due.
    if (this.roamCheckRunning || this.options.operationRunning() || this.debounce || this.closed) return;
    this.roamCheckRunning = true;
    void this.options
      .exclusive(() => this.lookForMissedRoutingChange())
      .catch((e) => this.core.logger.warn('roam check failed', { error: messageOf(e) }))
      .finally(() => {
        this.roamCheckRunning = false;
      });
  }

  /**
   * The backstop's check. `route -n monitor` flushes its output only after messages that carry
   * addresses (route.c print_rtmsg/pmsg_addrs), so a bare RTM_IFINFO can wait in the pipe
   * until the next message: a roam seen late, or not at all. One read of the uplink and of our
   * routes (the routing table read once: SharedReadRunner); anything amiss takes the path an
   * event takes. A finding the roam could not clear (our split routes while the VM is off) is
   * not handed over again every tick: the routing event that changes it will be.
   */
  private async lookForMissedRoutingChange(): Promise<void> {
    const { core } = this;
    const j = core.loadJournal();
    if (this.closed || j.phase !== 'up' || !j.uplink) return;
    const run = new SharedReadRunner(core.runner);
    const [found, routes] = await readTogether([core.driver.discoverUplink(run, { address: false }), j.routes.length ? core.driver.readRoutes(run, j.routes) : Promise.resolve([])]);
    const finding = missedRoutingChange(j, found, routes);
    if (finding === this.lastRoamCheckFinding) return;
    this.lastRoamCheckFinding = finding;
    if (!finding) return;
    core.logger.info('roam check: the routing table changed without a monitor event', { finding });
    this.scheduleRecheck(`roam check: ${finding}`);
  }

  // ----------------------------------------------------------------------------------- roam

  /**
   * After a burst of routing events: re-read the default route; if the gateway or uplink
   * changed, move the kill switch and the server pins to it. Routes of ours that vanished
   * (link flaps take their routes with them) are put back.
   */
  private async runRoam(events: string[], firstEventAt: number, deletedBy: ReadonlyMap<string, string> = new Map()): Promise<void> {
    const { core } = this;
    const j = core.loadJournal();
    if (j.phase !== 'up' || !j.intent || !j.uplink || !j.killSwitch) return;
    const up = j as UpJournal;
    const commands: string[] = [];
    const run = new ObservedRunner(core.runner, (r) => {
      if (!r.argv.includes('-j') && r.argv[0] !== 'cat' && r.argv[0] !== 'readlink') commands.push(formatArgv(r.argv));
    });
    const found = await core.driver.discoverUplink(run);
    if (!found) {
      if (!j.uplinkLost) {
        j.uplinkLost = true;
        core.persist(j);
        core.logger.warn('uplink lost: no default route; the kill switch stays loaded (fail-closed)', { lastUplink: j.uplink.interface, events: events.length });
      }
      return;
    }
    if (!sameUplink(found, j.uplink) || j.uplinkLost) await this.moveToUplink(run, up, found, { commands, firstEventAt });
    await this.repairRoutes(run, up, deletedBy, events.length === 1 ? events[0].slice(0, 160) : `${events.length} routing events`);
  }

  /** The uplink changed (or came back): the kill switch first (fail-closed), then the pins. */
  private async moveToUplink(run: Runner, j: UpJournal, found: Uplink, seen: { commands: string[]; firstEventAt: number }): Promise<void> {
    const { core } = this;
    const persist = () => core.persist(j);
    const old = j.uplink;
    const interfaceChanged = found.interface !== old.interface;
    const policy: KillSwitchPolicy = { ...j.killSwitch.policy, uplink: found.interface, allowDhcp6: Boolean(found.gateway6) };
    // Fail-closed first: the rules hold on every interface, but rules that drifted (or now
    // need DHCPv6) are re-loaded before anything is routed through the new uplink.
    if ((await ensureKillSwitch(core.driver, run, j, policy, { readFirst: true, persist })) === 'kept') {
      j.killSwitch = { policy, handle: j.killSwitch.handle }; // same rules: only the uplink shown changes
      persist();
    }
    // The server pins and the excluded ranges: both via the uplink's gateway.
    const newRoutes: JournalRoute[] = [
      ...pinsFor(j.intent.endpoints, found).map((p) => ({ role: 'pin' as const, ...p })),
      ...(j.intent.killSwitchOnly ? [] : excludeRoutesFor(j.intent.exclude, found).map((x) => ({ role: 'exclude' as const, ...x }))),
    ];
    const oldRoutes = j.routes.filter((r) => viaUplink(r) && !newRoutes.some((p) => sameRoute(p, r)));
    // Same destination, so the old route must go before the new one can be added.
    for (const route of oldRoutes) {
      await core.driver.deleteRoute(run, route);
      j.routes = j.routes.filter((x) => !sameRoute(x, route));
      persist();
    }
    for (const route of newRoutes) {
      if (!route.gateway) {
        core.logger.warn(`IPv6 ${route.role === 'pin' ? 'endpoint not pinned' : 'excluded range left to the tunnel'}: the new uplink has no IPv6 default route`, { destination: route.destination });
        continue;
      }
      if (!j.routes.some((x) => sameRoute(x, route))) j.routes.push(route);
      persist();
      await core.driver.addRoute(run, { destination: route.destination, gateway: route.gateway, interface: route.interface });
    }
    if (interfaceChanged && core.driver.forgetFlows) await core.driver.forgetFlows(run, j.intent.endpoints);
    j.uplink = found;
    j.uplinkLost = false;
    j.lastRoamMs = core.now();
    persist();
    const tookMs = core.now() - seen.firstEventAt;
    this.recordRoam({ atMs: j.lastRoamMs, fromInterface: old.interface, toInterface: found.interface, fromGateway: old.gateway, toGateway: found.gateway, tookMs });
    core.logger.info('roamed: server pinned and kill switch moved to the new uplink', {
      from: `${old.interface} via ${old.gateway}`,
      to: `${found.interface} via ${found.gateway}`,
      tookMs,
      commands: seen.commands,
    });
  }

  private recordRoam(roam: Roam): void {
    this.roamCount += 1;
    this.roams.push(roam);
    if (this.roams.length > KEPT_ROAMS) this.roams.splice(0, this.roams.length - KEPT_ROAMS);
  }

  /** Repairs routes of ours that a link flap removed (the vnic or the uplink went down and up). */
  private async repairRoutes(run: Runner, j: UpJournal, deletedBy: ReadonlyMap<string, string>, trigger: string): Promise<void> {
    const { core } = this;
    const readback = await core.driver.readRoutes(run, j.routes);
    const missing = readback.filter((r) => !r.present);
    if (missing.some((r) => j.routes.some((x) => !viaUplink(x) && x.destination === r.destination)) && (await this.followVnic(run, j))) return;
    for (const route of missing) {
      try {
        await core.driver.addRoute(run, { destination: route.destination, gateway: route.gateway, interface: route.interface });
        const detail = `${route.destination} via ${route.gateway}${route.interface ? ` dev ${route.interface}` : ''} missing`;
        this.options.heals.record({ what: 'route', detail, by: deletedBy.get(route.destination) ?? '', trigger }, {}, 'route restored (deleted, or taken by a link change)');
      } catch (e) {
        core.logger.warn('cannot restore route yet (link down?)', { route: `${route.destination} via ${route.gateway}`, error: messageOf(e) });
      }
    }
  }

  /**
   * The VM came back on another interface (a hypervisor re-creating its bridge): move the split
   * routes and the kill switch's VM interface to it. Returns whether it did.
   */
  private async followVnic(run: Runner, j: MacJournal): Promise<boolean> {
    const { core } = this;
    if (!j.intent || !j.vnic || !j.killSwitch) return false;
    let vnic: Vnic;
    try {
      vnic = await core.driver.discoverVnic(run, j.intent.vmAddress);
    } catch {
      return false; // the VM is not reachable yet; the next link event tries again
    }
    if (vnic.interface === j.vnic.interface) return false;
    const persist = () => core.persist(j);
    const old = j.vnic.interface;
    // The kill switch must let the new interface pass: loaded without a look at the live one.
    await ensureKillSwitch(core.driver, run, j, { ...j.killSwitch.policy, vnic: vnic.interface }, { readFirst: false, persist });
    for (const route of j.routes.filter((r) => !viaUplink(r) && r.interface === old)) {
      const moved: JournalRoute = { ...route, interface: vnic.interface };
      j.routes.push(moved);
      persist();
      await core.driver.addRoute(run, moved);
      await core.driver.deleteRoute(run, route);
      j.routes = j.routes.filter((x) => !sameRoute(x, route));
      persist();
    }
    j.vnic = vnic;
    persist();
    core.logger.info('the VM moved to another interface: split routes and kill switch follow it', { from: old, to: vnic.interface });
    return true;
  }
}
