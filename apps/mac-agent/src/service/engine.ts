/**
 * The mac-agent's engine: Up/Down as named steps over a HostNetworkDriver, the journal that
 * makes Down work after a crash, the roaming loop, and status read-back. Transport-free (the
 * gRPC layer in server.ts maps it to wgctl.v1.MacAgent), so tests drive it in-process.
 *
 * Up, in order (each a step streamed with its argv):
 *   discover      uplink (default route), the vnic facing the VM, the IPv6 decision
 *   kill-switch   load the uplink block (fail-closed from here on)
 *   pin-endpoint  each WireGuard server /32 (/128) via the original gateway — before the /1s
 *   split-routes  0.0.0.0/1 and 128.0.0.0/1 via the VM
 *   ipv6          ::/1 and 8000::/1 via the VM, or IPv6 left blocked on the uplink
 *   dns           resolvers through the tunnel (the previous DNS is journaled first)
 *   remove-stale  routes of an earlier Up that are no longer wanted (changed endpoints…)
 *   verify        routes and kill switch read back and matched
 * Down: restore-dns, remove-routes, unload-kill-switch, verify-clean.
 *
 * While up: routing events (`route -n monitor`, `ip monitor`), and a periodic roam check for
 * events the monitor held back, move the pins and the kill switch to a new uplink and put back
 * routes of ours; after each burst of them DNS is checked (again dnsRecheckMs later) and set
 * again wherever it left the tunnel.
 *
 * All operations (Up, Down, roaming, reconcile, status) run one at a time; a requested Up or
 * Down is refused while another runs (the kit's OperationGate).
 *
 * An Up or Down that has to end early — SIGTERM, or the caller cancelled — ends between two
 * steps with no rollback: whatever the host holds is listed in the journal (up-in-progress,
 * down-in-progress), the kill switch stays as that step left it (fail-closed), and the next
 * Up, Down or start (reconcile) takes it from there.
 */
import ipaddr from 'ipaddr.js';
import type { Logger } from '@wgctl/logging';
import {
  CancelledError,
  GuardedStepRunner,
  InvalidRequestError,
  OperationGate,
  StoppingError,
  stepCause,
  type OperationContext,
  type OperationOutcome,
  type StatusCheck,
} from '@wgctl/agent-kit';
import {
  DryRunRunner,
  ObservedRunner,
  StepFailedError,
  formatArgv,
  spawnStreaming,
  type RunOptions,
  type RunResult,
  type Runner,
  type StepListener,
  type StreamingOptions,
  type StreamingProcess,
  readTogether,
} from '@wgctl/runner';
import type {
  DnsContext,
  DnsSnapshot,
  HostNetworkDriver,
  KillSwitchPolicy,
  KillSwitchStatus,
  RouteReadback,
  RouteSpec,
  Uplink,
  Vnic,
} from '../host/driver';
import { emptyJournal, JournalStore, type Ipv6InEffect, type JournalRoute, type MacJournal, type UpIntent } from './journal';

export type SpawnStreaming = (argv: readonly string[], options: StreamingOptions) => StreamingProcess;

/** A requested Up's or Down's own options: dry run, and the caller's signal (aborted when it went away). */
export interface RequestOptions extends Pick<OperationContext, 'signal'> {
  dryRun?: boolean;
}

export interface EngineOptions {
  driver: HostNetworkDriver;
  runner: Runner;
  journal: JournalStore;
  logger: Logger;
  /** Starts the routing monitor (tests prefix it with `ip netns exec`). */
  spawnMonitor?: SpawnStreaming;
  now?: () => number;
  /** Quiet time after the last routing event before re-reading the table. */
  roamDebounceMs?: number;
  /** Upper bound on that wait while events keep coming. */
  roamMaxWaitMs?: number;
  /**
   * While up, the uplink and our routes are read this often (default 5000, 0: never) and a
   * difference from the journal is handled as an event would be: `route -n monitor` may hold
   * back an event (see lookForMissedRoutingChange).
   */
  roamBackstopMs?: number;
  /**
   * After a routing-event burst DNS is checked at once and again this much later (default
   * 2000, 0: not again): configd rewrites DNS after a network change, possibly after our
   * first look (wg-quick waits 2 s too).
   */
  dnsRecheckMs?: number;
  /** Retry interval of a re-assert that failed (journal says up, host not yet ready). */
  reassertRetryMs?: number;
  /** Test hook: hang after this Up step until the agent is stopped or killed (SIGTERM / kill -9 tests). */
  stallAfterStep?: string;
  /** Checks added to every status that do not decide health (e.g. certificate expiry). */
  advisoryChecks?: () => StatusCheck[];
}

export interface EngineStatus {
  up: boolean;
  phase: MacJournal['phase'];
  intent: UpIntent | null;
  uplink: Uplink | null;
  uplinkLost: boolean;
  vnic: Vnic | null;
  routes: RouteReadback[];
  killSwitch: KillSwitchStatus;
  dns: { servers: string[]; previous: string[]; managed: boolean };
  checks: StatusCheck[];
  healthy: boolean;
  reasons: string[];
  sampledAtMs: number;
  lastRoamMs: number;
  lastError: string;
  /** IPv6 as the last Up applied it (journal); null when not up. */
  ipv6: Ipv6InEffect | null;
}

const IPV4_SPLIT = ['0.0.0.0/1', '128.0.0.0/1'];
const IPV6_SPLIT = ['::/1', '8000::/1'];

function isIp(value: string, family?: 4 | 6): boolean {
  if (!ipaddr.isValid(value)) return false;
  if (family === 4) return ipaddr.IPv4.isValidFourPartDecimal(value);
  if (family === 6) return ipaddr.IPv6.isValid(value);
  return ipaddr.IPv4.isValidFourPartDecimal(value) || ipaddr.IPv6.isValid(value);
}

function canonicalIp(value: string): string {
  return ipaddr.parse(value).toString();
}

/** Bounds of an Up request: more than this is a mistake, not a configuration. */
export const MAX_ENDPOINTS = 16;
export const MAX_DNS_SERVERS = 8;

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** Shows a request value in an error: quoted, cut short (a request can hold anything). */
function shown(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/**
 * Checks an Up request before anything is touched; throws InvalidRequestError naming each bad
 * field as the proto does (vm_address, endpoints[1].ip, dns_servers[0], …).
 */
export function validateIntent(intent: UpIntent): UpIntent {
  const problems: string[] = [];
  if (!isIp(intent.vmAddress, 4)) problems.push(`vm_address: ${shown(intent.vmAddress)} is not an IPv4 address`);
  if (intent.vmAddress6 && !isIp(intent.vmAddress6, 6)) problems.push(`vm_address6: ${shown(intent.vmAddress6)} is not an IPv6 address`);
  if (intent.endpoints.length === 0) problems.push('endpoints: no WireGuard server endpoints given');
  if (intent.endpoints.length > MAX_ENDPOINTS) problems.push(`endpoints: ${intent.endpoints.length} given, at most ${MAX_ENDPOINTS}`);
  intent.endpoints.slice(0, MAX_ENDPOINTS).forEach((e, i) => {
    if (!isIp(e.ip)) problems.push(`endpoints[${i}].ip: ${shown(e.ip)} is not an IP address (resolve names before Up)`);
    if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) problems.push(`endpoints[${i}].port: ${e.port} is not in 1..65535`);
    if (e.host && !isIp(e.host) && !HOST_NAME.test(e.host)) problems.push(`endpoints[${i}].host: ${shown(e.host)} is not a host name or an IP address`);
  });
  if (intent.dnsServers.length > MAX_DNS_SERVERS) problems.push(`dns_servers: ${intent.dnsServers.length} given, at most ${MAX_DNS_SERVERS}`);
  intent.dnsServers.slice(0, MAX_DNS_SERVERS).forEach((server, i) => {
    if (!isIp(server)) problems.push(`dns_servers[${i}]: ${shown(server)} is not an IP address`);
  });
  if (intent.ipv6 === 'route' && !intent.vmAddress6) problems.push('ipv6: route mode needs vm_address6 (the VM\'s IPv6 address on the vnic)');
  if (problems.length) throw new InvalidRequestError(problems);
  return {
    ...intent,
    vmAddress: canonicalIp(intent.vmAddress),
    vmAddress6: intent.vmAddress6 ? canonicalIp(intent.vmAddress6) : undefined,
    endpoints: intent.endpoints.map((e) => ({ ...e, ip: canonicalIp(e.ip) })),
    dnsServers: intent.dnsServers.map(canonicalIp),
  };
}

function hostRoute(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

function sameRoute(a: RouteSpec, b: RouteSpec): boolean {
  return a.destination === b.destination && a.gateway === b.gateway && (a.interface ?? '') === (b.interface ?? '');
}

/** The same next hops out of the same interface (the address on it does not matter for the pins). */
function sameUplink(a: Uplink, b: Uplink): boolean {
  return a.interface === b.interface && a.gateway === b.gateway && (a.gateway6 ?? '') === (b.gateway6 ?? '');
}

/** Whether a DNS service resolves through exactly these servers, in this order. */
function usesServers(service: DnsSnapshot['services'][number], servers: readonly string[]): boolean {
  return service.servers.join(' ') === servers.join(' ');
}

/**
 * The services of `current` that do not resolve through the tunnel's servers, and which of
 * them the snapshot does not know yet (new since the Up: the caller journals them, with their
 * own settings, before changing them, so that Down restores them too).
 */
function servicesOffTunnel(dns: { snapshot: DnsSnapshot; servers: string[] }, current: DnsSnapshot): { offTunnel: DnsSnapshot['services']; unknown: DnsSnapshot['services'] } {
  const offTunnel = current.services.filter((s) => !usesServers(s, dns.servers));
  const known = new Set(dns.snapshot.services.map((s) => s.name));
  return { offTunnel, unknown: offTunnel.filter((s) => !known.has(s.name)) };
}

/**
 * What the roaming backstop found amiss against an up journal, '' when nothing: the uplink
 * (gone, back, or another one), or routes of ours missing. With no uplink nothing can be
 * repaired, so missing routes count only once it is back.
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

/**
 * Runs each distinct read-only command once and hands every later identical read the same
 * result: discoverUplink and readRoutes both read the routing table, and the backstop's tick
 * wants one read of it. Mutating commands always run.
 */
export class SharedReadRunner implements Runner {
  private readonly reads = new Map<string, Promise<RunResult>>();

  constructor(private readonly inner: Runner) {}

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (!options.readOnly || options.input !== undefined) return this.inner.run(argv, options);
    // The options that decide whether a result throws are part of what makes two reads the same.
    const key = JSON.stringify([argv, options.allowFailure ?? false, options.okExitCodes ?? []]);
    let read = this.reads.get(key);
    if (!read) {
      read = this.inner.run(argv, options);
      this.reads.set(key, read);
    }
    return read;
  }
}

function describeDns(snapshot: DnsSnapshot): string {
  const servers = snapshot.services.flatMap((s) => s.servers);
  return servers.length ? servers.join(' ') : 'none set';
}

function messageOf(e: unknown): string {
  const cause = stepCause(e);
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * Runs `fn` once a reply written now has left the process: two turns of the event loop. A
 * gRPC stream's last message and its trailers go out in two (node's http2 sends the data, asks
 * for the trailers, grpc-js hands them over, node sends them on the next turn); anything
 * synchronous and slow before that (spawning processes) delays the end of the call. Measured
 * on loopback, plaintext and TLS: 8 spawns right after call.end() or after one setImmediate
 * added ~15-18 ms to the client's end of call; after two, nothing.
 */
export function afterReplyFlushed(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}

export class MacAgentEngine {
  private readonly driver: HostNetworkDriver;
  private readonly runner: Runner;
  private readonly store: JournalStore;
  private readonly logger: Logger;
  private readonly spawnMonitor: SpawnStreaming;
  private readonly now: () => number;
  private readonly roamDebounceMs: number;
  private readonly roamMaxWaitMs: number;
  private readonly roamBackstopMs: number;
  private readonly dnsRecheckMs: number;
  private readonly reassertRetryMs: number;
  private readonly stallAfterStep?: string;
  private readonly advisoryChecks?: () => StatusCheck[];

  private queue: Promise<unknown> = Promise.resolve();
  /** The requested Up/Down: one at a time, none once stopping. */
  private readonly gate: OperationGate;
  private monitor?: StreamingProcess;
  private monitorWanted = false;
  private monitorRestart?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private firstPendingEventAt = 0;
  private pendingEvents: string[] = [];
  private dnsRecheck?: NodeJS.Timeout;
  private roamBackstop?: NodeJS.Timeout;
  /** A backstop check is queued or running: the next tick is skipped. */
  private roamCheckRunning = false;
  /** What the last backstop check found amiss ('' = nothing): the same finding is not handled twice. */
  private lastRoamCheckFinding = '';
  private retryTimer?: NodeJS.Timeout;
  private closed = false;
  private ownDestinations = new Set<string>();
  /** Roams handled since start (tests and status). */
  readonly roams: { atMs: number; fromInterface: string; toInterface: string; fromGateway: string; toGateway: string; tookMs: number }[] = [];

  constructor(options: EngineOptions) {
    this.driver = options.driver;
    this.runner = options.runner;
    this.store = options.journal;
    this.logger = options.logger;
    this.spawnMonitor = options.spawnMonitor ?? spawnStreaming;
    this.now = options.now ?? Date.now;
    this.roamDebounceMs = options.roamDebounceMs ?? 100;
    this.roamMaxWaitMs = options.roamMaxWaitMs ?? 300;
    this.roamBackstopMs = options.roamBackstopMs ?? 5_000;
    this.dnsRecheckMs = options.dnsRecheckMs ?? 2_000;
    this.reassertRetryMs = options.reassertRetryMs ?? 5_000;
    this.stallAfterStep = options.stallAfterStep;
    this.advisoryChecks = options.advisoryChecks;
    this.gate = new OperationGate('mac-agent', this.now);
  }

  /**
   * SIGTERM: an Up or Down in flight finishes the step it is in and ends there (no rollback:
   * the journal keeps it for the next start); new operations are refused; then close().
   */
  async stop(reason: string): Promise<void> {
    if (!this.gate.stopping) this.logger.info('stopping: an Up or Down in flight finishes its current step', { reason });
    const idle = this.gate.stop(reason);
    await this.close();
    await idle;
  }

  get stopping(): boolean {
    return this.gate.stopping;
  }

  private stepRunner(run: Runner, listener: StepListener, guard: { signal?: AbortSignal; stallAfterStep?: string } = {}): GuardedStepRunner {
    return new GuardedStepRunner(run, listener, { gate: this.gate, logger: this.logger, ...guard });
  }

  get driverName(): string {
    return this.driver.name;
  }

  /** Runs operations one at a time, in call order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.queue.then(fn, fn);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private loadJournal(): MacJournal {
    const journal = this.store.load() ?? emptyJournal(this.driver.name, this.now());
    this.ownDestinations = new Set(journal.routes.map((r) => r.destination));
    return journal;
  }

  private saveJournal(journal: MacJournal): void {
    this.store.save(journal);
    this.ownDestinations = new Set(journal.routes.map((r) => r.destination));
  }

  journal(): MacJournal {
    return this.loadJournal();
  }

  // -------------------------------------------------------------------- reconcile (at start)

  /**
   * On start: if the journal says up (or an Up was interrupted), re-assert it; if a Down was
   * interrupted, finish it. Never throws: failures are logged and retried.
   */
  async reconcile(): Promise<void> {
    let journal: MacJournal;
    try {
      journal = this.loadJournal();
    } catch (e) {
      this.logger.error('cannot read the journal; not reconciling', { error: messageOf(e) });
      return;
    }
    if (journal.phase === 'down-in-progress') {
      this.logger.warn('journal says a Down was interrupted: finishing it');
      const outcome = await this.down({ dryRun: false }, (s) => this.logStep('reconcile-down', s));
      if (!outcome.ok) this.logger.error('finishing the interrupted Down failed', { error: outcome.error, step: outcome.failedStep });
    } else if ((journal.phase === 'up' || journal.phase === 'up-in-progress') && journal.intent) {
      this.logger.info('journal says up: re-asserting', { phase: journal.phase });
      await this.reassert();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.stopMonitor();
    await this.exclusive(async () => undefined);
  }

  private logStep(operation: string, step: Parameters<StepListener>[0]): void {
    if (step.state === 'started') return;
    const level = step.state === 'failed' ? 'warn' : 'info';
    this.logger.log(level, `${operation}: ${step.step} ${step.state}`, {
      message: step.message,
      commands: step.commands.map((c) => formatArgv(c.argv)),
    });
  }

  private async reassert(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const journal = this.loadJournal();
    if (!journal.intent || (journal.phase !== 'up' && journal.phase !== 'up-in-progress')) return;
    const outcome = await this.exclusive(() => this.runUp(journal.intent as UpIntent, { dryRun: false }, (s) => this.logStep('reconcile', s), 'reconcile'));
    if (!outcome.ok && !this.closed) {
      this.logger.warn('re-assert failed; the kill switch stays as it is; retrying', { step: outcome.failedStep, error: outcome.error, retryMs: this.reassertRetryMs });
      this.retryTimer = setTimeout(() => void this.reassert(), this.reassertRetryMs);
      this.retryTimer.unref();
    }
  }

  // ------------------------------------------------------------------------------------- Up

  /**
   * Throws at once, before anything runs: InvalidRequestError, StoppingError, BusyError (another
   * Up or Down runs). `signal`: the caller went away — the Up ends before its next step.
   */
  up(request: UpIntent, options: RequestOptions, listener: StepListener): Promise<OperationOutcome> {
    const intent = validateIntent(request);
    return this.gate.run('Up', () => this.exclusive(() => this.runUp(intent, options, listener, 'request')));
  }

  private async runUp(intent: UpIntent, options: RequestOptions, listener: StepListener, mode: 'request' | 'reconcile'): Promise<OperationOutcome> {
    const started = this.now();
    const driver = this.driver;
    const dryRun = options.dryRun ?? false;
    const run: Runner = dryRun ? new DryRunRunner(this.runner) : this.runner;
    const steps = this.stepRunner(run, listener, { signal: options.signal, stallAfterStep: this.stallAfterStep });
    const previous = this.loadJournal();
    const j: MacJournal = JSON.parse(JSON.stringify(previous)) as MacJournal;
    const persist = () => {
      if (dryRun) return;
      j.updatedAtMs = this.now();
      this.saveJournal(j);
    };
    let changedAnything = false;
    let uplink!: Uplink;
    let vnic!: Vnic;
    let ipv6!: Ipv6InEffect;

    try {
      await steps.step('discover', async (r) => {
        // The uplink and the vnic are found independently: read both at once, judge after.
        const [found, vnicFound] = await Promise.allSettled([driver.discoverUplink(r), driver.discoverVnic(r, intent.vmAddress)]);
        if (found.status === 'rejected') throw found.reason;
        if (found.value) uplink = found.value;
        else if (mode === 'reconcile' && previous.uplink) {
          // Offline while re-asserting: keep the kill switch on the last known uplink.
          uplink = previous.uplink;
          j.uplinkLost = true;
        } else {
          throw new Error('no default route: connect to a network first (the WireGuard server is pinned through the current gateway)');
        }
        if (vnicFound.status === 'rejected') throw vnicFound.reason;
        vnic = vnicFound.value;
        if (vnic.interface === uplink.interface) {
          throw new Error(`the VM (${intent.vmAddress}) is reached through the uplink ${uplink.interface}: use a shared or host-only VM network, not a bridged one`);
        }
        if (intent.ipv6 === 'route' && !vnic.address6) throw new Error(`ipv6 route mode: ${vnic.interface} has no global IPv6 address facing the VM`);
        ipv6 = intent.ipv6 === 'route' || (intent.ipv6 === 'auto' && vnic.address6 && intent.vmAddress6) ? 'route' : 'block';
        for (const e of intent.endpoints) {
          if (e.ip.includes(':') && !uplink.gateway6) throw new Error(`endpoint ${e.ip} is IPv6 but the uplink ${uplink.interface} has no IPv6 default route`);
        }
        return `uplink ${uplink.interface} via ${uplink.gateway}${j.uplinkLost ? ' (last known; no default route now)' : ''}; VM ${intent.vmAddress} on ${vnic.interface} (host ${vnic.address}); IPv6 ${ipv6 === 'route' ? `routed via ${intent.vmAddress6}` : 'blocked on the uplink'}`;
      });

      const policy: KillSwitchPolicy = {
        uplink: uplink.interface,
        endpoints: intent.endpoints.map(({ ip, port }) => ({ ip, port })),
        vnic: vnic.interface,
        vmAddress: intent.vmAddress,
        allowDhcp6: Boolean(uplink.gateway6),
        blockIpv6: ipv6 === 'block',
      };
      j.phase = 'up-in-progress';
      j.intent = intent;
      j.uplink = uplink;
      j.vnic = vnic;
      j.ipv6 = ipv6;
      j.lastError = '';
      j.killSwitch = { policy, handle: previous.killSwitch?.handle ?? null };
      persist();
      changedAnything = true;

      await steps.step('kill-switch', async (r) => {
        // Reading the live kill switch only serves to skip re-loading one of ours that is in
        // force and matching (a re-Up, a reconcile). With none in the journal (a first Up) it
        // is loaded straight away: both drivers replace their table/anchor atomically, so a
        // leftover one is replaced, never doubled or merged.
        if (previous.killSwitch) {
          const live = await driver.readKillSwitch(r, policy, j.killSwitch?.handle ?? undefined);
          if (live.loaded && live.enabled && live.problems.length === 0) return { skipped: 'already loaded and matching' };
        }
        const handle = await driver.loadKillSwitch(r, policy, j.killSwitch?.handle ?? undefined);
        j.killSwitch = { policy, handle };
        persist();
        return `loaded on every interface but lo and ${policy.vnic}: only UDP to ${policy.endpoints.map((e) => `${e.ip}:${e.port}`).join(', ')} and DHCP may pass (uplink ${policy.uplink})`;
      });

      const pins: RouteSpec[] = intent.endpoints.map((e) => ({
        destination: hostRoute(e.ip),
        gateway: e.ip.includes(':') ? (uplink.gateway6 as string) : uplink.gateway,
        interface: uplink.interface,
      }));
      const split: RouteSpec[] = IPV4_SPLIT.map((destination) => ({ destination, gateway: intent.vmAddress, interface: vnic.interface }));
      const split6: RouteSpec[] =
        ipv6 === 'route' ? IPV6_SPLIT.map((destination) => ({ destination, gateway: intent.vmAddress6 as string, interface: vnic.interface })) : [];

      const wanted = [...pins, ...split, ...split6];
      // The routing table is read once per Up, by the first route step, for every route it
      // wants: adding a pin does not change whether a split route is there, and vice versa.
      let routesBefore: RouteReadback[] | undefined;
      const ensure = async (r: Runner, role: JournalRoute['role'], specs: RouteSpec[]): Promise<number> => {
        routesBefore ??= await driver.readRoutes(r, wanted);
        const readback = specs.map((spec) => routesBefore!.find((x) => sameRoute(x, spec))!);
        let added = 0;
        for (const spec of readback.filter((x) => !x.present)) {
          const route: RouteSpec = { destination: spec.destination, gateway: spec.gateway, interface: spec.interface };
          // Write-ahead: listed before it exists, so a crash right after still gets it removed.
          if (!j.routes.some((x) => sameRoute(x, route))) j.routes.push({ role, ...route });
          persist();
          await driver.addRoute(r, route);
          added++;
        }
        return added;
      };

      await steps.step('pin-endpoint', async (r) => {
        const added = await ensure(r, 'pin', pins);
        const what = pins.map((p) => p.destination).join(', ');
        return added ? `pinned ${what} via ${uplink.gateway} dev ${uplink.interface}` : { skipped: `${what} already pinned via ${uplink.gateway}` };
      });

      await steps.step('split-routes', async (r) => {
        const added = await ensure(r, 'split', split);
        return added ? `0.0.0.0/1 and 128.0.0.0/1 via ${intent.vmAddress} dev ${vnic.interface}` : { skipped: 'split routes already in place' };
      });

      await steps.step('ipv6', async (r) => {
        if (ipv6 === 'block') return 'no IPv6 route via the VM: the kill switch drops IPv6 on every interface but the VM\'s';
        const added = await ensure(r, 'split6', split6);
        return added ? `::/1 and 8000::/1 via ${intent.vmAddress6} dev ${vnic.interface}` : { skipped: 'IPv6 split routes already in place' };
      });

      await steps.step('dns', async (r) => {
        const context: DnsContext = { uplink: uplink.interface, vnic: vnic.interface };
        if (intent.dnsServers.length === 0) {
          if (j.dns) {
            await driver.restoreDns(r, j.dns.snapshot);
            const was = describeDns(j.dns.snapshot);
            j.dns = null;
            persist();
            return `no DNS servers requested: restored the previous DNS (${was})`;
          }
          return { skipped: 'no DNS servers requested: DNS left as it is' };
        }
        let current: DnsSnapshot;
        if (!j.dns) {
          // Snapshot once: a re-Up must not mistake our own DNS for the user's.
          current = await driver.readDns(r, context);
          j.dns = { snapshot: current, servers: intent.dnsServers };
          persist();
        } else {
          j.dns.servers = intent.dnsServers;
          persist();
          current = await driver.readDns(r, context);
        }
        const wanted = intent.dnsServers.join(' ');
        const { offTunnel, unknown } = servicesOffTunnel(j.dns, current);
        if (current.services.length > 0 && offTunnel.length === 0) return { skipped: `DNS already ${wanted}` };
        if (unknown.length > 0) {
          // A service that appeared since the snapshot (e.g. while the agent was down): journaled first.
          j.dns.snapshot.services.push(...unknown);
          persist();
        }
        // Only what is off the tunnel is set (all of the snapshot's when nothing could be listed).
        const services = current.services.length > 0 ? offTunnel : j.dns.snapshot.services;
        await driver.setDns(r, intent.dnsServers, { ...j.dns.snapshot, services }, context);
        return `DNS → ${wanted} (previous: ${describeDns(j.dns.snapshot)})`;
      });

      const stale = j.routes.filter((x) => !wanted.some((w) => sameRoute(w, x)));
      if (stale.length) {
        await steps.step('remove-stale', async (r) => {
          for (const route of stale) {
            await driver.deleteRoute(r, route);
            j.routes = j.routes.filter((x) => !sameRoute(x, route));
            persist();
          }
          return `removed routes of an earlier Up: ${stale.map((s) => `${s.destination} via ${s.gateway}`).join(', ')}`;
        });
      }

      await steps.step('verify', async (r) => {
        if (dryRun) return { skipped: 'dry run: nothing to verify' };
        const [routes, ks] = await readTogether([driver.readRoutes(r, wanted), driver.readKillSwitch(r, policy, j.killSwitch?.handle ?? undefined)]);
        const missing = routes.filter((x) => !x.present);
        const problems = [
          ...missing.map((m) => `route ${m.destination} via ${m.gateway} missing${m.evidence ? ` (table has: ${m.evidence})` : ''}`),
          ...ks.problems.map((p) => `kill switch: ${p}`),
        ];
        if (problems.length) throw new Error(problems.join('; '));
        return `${routes.length} routes and ${ks.rules.length} kill-switch rules read back`;
      });

      j.phase = 'up';
      persist();
      if (!dryRun) this.startMonitorSoon();
      return { ok: true, failedStep: '', error: '', totalMs: this.now() - started };
    } catch (e) {
      const ended = this.endedBetweenSteps('Up', e, started, changedAnything ? { journal: j, persist } : undefined);
      if (ended) return ended;
      const failedStep = e instanceof StepFailedError ? e.step : '';
      const error = messageOf(e);
      if (dryRun) return { ok: false, failedStep, error, totalMs: this.now() - started };
      if (mode === 'reconcile' && !changedAnything) {
        // E.g. at boot before the VM is up: keep (or put back) the last kill switch.
        previous.lastError = `${failedStep}: ${error}`;
        previous.updatedAtMs = this.now();
        this.saveJournal(previous);
        await this.holdKillSwitch(previous);
        return { ok: false, failedStep, error, totalMs: this.now() - started };
      }
      if (!changedAnything) return { ok: false, failedStep, error, totalMs: this.now() - started };
      if (mode === 'reconcile') {
        // The user asked for up: stay fail-closed and retry, never fall open.
        j.lastError = `${failedStep}: ${error}`;
        persist();
        await this.holdKillSwitch(j);
        return { ok: false, failedStep, error, totalMs: this.now() - started };
      }
      // An Up the caller asked for leaves nothing half-applied: undo everything.
      this.logger.warn('up failed: rolling back', { step: failedStep, error });
      const rollback = await this.runDown({ dryRun: false }, (s) => listener({ ...s, step: `rollback-${s.step}` }));
      const suffix = rollback.ok ? ' (rolled back)' : ` (rollback failed at ${rollback.failedStep}: ${rollback.error})`;
      return { ok: false, failedStep, error: error + suffix, totalMs: this.now() - started };
    }
  }

  /**
   * An Up or Down that ended between two steps because the agent stops or the caller went
   * away: no rollback — the journal (up-/down-in-progress) lists what the host holds and the
   * kill switch stays as the last step left it (fail-closed); the next Up, Down or start takes
   * it from there. A cancel is also noted in the journal's lastError (`changed`: the journal the
   * operation wrote, when it wrote one), so that Status says why the host is half-way while the
   * agent runs on. Null for any other failure.
   */
  private endedBetweenSteps(
    op: 'Up' | 'Down',
    e: unknown,
    started: number,
    changed?: { journal: MacJournal; persist: () => void },
  ): OperationOutcome | null {
    if (!(e instanceof StoppingError || e instanceof CancelledError)) return null;
    const failedStep = e.beforeStep ?? '';
    const why = e instanceof StoppingError ? `the agent is stopping (${e.reason})` : 'the caller went away';
    this.logger.warn(`${op} ended between steps: ${why}; the journal keeps what was applied`, { before: failedStep });
    const error =
      e instanceof CancelledError
        ? `${e.message}; nothing was rolled back: the journal keeps what was applied (fail-closed) — run \`wgctl up\` to finish or \`wgctl down\` to undo`
        : e.message;
    if (e instanceof CancelledError && changed) {
      changed.journal.lastError = `${failedStep}: ${error}`;
      changed.persist();
    }
    return { ok: false, failedStep, error, totalMs: this.now() - started };
  }

  /** Re-asserting failed: make sure the journaled kill switch is loaded (after a reboot it is not). */
  private async holdKillSwitch(journal: MacJournal): Promise<void> {
    if (!journal.killSwitch) return;
    try {
      const live = await this.driver.readKillSwitch(this.runner, journal.killSwitch.policy, journal.killSwitch.handle ?? undefined);
      if (live.loaded && live.enabled && live.problems.length === 0) return;
      const handle = await this.driver.loadKillSwitch(this.runner, journal.killSwitch.policy, journal.killSwitch.handle ?? undefined);
      journal.killSwitch = { policy: journal.killSwitch.policy, handle };
      journal.updatedAtMs = this.now();
      this.saveJournal(journal);
      this.logger.warn('kill switch re-loaded from the journal while the rest cannot be re-asserted (fail-closed)', { uplink: journal.killSwitch.policy.uplink });
    } catch (e) {
      this.logger.error('cannot load the journaled kill switch', { error: messageOf(e) });
    }
  }

  // ----------------------------------------------------------------------------------- Down

  /** Throws at once when stopping or busy (see up()); `signal`: the Down ends before its next step. */
  down(options: RequestOptions, listener: StepListener): Promise<OperationOutcome> {
    return this.gate.run('Down', () => this.exclusive(() => this.runDown(options, listener)));
  }

  private async runDown(options: RequestOptions, listener: StepListener): Promise<OperationOutcome> {
    const started = this.now();
    const driver = this.driver;
    const dryRun = options.dryRun ?? false;
    const run: Runner = dryRun ? new DryRunRunner(this.runner) : this.runner;
    const steps = this.stepRunner(run, listener, { signal: options.signal });
    const j = this.loadJournal();
    const persist = () => {
      if (dryRun) return;
      j.updatedAtMs = this.now();
      this.saveJournal(j);
    };
    if (!dryRun) {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      await this.stopMonitor();
      j.phase = 'down-in-progress';
      persist();
    }
    const removed: RouteSpec[] = [];
    try {
      await steps.step('restore-dns', async (r) => {
        if (!j.dns) return { skipped: 'DNS was not changed' };
        await driver.restoreDns(r, j.dns.snapshot);
        const was = describeDns(j.dns.snapshot);
        j.dns = null;
        persist();
        return `restored DNS (${was})`;
      });

      await steps.step('remove-routes', async (r) => {
        if (j.routes.length === 0) return { skipped: 'no routes of ours in the journal' };
        // Split routes first, pins last: traffic never falls back to the uplink unblocked.
        const order: JournalRoute['role'][] = ['split6', 'split', 'pin'];
        const routes = [...j.routes].sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role));
        for (const route of routes) {
          const spec: RouteSpec = { destination: route.destination, gateway: route.gateway, interface: route.interface };
          await driver.deleteRoute(r, spec);
          removed.push(spec);
          j.routes = j.routes.filter((x) => !sameRoute(x, spec));
          persist();
        }
        return `removed ${routes.map((x) => x.destination).join(', ')}`;
      });

      await steps.step('unload-kill-switch', async (r) => {
        const live = await driver.readKillSwitch(r, undefined, j.killSwitch?.handle ?? undefined);
        if (!live.loaded && !j.killSwitch) return { skipped: 'kill switch not loaded' };
        await driver.unloadKillSwitch(r, j.killSwitch?.handle ?? {});
        j.killSwitch = null;
        persist();
        return 'kill switch unloaded';
      });

      await steps.step('verify-clean', async (r) => {
        if (dryRun) return { skipped: 'dry run: nothing to verify' };
        const [readback, ks] = await readTogether([removed.length ? driver.readRoutes(r, removed) : Promise.resolve([]), driver.readKillSwitch(r)]);
        const left = readback.filter((x) => x.present);
        const problems = [...left.map((x) => `route still present: ${x.evidence}`), ...(ks.loaded ? ['kill switch still loaded'] : [])];
        if (problems.length) throw new Error(problems.join('; '));
        return 'nothing of ours left';
      });

      const fresh = emptyJournal(this.driver.name, this.now());
      fresh.lastRoamMs = j.lastRoamMs;
      Object.assign(j, fresh);
      persist();
      return { ok: true, failedStep: '', error: '', totalMs: this.now() - started };
    } catch (e) {
      const ended = this.endedBetweenSteps('Down', e, started, { journal: j, persist });
      if (ended) return ended;
      const failedStep = e instanceof StepFailedError ? e.step : '';
      const error = messageOf(e);
      if (!dryRun) {
        j.lastError = `${failedStep}: ${error}`;
        persist();
      }
      return { ok: false, failedStep, error, totalMs: this.now() - started };
    }
  }

  // -------------------------------------------------------------------------------- roaming

  /**
   * After an Up: the monitor is wanted now but spawned (node's spawn is a synchronous fork/exec)
   * only once the caller has sent the outcome on (see afterReplyFlushed).
   */
  private startMonitorSoon(): void {
    this.monitorWanted = true;
    afterReplyFlushed(() => {
      if (this.monitorWanted) this.startMonitor();
    });
  }

  private startMonitor(): void {
    this.monitorWanted = true;
    if (this.monitor || this.closed) return;
    const argv = this.driver.monitorArgv();
    const proc = this.spawnMonitor(argv, {
      onLine: (line) => this.onMonitorLine(line),
      onExit: (exit) => {
        if (this.monitor === proc) this.monitor = undefined;
        if (this.monitorWanted && !this.closed) {
          this.logger.warn('routing monitor exited; restarting', { argv: formatArgv(argv), code: exit.code, signal: exit.signal, error: exit.error, stderr: proc.stderrTail().join(' | ') });
          this.monitorRestart = setTimeout(() => {
            this.startMonitor();
          }, 1_000);
          this.monitorRestart.unref();
        }
      },
    });
    this.monitor = proc;
    this.logger.info('watching routing changes', { argv: formatArgv(argv), pid: proc.pid, roamCheckMs: this.roamBackstopMs });
    this.startRoamBackstop();
    // A change after the last read (verify's, or before a restart) and before the monitor
    // listened would go unseen: one re-check once it runs.
    this.scheduleRecheck('monitor started');
  }

  private async stopMonitor(): Promise<void> {
    this.monitorWanted = false;
    if (this.monitorRestart) clearTimeout(this.monitorRestart);
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
    if (this.dnsRecheck) clearTimeout(this.dnsRecheck);
    this.dnsRecheck = undefined;
    this.stopRoamBackstop();
    const proc = this.monitor;
    this.monitor = undefined;
    if (proc) await proc.stop(500);
  }

  /** Whether the monitor is running (tests). */
  get watching(): boolean {
    return this.monitor !== undefined;
  }

  /** From the last journal read or written: no file read per monitor line. */
  private isOwnRoute(destination: string): boolean {
    return this.ownDestinations.has(destination);
  }

  private onMonitorLine(line: string): void {
    const change = this.driver.classifyMonitorEvent(line);
    const ownDeleted = change.deleted === true && change.destination !== undefined && this.isOwnRoute(change.destination);
    if (change.kind === 'other' && !ownDeleted) return;
    // Our own routes echo back through the monitor; adding them is not a network change
    // (their deletion is: a link flap or someone else removed them, so they are put back).
    if (change.destination && !change.deleted && this.isOwnRoute(change.destination)) return;
    this.logger.debug('routing event', { kind: change.kind, line: change.line });
    this.scheduleRecheck(change.line);
  }

  private scheduleRecheck(trigger: string): void {
    if (this.closed) return;
    const now = this.now();
    if (this.pendingEvents.length === 0) this.firstPendingEventAt = now;
    this.pendingEvents.push(trigger);
    if (this.debounce) clearTimeout(this.debounce);
    const waited = now - this.firstPendingEventAt;
    const delay = Math.max(0, Math.min(this.roamDebounceMs, this.roamMaxWaitMs - waited));
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      const events = this.pendingEvents;
      const firstAt = this.firstPendingEventAt;
      this.pendingEvents = [];
      void this.exclusive(() => this.runRoam(events, firstAt)).catch((e) => {
        this.lastRoamCheckFinding = ''; // a roam that failed is looked at again by the next roam check
        this.logger.error('roaming failed', { error: messageOf(e) });
      });
      this.checkDnsNowAndLater();
    }, delay);
  }

  /** After a routing-event burst (once the roam is done): DNS now, and once more dnsRecheckMs later. */
  private checkDnsNowAndLater(): void {
    this.queueDnsCheck('after routing events');
    if (this.dnsRecheckMs <= 0) return;
    // One pending follow-up: a later burst moves it, it does not add another.
    if (this.dnsRecheck) clearTimeout(this.dnsRecheck);
    this.dnsRecheck = setTimeout(() => {
      this.dnsRecheck = undefined;
      this.queueDnsCheck(`${this.dnsRecheckMs} ms after routing events`);
    }, this.dnsRecheckMs);
    this.dnsRecheck.unref();
  }

  private queueDnsCheck(reason: string): void {
    void this.exclusive(() => this.keepDnsOnTunnel(reason)).catch((e) => this.logger.error('re-applying DNS failed', { reason, error: messageOf(e) }));
  }

  /**
   * While up, DNS cannot drift off the tunnel: every service whose servers are not ours is
   * set again (configd rewrote it, the user changed it, it is new). A service the snapshot
   * does not know (a USB Ethernet plugged in) is journaled first with its own settings, so
   * that Down — also one finished after a crash — restores it; a service that went away stays
   * in the snapshot (restoring skips services that no longer exist).
   */
  private async keepDnsOnTunnel(reason: string): Promise<void> {
    const j = this.loadJournal();
    if (this.closed || j.phase !== 'up' || !j.dns) return;
    const dns = j.dns;
    const context: DnsContext = { uplink: j.uplink?.interface, vnic: j.vnic?.interface };
    const current = await this.driver.readDns(this.runner, context);
    const { offTunnel, unknown } = servicesOffTunnel(dns, current);
    if (offTunnel.length === 0) return;
    if (unknown.length > 0) {
      // Write-ahead: journaled before it is changed.
      dns.snapshot.services.push(...unknown);
      j.updatedAtMs = this.now();
      this.saveJournal(j);
    }
    await this.driver.setDns(this.runner, dns.servers, { ...current, services: offTunnel }, context);
    this.logger.info('DNS re-applied: services had left the tunnel\'s resolvers', {
      reason,
      servers: dns.servers.join(' '),
      services: offTunnel.map((s) => `${s.name} (${unknown.includes(s) ? 'new, journaled with' : 'was'} ${s.servers.join(' ') || 'none set'})`),
    });
  }

  /** The roaming backstop runs while the monitor is wanted: from its start to a Down or close. */
  private startRoamBackstop(): void {
    if (this.roamBackstopMs <= 0 || this.roamBackstop || this.closed) return;
    this.lastRoamCheckFinding = '';
    this.roamBackstop = setInterval(() => this.roamBackstopTick(), this.roamBackstopMs);
    this.roamBackstop.unref();
  }

  private stopRoamBackstop(): void {
    if (this.roamBackstop) clearInterval(this.roamBackstop);
    this.roamBackstop = undefined;
  }

  private roamBackstopTick(): void {
    // One check at a time; none beside a requested Up/Down, none while a roam is already due.
    if (this.roamCheckRunning || this.gate.running || this.debounce || this.closed) return;
    this.roamCheckRunning = true;
    void this.exclusive(() => this.lookForMissedRoutingChange())
      .catch((e) => this.logger.warn('roam check failed', { error: messageOf(e) }))
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
    const j = this.loadJournal();
    if (this.closed || j.phase !== 'up' || !j.uplink) return;
    const run = new SharedReadRunner(this.runner);
    const [found, routes] = await readTogether([
      this.driver.discoverUplink(run),
      j.routes.length ? this.driver.readRoutes(run, j.routes) : Promise.resolve([]),
    ]);
    const finding = missedRoutingChange(j, found, routes);
    if (finding === this.lastRoamCheckFinding) return;
    this.lastRoamCheckFinding = finding;
    if (!finding) return;
    this.logger.info('roam check: the routing table changed without a monitor event', { finding });
    this.scheduleRecheck(`roam check: ${finding}`);
  }

  /**
   * After a burst of routing events: re-read the default route; if the gateway or uplink
   * changed, move the kill switch and the server pins to it. Routes of ours that vanished
   * (link flaps take their routes with them) are put back.
   */
  private async runRoam(events: string[], firstEventAt: number): Promise<void> {
    const j = this.loadJournal();
    if (j.phase !== 'up' || !j.intent || !j.uplink || !j.killSwitch) return;
    const commands: string[] = [];
    const run = new ObservedRunner(this.runner, (r) => {
      if (!r.argv.includes('-j') && r.argv[0] !== 'cat' && r.argv[0] !== 'readlink') commands.push(formatArgv(r.argv));
    });
    const persist = () => {
      j.updatedAtMs = this.now();
      this.saveJournal(j);
    };
    const found = await this.driver.discoverUplink(run);
    if (!found) {
      if (!j.uplinkLost) {
        j.uplinkLost = true;
        persist();
        this.logger.warn('uplink lost: no default route; the kill switch stays loaded (fail-closed)', { lastUplink: j.uplink.interface, events: events.length });
      }
      return;
    }
    const old = j.uplink;
    const interfaceChanged = found.interface !== old.interface;
    if (!sameUplink(found, old) || j.uplinkLost) {
      const policy: KillSwitchPolicy = { ...j.killSwitch.policy, uplink: found.interface, allowDhcp6: Boolean(found.gateway6) };
      const live = await this.driver.readKillSwitch(run, policy, j.killSwitch.handle ?? undefined);
      if (!(live.loaded && live.enabled && live.problems.length === 0)) {
        // Fail-closed first: the rules hold on every interface, but rules that drifted (or now
        // need DHCPv6) are re-loaded before anything is routed through the new uplink.
        const handle = await this.driver.loadKillSwitch(run, policy, j.killSwitch.handle ?? undefined);
        j.killSwitch = { policy, handle };
      } else j.killSwitch = { policy, handle: j.killSwitch.handle }; // same rules: only the uplink shown changes
      persist();
      const newPins: RouteSpec[] = j.intent.endpoints.map((e) => ({
        destination: hostRoute(e.ip),
        gateway: e.ip.includes(':') ? (found.gateway6 ?? '') : found.gateway,
        interface: found.interface,
      }));
      const oldPins = j.routes.filter((r) => r.role === 'pin' && !newPins.some((p) => sameRoute(p, r)));
      // Same destination, so the old pin must go before the new one can be added.
      for (const pin of oldPins) {
        await this.driver.deleteRoute(run, pin);
        j.routes = j.routes.filter((x) => !sameRoute(x, pin));
        persist();
      }
      for (const pin of newPins) {
        if (!pin.gateway) {
          this.logger.warn('IPv6 endpoint not pinned: the new uplink has no IPv6 default route', { endpoint: pin.destination });
          continue;
        }
        if (!j.routes.some((x) => sameRoute(x, pin))) j.routes.push({ role: 'pin', ...pin });
        persist();
        await this.driver.addRoute(run, pin);
      }
      if (interfaceChanged && this.driver.forgetFlows) await this.driver.forgetFlows(run, j.intent.endpoints);
      j.uplink = found;
      j.uplinkLost = false;
      j.lastRoamMs = this.now();
      persist();
      const tookMs = this.now() - firstEventAt;
      this.roams.push({ atMs: j.lastRoamMs, fromInterface: old.interface, toInterface: found.interface, fromGateway: old.gateway, toGateway: found.gateway, tookMs });
      this.logger.info('roamed: server pinned and kill switch moved to the new uplink', {
        from: `${old.interface} via ${old.gateway}`,
        to: `${found.interface} via ${found.gateway}`,
        tookMs,
        commands,
      });
    }
    // Repair routes of ours that a link flap removed (the vnic or the uplink went down and up).
    const readback = await this.driver.readRoutes(run, j.routes);
    const missing = readback.filter((r) => !r.present);
    if (missing.some((r) => j.routes.some((x) => x.role !== 'pin' && x.destination === r.destination)) && (await this.followVnic(run, j))) return;
    for (const route of missing) {
      try {
        await this.driver.addRoute(run, { destination: route.destination, gateway: route.gateway, interface: route.interface });
        this.logger.info('route restored after a link change', { route: `${route.destination} via ${route.gateway}` });
      } catch (e) {
        this.logger.warn('cannot restore route yet (link down?)', { route: `${route.destination} via ${route.gateway}`, error: messageOf(e) });
      }
    }
  }

  /**
   * The VM came back on another interface (a hypervisor re-creating its bridge): move the split
   * routes and the kill switch's VM interface to it. Returns whether it did.
   */
  private async followVnic(run: Runner, j: MacJournal): Promise<boolean> {
    if (!j.intent || !j.vnic || !j.killSwitch) return false;
    let vnic: Vnic;
    try {
      vnic = await this.driver.discoverVnic(run, j.intent.vmAddress);
    } catch {
      return false; // the VM is not reachable yet; the next link event tries again
    }
    if (vnic.interface === j.vnic.interface) return false;
    const persist = () => {
      j.updatedAtMs = this.now();
      this.saveJournal(j);
    };
    const old = j.vnic.interface;
    const policy: KillSwitchPolicy = { ...j.killSwitch.policy, vnic: vnic.interface };
    j.killSwitch = { policy, handle: await this.driver.loadKillSwitch(run, policy, j.killSwitch.handle ?? undefined) };
    persist();
    for (const route of j.routes.filter((r) => r.role !== 'pin' && r.interface === old)) {
      const moved: JournalRoute = { ...route, interface: vnic.interface };
      j.routes.push(moved);
      persist();
      await this.driver.addRoute(run, moved);
      await this.driver.deleteRoute(run, route);
      j.routes = j.routes.filter((x) => !sameRoute(x, route));
      persist();
    }
    j.vnic = vnic;
    persist();
    this.logger.info('the VM moved to another interface: split routes and kill switch follow it', { from: old, to: vnic.interface });
    return true;
  }

  // --------------------------------------------------------------------------------- status

  /** Reads the live state back and judges it. Spawns commands: call from the sampler or Status. */
  status(): Promise<EngineStatus> {
    return this.exclusive(() => this.collectStatus());
  }

  private async collectStatus(): Promise<EngineStatus> {
    const j = this.loadJournal();
    const run = this.runner;
    const checks: StatusCheck[] = [];
    const up = j.phase === 'up';
    const policy = j.killSwitch?.policy;
    // Independent reads, run side by side: a Status that has to sample answers sooner.
    const [uplink, killSwitch, routes, dnsRead] = await Promise.all([
      this.driver.discoverUplink(run),
      this.driver.readKillSwitch(run, up ? policy : undefined, j.killSwitch?.handle ?? undefined),
      j.routes.length ? this.driver.readRoutes(run, j.routes) : Promise.resolve([]),
      // The DNS context names the journal's uplink: the live one is being read at the same time.
      this.driver.readDns(run, { uplink: j.uplink?.interface, vnic: j.vnic?.interface }).then(
        (snapshot) => ({ snapshot }),
        (e: unknown) => ({ error: messageOf(e) }),
      ),
    ]);
    let dnsNow: DnsSnapshot = { services: [] };
    if ('snapshot' in dnsRead) dnsNow = dnsRead.snapshot;
    else checks.push({ name: 'dns-readable', ok: false, detail: dnsRead.error, evidence: [] });
    const dnsServers = [...new Set(dnsNow.services.flatMap((s) => s.servers))];

    if (up || j.phase === 'up-in-progress') {
      checks.push({
        name: 'uplink',
        ok: uplink !== null,
        detail: uplink ? `${uplink.interface} via ${uplink.gateway}` : 'no default route (fail-closed: the kill switch stays loaded)',
        evidence: [],
      });
      if (uplink && j.uplink) {
        const same = uplink.interface === j.uplink.interface && uplink.gateway === j.uplink.gateway;
        checks.push({
          name: 'pinned-uplink-current',
          ok: same,
          detail: same ? `server pinned via the current gateway ${uplink.gateway}` : `pinned via ${j.uplink.interface}/${j.uplink.gateway} but the default is now ${uplink.interface}/${uplink.gateway} (roaming pending)`,
          evidence: [],
        });
      }
      const missing = routes.filter((r) => !r.present);
      checks.push({
        name: 'routes',
        ok: routes.length > 0 && missing.length === 0,
        detail: missing.length ? `missing: ${missing.map((m) => `${m.destination} via ${m.gateway}`).join(', ')}` : `${routes.length} routes present`,
        evidence: routes.map((r) => r.evidence).filter(Boolean),
      });
      checks.push({
        name: 'kill-switch',
        ok: killSwitch.loaded && killSwitch.enabled && killSwitch.problems.length === 0,
        detail: killSwitch.problems.length ? killSwitch.problems.join('; ') : `loaded on ${killSwitch.interface ?? '?'}, ${killSwitch.rules.length} rules match the policy`,
        evidence: killSwitch.rules,
      });
      if (j.dns) {
        const dns = j.dns;
        const wanted = dns.servers.join(' ');
        const ok = dnsNow.services.length > 0 && dnsNow.services.every((s) => usesServers(s, dns.servers));
        checks.push({ name: 'dns', ok, detail: ok ? `DNS is ${wanted}` : `DNS should be ${wanted}, is ${dnsServers.join(' ') || 'none'}`, evidence: dnsServers });
      }
      if (j.lastError) checks.push({ name: 'last-operation', ok: false, detail: j.lastError, evidence: [] });
    } else {
      checks.push({
        name: 'kill-switch-absent',
        ok: !killSwitch.loaded,
        detail: killSwitch.loaded ? 'a kill switch is loaded while down: run Down to remove it' : 'no kill switch loaded',
        evidence: killSwitch.rules,
      });
      if (j.lastError) checks.push({ name: 'last-operation', ok: false, detail: j.lastError, evidence: [] });
    }
    const reasons = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    // Advisory checks (certificate expiry): shown in Status, without turning health red.
    checks.push(...(this.advisoryChecks?.() ?? []));
    return {
      up,
      phase: j.phase,
      intent: j.intent,
      uplink,
      uplinkLost: j.uplinkLost,
      vnic: j.vnic,
      routes,
      killSwitch,
      dns: { servers: dnsServers, previous: j.dns ? j.dns.snapshot.services.flatMap((s) => s.servers) : [], managed: j.dns !== null },
      checks,
      healthy: reasons.length === 0,
      reasons,
      sampledAtMs: this.now(),
      lastRoamMs: j.lastRoamMs,
      lastError: j.lastError,
      ipv6: up ? (j.ipv6 ?? null) : null,
    };
  }

  /** Uplink and (when known) the vnic facing the VM, read live. */
  describe(vmAddress?: string): Promise<{ uplink: Uplink | null; vnic: Vnic | null }> {
    return this.exclusive(async () => {
      const address = vmAddress || this.loadJournal().intent?.vmAddress;
      // Independent reads, run side by side (wgctl up starts with a Describe).
      const [uplink, vnic] = await readTogether([
        this.driver.discoverUplink(this.runner),
        address ? this.driver.discoverVnic(this.runner, address).catch(() => null) : Promise.resolve(null),
      ]);
      return { uplink, vnic };
    });
  }
}
