/**
 * The VM side, exact and idempotent: Up, Down, Describe and the status sample.
 *
 * Up (steps, in order; each streams the argv it ran):
 *   read-config → detect-backend → resolve-lan → firewall-filter → firewall-nat →
 *   firewall-mangle → ip-forward → clean-stale → wg-quick-up → await-handshake → verify
 * The kill switch and SNAT are in place before forwarding is switched on, and forwarding
 * before the tunnel: at no moment can the Mac's traffic be forwarded anywhere but into the
 * tunnel. A failure after the first change rolls back everything the journal lists
 * (`rollback-*` steps): a failed Up leaves the VM as if Down had run (fail closed).
 *
 * Down: read-journal → detect-backend → ip-forward → firewall-filter → firewall-nat →
 *   firewall-mangle → firewall-tables → wg-quick-down → clean-stale → verify
 * It restores ip_forward (only if it still holds the value the agent wrote), removes the
 * agent's own chains (found by name and tag), and takes the interface down only when the
 * agent brought it up (or when asked to).
 *
 * Every change is written to the journal before it is made, so a new process (after kill -9
 * or a reboot) knows what is its own. Up and Down are serialized (the kit's OperationGate): a
 * second one while another runs is refused at once with BusyError (ABORTED at the RPC layer).
 * Transport-free: service.ts maps what it returns to wgctl.v1.VmAgent.
 */
import { existsSync } from 'node:fs';
import {
  GuardedStepRunner,
  OperationGate,
  StoppingError,
  stepCause,
  type AppliedTunnel,
  type OperationContext,
  type OperationOutcome,
  type ResolvedEndpoint,
  type StatusCheck,
} from '@wgctl/agent-kit';
import { wgHandshakeAgeSeconds, type IptablesSaveTable, type WgDumpInterface, type WgQuickPeer } from '@wgctl/parsers';
import { DryRunRunner, type Runner, type StepRecord, readTogether } from '@wgctl/runner';
import { redactText, silentLogger, type Logger } from '@wgctl/logging';
import { loadTunnelConfig, resolveEndpoint, systemResolver, type HostResolver, type TunnelConfig } from './config';
import {
  OWN_CHAINS,
  chainState,
  deleteNftTables,
  desiredRules,
  detectBackend,
  ensureChain,
  ensureChains,
  existingTables,
  ip6Tools,
  ownChain,
  ownChainsAgainst,
  readRuleset,
  removeChain,
  removeChains,
  tableIsPristine,
  type ForwardingPlan,
  type IptablesTools,
} from './firewall';
import { JournalStore, TABLES, type FirewallTable, type JournalRecord } from './journal';
import { normalizeMacSource, normalizeMacSource6, validateHandshakeTimeout, validateInterfaceName } from './validation';
import { IP_FORWARD, IPV6_FORWARDING, SRC_VALID_MARK, acceptRaName, restoreJournaledSysctl, type Sysctl } from './sysctl';
import { enableIpv6Forwarding, restoreIpv6Forwarding } from './ipv6-forwarding';
import {
  cleanWgQuickLeftovers,
  downArgvs,
  linkState,
  readWgQuickLeftovers,
  removeWgQuickLeftovers,
  routeGet,
  systemdMethodFor,
  upArgv,
  wgFwmark,
  wgLatestHandshakes,
  wgQuickTable,
  wgShowDump,
  wgTransfer,
  type InterfaceMethod,
} from './wireguard';

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 20_000;
export const DEFAULT_HANDSHAKE_THRESHOLD_S = 180;
/** Keepalive set temporarily on a peer without one, to make it initiate the handshake now. */
const HANDSHAKE_POKE_KEEPALIVE_S = 25;
/** Time kept back from the caller's deadline for the rollback and the final answer. */
const DEADLINE_RESERVE_MS = 3_000;

export interface VmEngineOptions {
  configPath: string;
  runner: Runner;
  sysctl: Sysctl;
  journal: JournalStore;
  logger?: Logger;
  /** auto: through systemd when it runs the system (wireguard-go must not live in the agent's cgroup), else wg-quick. */
  interfaceMethod?: 'auto' | 'wg-quick' | 'systemd';
  handshakeTimeoutMs?: number;
  handshakeThresholdS?: number;
  pollIntervalMs?: number;
  resolver?: HostResolver;
  now?: () => number;
  /** sd_booted(3): /run/systemd/system exists. */
  systemdRunning?: () => boolean;
  /** Test hook (WGCTL_TEST_STALL_AFTER_STEP): after this Up step, wait until the agent stops or the caller goes away. */
  stallAfterStep?: string;
  /** Checks added to every Status sample that do not decide health (e.g. certificate expiry). */
  advisoryChecks?: () => StatusCheck[];
}

export interface UpRequest {
  macSource: string;
  /** The Mac's IPv6 source to forward and SNAT too (NAT66); empty/undefined: IPv4 only. */
  macSource6?: string;
  lanInterface?: string;
  dryRun?: boolean;
  handshakeTimeoutMs?: number;
}

export interface DownRequest {
  dryRun?: boolean;
  forceInterfaceDown?: boolean;
}

/** The wg-quick config as Describe shows it: never the private key. */
export interface TunnelDescription {
  interface: string;
  /** [Interface] Address CIDRs. */
  tunnelAddresses: string[];
  /** Every peer endpoint, resolved. */
  endpoints: ResolvedEndpoint[];
  peers: { publicKey: string; endpoints: ResolvedEndpoint[]; allowedIps: string[]; persistentKeepalive: number }[];
  dns: string[];
  mtu: number;
  configPath: string;
  /** Of the interface (derived from its private key). */
  publicKey: string;
}

/** A peer as `wg show dump` shows it. */
export interface PeerStatus {
  publicKey: string;
  endpoint: string;
  allowedIps: string[];
  /** 0: never. */
  latestHandshakeUnix: number;
  /** -1: never. */
  handshakeAgeS: number;
  rxBytes: string;
  txBytes: string;
  persistentKeepalive: number;
}

/** What the live system looks like (Status, without the health verdict: see VmSample). */
export interface VmStatusReport {
  interface: string;
  interfaceUp: boolean;
  publicKey: string;
  listenPort: number;
  peers: PeerStatus[];
  ipForward: boolean;
  /** nft | legacy; '' before it is known. */
  iptablesBackend: string;
  checks: StatusCheck[];
  /** From the journal, when up. */
  macSource: string;
  macSource6: string;
  tunnelAddresses: string[];
}

/** What one sample of the live system says (cached by the health sampler). */
export interface VmSample {
  status: VmStatusReport;
  serving: boolean;
  reasons: string[];
  sampledAtMs: number;
}

/** A peer's endpoint, resolved; none for a peer without Endpoint. */
async function peerEndpoints(peer: WgQuickPeer, resolver: HostResolver): Promise<ResolvedEndpoint[]> {
  if (!peer.endpoint) return [];
  const { host, ip, port } = await resolveEndpoint(peer.endpoint, resolver);
  return [{ host, ip, port }];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Names the step's failure cause without the StepFailedError wrapper. */
function causeMessage(e: unknown): string {
  const cause = stepCause(e);
  return redactText(cause instanceof Error ? cause.message : String(cause));
}

export class VmEngine {
  /** Up and Down: one at a time, none once stopping. */
  private readonly gate: OperationGate;
  private readonly logger: Logger;
  private readonly now: () => number;
  private cachedTools: IptablesTools | undefined;

  constructor(private readonly options: VmEngineOptions) {
    this.logger = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.gate = new OperationGate('vm-agent', this.now);
  }

  /**
   * Stops taking work (SIGTERM): the Up or Down in flight finishes the step it is in, then
   * ends without a rollback (the journal keeps what it applied; the next start reconciles).
   * Resolves once nothing runs.
   */
  stop(reason: string): Promise<void> {
    return this.gate.stop(reason);
  }

  get stopping(): boolean {
    return this.gate.stopping;
  }

  get configPath(): string {
    return this.options.configPath;
  }

  get handshakeThresholdS(): number {
    return this.options.handshakeThresholdS ?? DEFAULT_HANDSHAKE_THRESHOLD_S;
  }

  /** Who is busy, for messages; null when idle. */
  get running(): { op: string; sinceMs: number } | null {
    return this.gate.running;
  }

  /** The iptables backend, once known ('' before): AgentInfo's driver. */
  get driverName(): string {
    return this.cachedTools ? `iptables-${this.cachedTools.kind}` : '';
  }

  private interfaceMethod(config: TunnelConfig): InterfaceMethod {
    const wanted = this.options.interfaceMethod ?? 'auto';
    const systemd = wanted === 'systemd' || (wanted === 'auto' && (this.options.systemdRunning ?? (() => existsSync('/run/systemd/system')))());
    return systemd ? systemdMethodFor(config.path, config.interface) : 'wg-quick';
  }

  // -------------------------------------------------------------------------------------------
  // Describe

  async describe(): Promise<TunnelDescription> {
    const config = await loadTunnelConfig(this.options.configPath);
    const resolver = this.options.resolver ?? systemResolver;
    const peers: TunnelDescription['peers'] = [];
    for (const peer of config.parsed.peers) {
      peers.push({
        publicKey: peer.publicKey,
        endpoints: await peerEndpoints(peer, resolver),
        allowedIps: peer.allowedIps,
        persistentKeepalive: peer.persistentKeepalive,
      });
    }
    return {
      interface: config.interface,
      tunnelAddresses: config.addresses,
      endpoints: peers.flatMap((p) => p.endpoints),
      peers,
      dns: config.parsed.interface.dns,
      mtu: config.parsed.interface.mtu ?? 0,
      configPath: config.path,
      publicKey: config.publicKey ?? '',
    };
  }

  /** What an Up of `config` applies, for its Outcome: the endpoints the Mac pins, the tunnel addresses. */
  private async applied(config: TunnelConfig): Promise<AppliedTunnel> {
    const resolver = this.options.resolver ?? systemResolver;
    const endpoints = await Promise.all(config.parsed.peers.map((peer) => peerEndpoints(peer, resolver)));
    return { endpoints: endpoints.flat(), tunnelAddresses: config.addresses };
  }

  // -------------------------------------------------------------------------------------------
  // Up

  /**
   * Rejects before anything runs: InvalidRequestError (a bad argument), StoppingError, BusyError.
   * `ctx.signal`: the caller went away — the Up ends before its next step and is rolled back.
   */
  async up(request: UpRequest, ctx: OperationContext = {}): Promise<OperationOutcome> {
    const macSource = normalizeMacSource(request.macSource);
    const macSource6 = request.macSource6 ? normalizeMacSource6(request.macSource6) : undefined;
    if (request.lanInterface) validateInterfaceName('lan_interface', request.lanInterface);
    if (request.handshakeTimeoutMs) validateHandshakeTimeout(request.handshakeTimeoutMs);
    return this.gate.run('Up', () => this.runUp({ ...request, macSource, macSource6 }, ctx));
  }

  private async runUp(request: UpRequest, ctx: OperationContext): Promise<OperationOutcome> {
    const dryRun = request.dryRun === true;
    const runner = dryRun ? new DryRunRunner(this.options.runner) : this.options.runner;
    const steps = this.stepRunner(runner, ctx, this.options.stallAfterStep);
    const started = this.now();
    let failedStep = '';
    let record: JournalRecord | null = null;
    let changed = false; // once true, a failure rolls back

    const step = async (name: string, fn: (r: Runner) => Promise<string | { skipped: string }>): Promise<void> => {
      failedStep = name;
      await steps.step(name, fn);
    };

    try {
      const prior = await this.options.journal.read();
      let config!: TunnelConfig;
      await step('read-config', async () => {
        config = await loadTunnelConfig(this.options.configPath);
        if (!config.tunnelIPv4) throw new Error(`${config.path} has no IPv4 Address in [Interface]: nothing to SNAT the Mac's traffic to`);
        if (request.macSource6 && !config.tunnelIPv6) {
          throw new Error(`mac_source6 given but ${config.path} has no IPv6 Address in [Interface]: nothing to SNAT the Mac's IPv6 traffic to`);
        }
        const withEndpoint = config.parsed.peers.filter((p) => p.endpoint);
        if (withEndpoint.length === 0) throw new Error(`${config.path}: no [Peer] has an Endpoint, so this VM cannot start the tunnel`);
        if (prior && prior.interface !== config.interface) {
          throw new Error(`the journal belongs to interface ${prior.interface} (${prior.configPath}); run Down first`);
        }
        const endpoints = withEndpoint.map((p) => `${p.endpoint!.host}:${p.endpoint!.port}`).join(', ');
        const noKeepalive = withEndpoint.some((p) => p.persistentKeepalive === 0);
        return `${config.interface}: tunnel ${config.addresses.join(', ')}, endpoint ${endpoints}${
          noKeepalive ? '; warning: a peer has no PersistentKeepalive, so an idle tunnel will look stale to health checks' : ''
        }`;
      });

      // Resolved while the steps run (as wg-quick will resolve them); never rejects.
      const applied = this.applied(config);

      let tools!: IptablesTools;
      // One read of the rules serves every firewall step below: each changes only its own table.
      let rulesetBefore: IptablesSaveTable[] = [];
      await step('detect-backend', async (r) => {
        if (prior?.backend) {
          tools = prior.backend;
          this.cachedTools = tools;
          rulesetBefore = await readRuleset(r, tools);
          return { skipped: `${tools.iptables} (recorded in the journal)` };
        }
        const detected = await detectBackend(r);
        tools = detected.tools;
        this.cachedTools = tools;
        rulesetBefore = detected.ruleset ?? (await readRuleset(r, tools));
        return detected.evidence;
      });
      const tablesBefore = existingTables(rulesetBefore);

      let lanInterface = request.lanInterface ?? '';
      await step('resolve-lan', async (r) => {
        if (lanInterface) {
          const link = await linkState(r, lanInterface);
          if (!link.exists) throw new Error(`lan_interface ${lanInterface} does not exist`);
          return { skipped: `lan_interface ${lanInterface} given` };
        }
        const route = await routeGet(r, request.macSource.split('/')[0]);
        if ('unreachable' in route) throw new Error(`cannot tell which interface faces the Mac: ${route.unreachable}; pass lan_interface`);
        if (route.dev === config.interface) {
          throw new Error(`the route to ${request.macSource} goes through the tunnel ${config.interface}; pass lan_interface`);
        }
        lanInterface = route.dev;
        let six = '';
        if (request.macSource6) {
          // The IPv6 side is forwarded between the same two interfaces: it must face the Mac the same way.
          const route6 = await routeGet(r, request.macSource6.split('/')[0], { family: 6 });
          if ('unreachable' in route6) throw new Error(`cannot tell which interface faces the Mac's IPv6: ${route6.unreachable}; pass lan_interface`);
          if (route6.dev !== lanInterface) {
            throw new Error(
              `the Mac's IPv6 ${request.macSource6} is reached through ${route6.dev}, its IPv4 ${request.macSource} through ${lanInterface}: ` +
                'both must face the Mac on the same interface (pass lan_interface)',
            );
          }
          six = `; its IPv6 ${request.macSource6} too`;
        }
        return `the Mac ${request.macSource} is reached through ${lanInterface}${route.gateway ? ` via ${route.gateway}` : ''}${six}`;
      });

      const plan: ForwardingPlan = {
        macSource: request.macSource,
        lanInterface,
        wgInterface: config.interface,
        tunnelAddress: config.tunnelIPv4!,
      };
      const plan6: ForwardingPlan | undefined = request.macSource6
        ? { macSource: request.macSource6, lanInterface, wgInterface: config.interface, tunnelAddress: config.tunnelIPv6! }
        : undefined;
      record = {
        version: 1,
        phase: 'up-in-progress',
        interface: config.interface,
        configPath: config.path,
        macSource: plan.macSource,
        lanInterface,
        tunnelAddress: plan.tunnelAddress,
        backend: tools,
        chains: [...new Set([...(prior?.chains ?? []), ...TABLES])],
        createdTables: [
          ...new Set([...(prior?.createdTables ?? []), ...(tools.kind === 'nft' ? TABLES.filter((t) => !tablesBefore.has(t)) : [])]),
        ],
        ipForward: prior?.ipForward ?? null,
        wgInterface: prior?.wgInterface ?? null,
        // IPv6 asked for: journaled. Not asked for but set up before: kept until step firewall6 removed it.
        ...(plan6
          ? {
              v6: {
                macSource: plan6.macSource,
                tunnelAddress: plan6.tunnelAddress,
                chains: [...new Set([...(prior?.v6?.chains ?? []), ...TABLES])],
                createdTables: prior?.v6?.createdTables ?? [],
                forwarding: prior?.v6?.forwarding ?? null,
                acceptRa: prior?.v6?.acceptRa ?? null,
              },
            }
          : prior?.v6
            ? { v6: prior.v6 }
            : {}),
        updatedAtMs: this.now(),
      };
      // Write-ahead: from here on every change is covered by the journal.
      if (!dryRun) await this.persist(record);
      changed = true;

      const desired = desiredRules(plan);
      for (const table of TABLES) {
        await step(`firewall-${table}`, async (r) =>
          ensureChain(r, tools, chainState(rulesetBefore, ownChain(table)), desired[table], { showBatch: dryRun }),
        );
      }

      if (!plan6 && record.v6) {
        // An earlier Up forwarded the Mac's IPv6, this one does not: forwarding off, then the rules.
        await step('firewall6', async (r) => {
          const v6 = record!.v6!;
          const restored = await restoreIpv6Forwarding(r, this.options.sysctl, v6, { dryRun });
          const removed = await this.removeIpv6Chains(r, tools, v6, dryRun);
          if (!dryRun) {
            delete record!.v6;
            await this.persist(record!);
          }
          const text = (x: string | { skipped: string }): string => (typeof x === 'string' ? x : x.skipped);
          return `mac_source6 not given: the IPv6 side of the earlier Up removed (${text(restored)}; ${text(removed)})`;
        });
      }

      if (plan6) {
        await step('firewall6', async (r) => {
          const tools6 = ip6Tools(tools);
          const ruleset6 = await readRuleset(r, tools6);
          const v6 = record!.v6!;
          if (tools.kind === 'nft') {
            // Write-ahead: the ip6 tables this batch will cause to exist, before it runs.
            const tables6Before = existingTables(ruleset6);
            const created = TABLES.filter((t) => !tables6Before.has(t) && !v6.createdTables.includes(t));
            if (created.length > 0 && !dryRun) {
              v6.createdTables = [...v6.createdTables, ...created];
              await this.persist(record!);
            }
          }
          const desired6 = desiredRules(plan6, 6);
          return ensureChains(
            r,
            tools6,
            TABLES.map((table) => ({ state: chainState(ruleset6, ownChain(table)), desired: desired6[table] })),
            { showBatch: dryRun },
          );
        });
      }

      await step('ip-forward', async (r) => {
        const current = await this.options.sysctl.read(IP_FORWARD, r);
        if (current === '1') return { skipped: `${IP_FORWARD} is already 1` };
        if (dryRun) return `would write 1 to ${this.options.sysctl.where(IP_FORWARD)} (now ${current})`;
        record!.ipForward = { previous: record!.ipForward?.previous ?? current, applied: '1' };
        await this.persist(record!);
        await this.options.sysctl.write(IP_FORWARD, '1', r);
        return `${IP_FORWARD}: ${current} → 1 (${this.options.sysctl.where(IP_FORWARD)}; ${record!.ipForward.previous} is restored by Down)`;
      });

      if (plan6) {
        await step('ip6-forward', async (r) =>
          enableIpv6Forwarding(r, this.options.sysctl, record!, lanInterface, { dryRun, persist: (rec) => this.persist(rec) }),
        );
      }

      let link!: Awaited<ReturnType<typeof linkState>>;
      await step('clean-stale', async (r) => {
        // The link check and the leftover reads side by side; removals only once both are in.
        const [current, leftovers] = await readTogether([
          linkState(r, config.interface),
          readWgQuickLeftovers(r, config.interface, wgQuickTable(config.parsed.interface.table)),
        ]);
        link = current;
        if (link.exists) return { skipped: `${config.interface} exists: its wg-quick state is live` };
        const removed = await removeWgQuickLeftovers(r, leftovers);
        return removed.length ? `removed leftovers of a crashed wg-quick: ${removed.join('; ')}` : { skipped: 'no wg-quick leftovers' };
      });

      await step('wg-quick-up', async (r) => {
        if (link.exists) {
          const owner = record!.wgInterface ? `brought up by wgctl (${record!.wgInterface.method})` : 'not brought up by wgctl: Down leaves it up';
          return { skipped: `${config.interface} is already up, ${owner}` };
        }
        const method = this.interfaceMethod(config);
        if (!dryRun) {
          const srcValidMarkPrevious = await this.options.sysctl.read(SRC_VALID_MARK, r).catch(() => null);
          record!.wgInterface = { method, srcValidMarkPrevious };
          await this.persist(record!);
        }
        // No read of the link here: await-handshake's first `wg show` needs the interface (and
        // names it when missing), and verify checks that it is up.
        await r.run(upArgv(method, config.path, config.interface), { timeoutMs: 60_000 });
        return `${config.interface} brought up (${method})`;
      });

      await step('await-handshake', async (r) => {
        if (dryRun) return { skipped: 'dry-run: no handshake to wait for' };
        return this.awaitHandshake(r, config, this.handshakeBudget(request, ctx), () => steps.checkpoint());
      });

      await step('verify', async (r) => {
        if (dryRun) return { skipped: 'dry-run: nothing was changed' };
        const problems = await this.verifyUp(r, tools, plan);
        if (plan6) problems.push(...(await this.verifyUp6(r, tools, plan6)));
        if (problems.length) throw new Error(`not in place after Up: ${problems.join('; ')}`);
        const six = plan6 ? `; ip6tables ${OWN_CHAINS.map((c) => c.chain).join(', ')} in place; ${IPV6_FORWARDING}=1` : '';
        return `${OWN_CHAINS.map((c) => c.chain).join(', ')} in place; ${IP_FORWARD}=1${six}; ${config.interface} up`;
      });

      if (!dryRun) {
        record.phase = 'up';
        await this.persist(record);
      }
      return { ok: true, failedStep: '', error: '', totalMs: this.now() - started, vmApplied: await applied };
    } catch (e) {
      const error = causeMessage(e);
      this.logger.warn('Up failed', { step: failedStep, error });
      let rollbackError = '';
      // Stopping: no rollback now — the journal (phase up-in-progress) makes the next start remove it.
      // Cancelled (or failed): rolled back to the end, whether or not the caller is still there.
      if (changed && !dryRun && record && !(stepCause(e) instanceof StoppingError)) {
        steps.ignoreCancel();
        try {
          await this.teardown(steps, record, { prefix: 'rollback-', forceInterfaceDown: false, dryRun: false });
          await this.options.journal.remove();
        } catch (re) {
          rollbackError = `; rollback incomplete (${causeMessage(re)}): the journal is kept, run Down`;
        }
      }
      return { ok: false, failedStep, error: `${error}${rollbackError}`, totalMs: this.now() - started };
    }
  }

  private handshakeBudget(request: UpRequest, ctx: OperationContext): number {
    let budget = request.handshakeTimeoutMs || this.options.handshakeTimeoutMs || DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (ctx.deadlineMs !== undefined) budget = Math.min(budget, ctx.deadlineMs - this.now() - DEADLINE_RESERVE_MS);
    return Math.max(budget, 0);
  }

  /** `checkpoint` throws when the Up must end (agent stopping, caller gone): a wait, not a change, ends at once. */
  private async awaitHandshake(runner: Runner, config: TunnelConfig, timeoutMs: number, checkpoint: () => void): Promise<string> {
    const ifname = config.interface;
    const peers = config.parsed.peers.filter((p) => p.endpoint);
    const started = this.now();
    const threshold = this.handshakeThresholdS;
    const poked: string[] = [];
    try {
      for (;;) {
        const handshakes = await wgLatestHandshakes(runner, ifname).catch(async (e: unknown) => {
          const link = await linkState(runner, ifname).catch(() => null);
          if (link && !link.exists) throw new Error(`${ifname} does not exist after ${upArgv(this.interfaceMethod(config), config.path, ifname).join(' ')}`);
          throw e;
        });
        const fresh = peers.find((p) => {
          const age = wgHandshakeAgeSeconds(handshakes.get(p.publicKey) ?? 0, this.now());
          return age >= 0 && age <= threshold;
        });
        if (fresh) {
          return `handshake with ${fresh.endpoint!.host}:${fresh.endpoint!.port} (${this.now() - started} ms)`;
        }
        if (poked.length === 0) {
          // Without a keepalive nothing makes wireguard send: ask for one until the handshake.
          for (const p of peers.filter((x) => x.persistentKeepalive === 0)) {
            await runner.run(['wg', 'set', ifname, 'peer', p.publicKey, 'persistent-keepalive', String(HANDSHAKE_POKE_KEEPALIVE_S)]);
            poked.push(p.publicKey);
          }
          if (poked.length === 0) poked.push(''); // nothing to poke; don't try again
        }
        if (this.now() - started >= timeoutMs) {
          throw new Error(`no handshake within ${timeoutMs} ms: ${await this.diagnoseNoHandshake(runner, config)}`);
        }
        checkpoint();
        await sleep(this.options.pollIntervalMs ?? 200);
      }
    } finally {
      for (const key of poked.filter((k) => k !== '')) {
        await runner.run(['wg', 'set', ifname, 'peer', key, 'persistent-keepalive', 'off'], { allowFailure: true });
      }
    }
  }

  /** Why no handshake: no route to the endpoint, nothing sent, or sent without an answer. */
  private async diagnoseNoHandshake(runner: Runner, config: TunnelConfig): Promise<string> {
    const ifname = config.interface;
    const reasons: string[] = [];
    let dump: WgDumpInterface;
    try {
      dump = await wgShowDump(runner, ifname);
    } catch (e) {
      return `cannot read ${ifname}: ${(e as Error).message}`;
    }
    const transfer = await wgTransfer(runner, ifname).catch(() => new Map<string, { rxBytes: string; txBytes: string }>());
    const mark = await wgFwmark(runner, ifname).catch(() => 0);
    for (const peer of config.parsed.peers.filter((p) => p.endpoint)) {
      const live = dump.peers.find((p) => p.publicKey === peer.publicKey);
      const endpoint = live?.endpoint;
      const shown = live?.endpointText ?? `${peer.endpoint!.host}:${peer.endpoint!.port}`;
      if (!endpoint) {
        reasons.push(`peer ${peer.publicKey} has no usable endpoint (${shown}; does the host name resolve?)`);
        continue;
      }
      const route = await routeGet(runner, endpoint.host, { mark });
      const counters = transfer.get(peer.publicKey) ?? { rxBytes: '0', txBytes: '0' };
      if ('unreachable' in route) {
        reasons.push(`no route to endpoint ${shown}: ${route.unreachable}`);
      } else if (counters.txBytes === '0') {
        reasons.push(`nothing was sent to endpoint ${shown} (route via ${route.dev})`);
      } else if (counters.rxBytes === '0') {
        reasons.push(
          `no reply from endpoint ${shown}: sent ${counters.txBytes} bytes via ${route.dev}, received 0 — the server is down, ` +
            `UDP to port ${endpoint.port} is blocked on the way, or the server does not know this VM's public key ${config.publicKey ?? '(none)'}`,
        );
      } else {
        reasons.push(`endpoint ${shown} answered (${counters.rxBytes} bytes) but no handshake completed: check PublicKey/PresharedKey on both sides`);
      }
    }
    return reasons.join('; ') || 'no peer with an endpoint';
  }

  private async verifyUp(runner: Runner, tools: IptablesTools, plan: ForwardingPlan): Promise<string[]> {
    const problems: string[] = [];
    const [tables, forward, link] = await readTogether([
      readRuleset(runner, tools),
      this.options.sysctl.read(IP_FORWARD, runner),
      linkState(runner, plan.wgInterface),
    ]);
    for (const { state, inPlace } of ownChainsAgainst(tables, desiredRules(plan))) {
      if (!inPlace) problems.push(`${state.own.table} ${state.own.chain} differs (jumps: ${state.jumps}, rules: ${state.rules.length})`);
    }
    if (forward !== '1') problems.push(`${IP_FORWARD}=${forward}`);
    if (!link.up) problems.push(`${plan.wgInterface} is ${link.exists ? 'down' : 'missing'}`);
    return problems;
  }

  private async verifyUp6(runner: Runner, tools: IptablesTools, plan6: ForwardingPlan): Promise<string[]> {
    const problems: string[] = [];
    const raName = acceptRaName(plan6.lanInterface);
    const [tables, forwarding, acceptRa] = await readTogether([
      readRuleset(runner, ip6Tools(tools)),
      this.options.sysctl.read(IPV6_FORWARDING, runner),
      this.options.sysctl.read(raName, runner),
    ]);
    for (const { state, inPlace } of ownChainsAgainst(tables, desiredRules(plan6, 6))) {
      if (!inPlace) problems.push(`ip6 ${state.own.table} ${state.own.chain} differs (jumps: ${state.jumps}, rules: ${state.rules.length})`);
    }
    if (forwarding !== '1') problems.push(`${IPV6_FORWARDING}=${forwarding}`);
    if (acceptRa === '1') problems.push(`${raName}=1 (router advertisements ignored while forwarding)`);
    return problems;
  }

  // -------------------------------------------------------------------------------------------
  // Down

  /**
   * Rejects before anything runs when stopping or busy (see up()). Ended early (agent stopping,
   * caller gone), the journal says down-in-progress: the next Down or start finishes it.
   */
  async down(request: DownRequest, ctx: OperationContext = {}): Promise<OperationOutcome> {
    return this.gate.run('Down', () => this.runDown(request, ctx));
  }

  private async runDown(request: DownRequest, ctx: OperationContext): Promise<OperationOutcome> {
    const dryRun = request.dryRun === true;
    const runner = dryRun ? new DryRunRunner(this.options.runner) : this.options.runner;
    const steps = this.stepRunner(runner, ctx);
    const started = this.now();
    let failedStep = 'read-journal';
    try {
      let record: JournalRecord | null = null;
      await steps.step('read-journal', async () => {
        record = await this.options.journal.read();
        if (!record) return { skipped: `no journal in ${this.options.journal.path}: only wgctl's own chains are removed, if any` };
        return `journal (${record.phase}): Mac ${record.macSource} on ${record.lanInterface}, ${record.interface}${
          record.wgInterface ? ` brought up by wgctl (${record.wgInterface.method})` : ''
        }${record.ipForward ? `, ${IP_FORWARD} was ${record.ipForward.previous}` : ''}`;
      });
      if (!record) {
        // Without a journal: the config says which interface; own chains are found by name.
        const config = await loadTunnelConfig(this.options.configPath).catch(() => null);
        record = {
          version: 1,
          phase: 'down-in-progress',
          interface: config?.interface ?? '',
          configPath: this.options.configPath,
          macSource: '',
          lanInterface: '',
          tunnelAddress: '',
          backend: null,
          chains: [...TABLES],
          createdTables: [],
          ipForward: null,
          wgInterface: null,
          // An IPv6 Up may have left its ip6tables chains too: found by name as well. The
          // sysctls' previous values are unknown without the journal: left as they are.
          v6: { macSource: '', tunnelAddress: '', chains: [...TABLES], createdTables: [], forwarding: null, acceptRa: null },
          updatedAtMs: this.now(),
        };
      } else if (!dryRun) {
        record = { ...(record as JournalRecord), phase: 'down-in-progress', updatedAtMs: this.now() };
        await this.persist(record);
      }
      const outcome = await this.teardown(steps, record, {
        prefix: '',
        forceInterfaceDown: request.forceInterfaceDown === true,
        dryRun,
        onStep: (name) => {
          failedStep = name;
        },
      });
      failedStep = 'verify';
      await steps.step('verify', async (r) => {
        if (dryRun) return { skipped: 'dry-run: nothing was changed' };
        const left = await this.verifyDown(r, outcome.tools, record!);
        if (left.length) throw new Error(`still present after Down: ${left.join('; ')}`);
        return 'no wgctl chain or jump left; ip_forward as before';
      });
      if (!dryRun) await this.options.journal.remove();
      return { ok: true, failedStep: '', error: '', totalMs: this.now() - started };
    } catch (e) {
      const error = causeMessage(e);
      this.logger.warn('Down failed', { step: failedStep, error });
      return { ok: false, failedStep, error, totalMs: this.now() - started };
    }
  }

  /**
   * Removes what `record` lists, in the fail-closed order: forwarding off first, then the
   * rules, then the interface. Used by Down and by the rollback of a failed Up.
   */
  private async teardown(
    steps: GuardedStepRunner,
    record: JournalRecord,
    options: {
      prefix: string;
      forceInterfaceDown: boolean;
      dryRun: boolean;
      onStep?: (name: string) => void;
    },
  ): Promise<{ tools: IptablesTools }> {
    const { prefix, dryRun } = options;
    const step = async (name: string, fn: (r: Runner) => Promise<string | { skipped: string }>): Promise<void> => {
      options.onStep?.(prefix + name);
      await steps.step(prefix + name, fn);
    };

    let tools: IptablesTools = record.backend ?? (undefined as unknown as IptablesTools);
    await step('detect-backend', async (r) => {
      if (record.backend) return { skipped: `${record.backend.iptables} (recorded in the journal)` };
      const detected = await detectBackend(r);
      tools = detected.tools;
      return detected.evidence;
    });

    await step('ip-forward', async (r) => {
      if (!record.ipForward) return { skipped: `${IP_FORWARD} was not changed by wgctl` };
      const restored = await restoreJournaledSysctl(this.options.sysctl, r, IP_FORWARD, record.ipForward, dryRun);
      return restored.outcome === 'restored' ? restored.message : { skipped: restored.message };
    });

    const v6 = record.v6;
    if (v6) {
      // Forwarding off first (fail closed), then accept_ra back: the reverse of Up.
      await step('ip6-forward', async (r) => restoreIpv6Forwarding(r, this.options.sysctl, v6, { dryRun }));

      await step('firewall6', async (r) => this.removeIpv6Chains(r, tools, v6, dryRun));
    }

    // Read once, in the first firewall step: each step changes only its own table.
    let ruleset: IptablesSaveTable[] | undefined;
    for (const table of TABLES) {
      await step(`firewall-${table}`, async (r) => {
        ruleset ??= await readRuleset(r, tools);
        return removeChain(r, tools, chainState(ruleset, ownChain(table)), { showBatch: dryRun });
      });
    }

    await step('firewall-tables', async (r) => {
      if (tools.kind !== 'nft' || record.createdTables.length === 0) return { skipped: 'no table was created by wgctl' };
      const tables = await readRuleset(r, tools);
      const done: FirewallTable[] = [];
      const kept: string[] = [];
      for (const table of record.createdTables) {
        if (!tables.some((t) => t.name === table)) continue;
        if (dryRun || tableIsPristine(tables, table)) done.push(table);
        else kept.push(table);
      }
      if (done.length > 0) {
        const batch = deleteNftTables(done);
        await r.run(batch.argv, { input: batch.input });
      }
      if (done.length === 0) return { skipped: kept.length ? `kept ${kept.join(', ')}: they hold other rules now` : 'nothing to delete' };
      return `deleted the empty tables wgctl caused to exist: ${done.join(', ')}${kept.length ? `; kept ${kept.join(', ')} (other rules)` : ''}`;
    });

    let linkExists = false;
    await step('wg-quick-down', async (r) => {
      if (!record.interface) return { skipped: 'no interface known (no journal, unreadable config)' };
      const link = await linkState(r, record.interface);
      linkExists = link.exists;
      const owned = record.wgInterface !== null;
      if (!owned && !options.forceInterfaceDown) {
        return { skipped: `${record.interface} was not brought up by wgctl: left ${link.exists ? 'up' : 'alone'} (force_interface_down to take it down)` };
      }
      if (!link.exists) return { skipped: `${record.interface} is already down` };
      const method = record.wgInterface?.method ?? 'wg-quick';
      for (const argv of downArgvs(method, record.configPath, record.interface)) await r.run(argv, { timeoutMs: 60_000 });
      linkExists = dryRun;
      let restored = '';
      const previous = record.wgInterface?.srcValidMarkPrevious;
      if (previous !== null && previous !== undefined && !dryRun) {
        const now = await this.options.sysctl.read(SRC_VALID_MARK, r).catch(() => previous);
        if (now !== previous) {
          await this.options.sysctl.write(SRC_VALID_MARK, previous, r);
          restored = `; ${SRC_VALID_MARK} ${now} → ${previous}`;
        }
      }
      return `${record.interface} taken down (${method})${restored}`;
    });

    await step('clean-stale', async (r) => {
      if (!record.interface) return { skipped: 'no interface known' };
      if (linkExists) return { skipped: `${record.interface} is up: its wg-quick state is live` };
      const config = await loadTunnelConfig(record.configPath).catch(() => null);
      const removed = await cleanWgQuickLeftovers(r, record.interface, wgQuickTable(config?.parsed.interface.table));
      return removed.length ? `removed wg-quick leftovers: ${removed.join('; ')}` : { skipped: 'no wg-quick leftovers' };
    });
    return { tools };
  }

  /** The ip6tables chains and jumps (one batch), then the ip6 tables wgctl caused to exist when back to pristine. */
  private async removeIpv6Chains(
    r: Runner,
    tools: IptablesTools,
    v6: NonNullable<JournalRecord['v6']>,
    dryRun: boolean,
  ): Promise<string | { skipped: string }> {
    const tools6 = ip6Tools(tools);
    const ruleset6 = await readRuleset(r, tools6);
    const removed = await removeChains(r, tools6, OWN_CHAINS.map((own) => chainState(ruleset6, own)), { showBatch: dryRun });
    if (tools.kind !== 'nft' || v6.createdTables.length === 0) return removed;
    const after = typeof removed === 'string' && !dryRun ? await readRuleset(r, tools6) : ruleset6;
    const gone = v6.createdTables.filter((t) => after.some((x) => x.name === t) && (dryRun || tableIsPristine(after, t)));
    if (gone.length === 0) return removed;
    const batch = deleteNftTables(gone, 'ip6');
    await r.run(batch.argv, { input: batch.input });
    return `${typeof removed === 'string' ? removed : removed.skipped}; deleted the empty ip6 tables wgctl caused to exist: ${gone.join(', ')}`;
  }

  private async verifyDown(runner: Runner, tools: IptablesTools, record: JournalRecord): Promise<string[]> {
    const left: string[] = [];
    const [tables, current] = await readTogether([
      readRuleset(runner, tools),
      record.ipForward ? this.options.sysctl.read(IP_FORWARD, runner) : undefined,
    ]);
    for (const own of OWN_CHAINS) {
      const state = chainState(tables, own);
      if (state.chainExists || state.jumps > 0) left.push(`${own.table} ${own.chain}`);
    }
    if (record.ipForward) {
      if (current === record.ipForward.applied && current !== record.ipForward.previous) left.push(`${IP_FORWARD}=${current}`);
    }
    if (record.v6) {
      const v6 = record.v6;
      const raName = v6.acceptRa ? acceptRaName(v6.acceptRa.interface) : undefined;
      const [tables6, forwarding, acceptRa] = await readTogether([
        readRuleset(runner, ip6Tools(tools)),
        v6.forwarding ? this.options.sysctl.read(IPV6_FORWARDING, runner) : undefined,
        raName ? this.options.sysctl.read(raName, runner) : undefined,
      ]);
      for (const own of OWN_CHAINS) {
        const state = chainState(tables6, own);
        if (state.chainExists || state.jumps > 0) left.push(`ip6 ${own.table} ${own.chain}`);
      }
      if (v6.forwarding && forwarding === v6.forwarding.applied && forwarding !== v6.forwarding.previous) left.push(`${IPV6_FORWARDING}=${forwarding}`);
      if (v6.acceptRa && acceptRa === v6.acceptRa.applied && acceptRa !== v6.acceptRa.previous) left.push(`${raName}=${acceptRa}`);
    }
    return left;
  }

  // -------------------------------------------------------------------------------------------
  // Reconcile (at start-up)

  /**
   * After a crash, a stop or a reboot: a journal in phase up-in-progress/down-in-progress means
   * the previous process ended mid-operation — everything it lists is removed (fail closed; the
   * controller runs Up again). Phase up means the tunnel should be up: Up runs again with the
   * recorded Mac source (a no-op when all is in place, a repair after a reboot).
   */
  async reconcile(ctx: OperationContext = {}): Promise<OperationOutcome | null> {
    const record = await this.options.journal.read();
    if (!record) return null;
    if (record.phase === 'up') {
      this.logger.info('reconcile: journal says up; re-applying', { mac: record.macSource, interface: record.interface });
      return this.up({ macSource: record.macSource, lanInterface: record.lanInterface, macSource6: record.v6?.macSource }, ctx);
    }
    this.logger.warn(`reconcile: the previous process stopped during ${record.phase === 'up-in-progress' ? 'Up' : 'Down'}; removing what it applied`);
    return this.down({}, ctx);
  }

  // -------------------------------------------------------------------------------------------
  // Status sample (read-only; the health sampler calls this in the background)

  async sample(): Promise<VmSample> {
    const runner = this.options.runner;
    const sampledAtMs = this.now();
    const checks: StatusCheck[] = [];
    const check = (name: string, ok: boolean, detail: string, evidence: string[] = []): void => {
      checks.push({ name, ok, detail, evidence });
    };

    let record: JournalRecord | null = null;
    try {
      record = await this.options.journal.read();
      check('applied', record?.phase === 'up', record ? `journal phase ${record.phase}` : 'Up has not been applied (no journal)');
    } catch (e) {
      check('applied', false, (e as Error).message);
    }
    let config: TunnelConfig | null = null;
    try {
      config = await loadTunnelConfig(this.options.configPath);
    } catch (e) {
      check('config', false, (e as Error).message);
    }
    const ifname = record?.interface || config?.interface || '';

    let interfaceUp = false;
    let dump: WgDumpInterface | null = null;
    if (ifname) {
      try {
        const link = await linkState(runner, ifname);
        interfaceUp = link.up;
        check('interface-up', link.up, link.exists ? `${ifname} flags ${link.flags.join(',')}` : `${ifname} does not exist`, link.addresses);
        if (link.exists) dump = await wgShowDump(runner, ifname);
      } catch (e) {
        check('interface-up', false, `${ifname}: ${(e as Error).message}`);
      }
    }

    const peers: PeerStatus[] = (dump?.peers ?? []).map((p) => ({
      publicKey: p.publicKey,
      endpoint: p.endpointText ?? '',
      allowedIps: p.allowedIps,
      latestHandshakeUnix: p.latestHandshake,
      handshakeAgeS: wgHandshakeAgeSeconds(p.latestHandshake, sampledAtMs),
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive,
    }));
    if (dump) {
      const ages = dump.peers
        .filter((p) => p.endpoint)
        .map((p) => wgHandshakeAgeSeconds(p.latestHandshake, sampledAtMs))
        .filter((a) => a >= 0);
      const freshest = ages.length ? Math.min(...ages) : -1;
      check(
        'handshake',
        freshest >= 0 && freshest <= this.handshakeThresholdS,
        freshest < 0 ? 'no handshake yet' : `latest handshake ${freshest} s ago (threshold ${this.handshakeThresholdS} s)`,
      );
    }

    let ipForward = false;
    try {
      const value = await this.options.sysctl.read(IP_FORWARD, runner);
      ipForward = value === '1';
      check('ip-forward', ipForward, `${IP_FORWARD}=${value}`);
    } catch (e) {
      check('ip-forward', false, (e as Error).message);
    }

    let tools = record?.backend ?? this.cachedTools;
    try {
      if (!tools) tools = (await detectBackend(runner)).tools;
      this.cachedTools = tools;
      if (record && record.macSource) {
        const v6 = record.v6;
        // Both families and the IPv6 forwarding switch read side by side.
        const [tables, tables6, forwarding] = await readTogether([
          readRuleset(runner, tools),
          v6 ? readRuleset(runner, ip6Tools(tools)) : undefined,
          v6 ? this.options.sysctl.read(IPV6_FORWARDING, runner) : undefined,
        ]);
        const chainChecks = (prefix: '' | '6', label: string, found: IptablesSaveTable[], plan: ForwardingPlan) => {
          for (const { state, inPlace } of ownChainsAgainst(found, desiredRules(plan, prefix ? 6 : 4))) {
            const { own } = state;
            check(
              `firewall${prefix}-${own.table}`,
              inPlace,
              inPlace ? `${label}${own.chain} in place (${own.purpose})` : `${label}${own.chain}: ${state.chainExists ? `${state.rules.length} rules` : 'missing'}, ${state.jumps} jump(s)`,
              state.rules.map((r) => `-A ${own.chain} ${r.join(' ')}`),
            );
          }
        };
        const plan = { macSource: record.macSource, lanInterface: record.lanInterface, wgInterface: record.interface, tunnelAddress: record.tunnelAddress };
        chainChecks('', '', tables, plan);
        if (v6 && tables6) {
          chainChecks('6', 'ip6 ', tables6, { ...plan, macSource: v6.macSource, tunnelAddress: v6.tunnelAddress });
          check('ip6-forward', forwarding === '1', `${IPV6_FORWARDING}=${forwarding}`);
        }
      }
    } catch (e) {
      check('firewall', false, (e as Error).message);
    }

    const reasons = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    if (!checks.some((c) => c.name === 'handshake')) reasons.push('handshake: no WireGuard interface to read');
    const serving = reasons.length === 0;
    // Advisory checks (certificate expiry): shown in Status, without turning health red.
    checks.push(...(this.options.advisoryChecks?.() ?? []));
    const status: VmStatusReport = {
      interface: ifname,
      interfaceUp,
      publicKey: dump?.publicKey ?? config?.publicKey ?? '',
      listenPort: dump?.listenPort ?? 0,
      peers,
      ipForward,
      iptablesBackend: tools?.kind ?? '',
      checks,
      macSource: record?.phase === 'up' ? record.macSource : '',
      macSource6: record?.phase === 'up' ? (record.v6?.macSource ?? '') : '',
      tunnelAddresses: config?.addresses ?? [],
    };
    return { status, serving, reasons, sampledAtMs };
  }

  // -------------------------------------------------------------------------------------------

  /** Steps logged and handed to the caller; each ends the operation first if the agent stops or the caller went away. */
  private stepRunner(runner: Runner, ctx: OperationContext, stallAfterStep?: string): GuardedStepRunner {
    const listener = (record: StepRecord): void => {
      this.logger.info(`step ${record.step} ${record.state}`, {
        step: record.step,
        state: record.state,
        message: record.message,
        commands: record.commands.map((c) => c.argv.join(' ')),
      });
      ctx.onStep?.(record);
    };
    return new GuardedStepRunner(runner, listener, { gate: this.gate, signal: ctx.signal, stallAfterStep, logger: this.logger });
  }

  private async persist(record: JournalRecord): Promise<void> {
    record.updatedAtMs = this.now();
    await this.options.journal.write(record);
  }
}
