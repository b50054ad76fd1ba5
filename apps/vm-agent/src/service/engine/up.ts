/**
 * Up, as a list of steps (each streams the argv it ran), the way wg-quick's cmd_up reads:
 *   read-config → resolve-lan → clean-stale → wg-quick-up ┐ (beside:)
 *     detect-backend → firewall (filter, nat, mangle: one batch) → [firewall6] →
 *     ip-forward → [ip6-forward] → (wg-quick-up ends) → await-handshake → verify
 * `wg-quick up` is most of Up's time, so it starts as soon as what it needs is done: only the
 * reads that gate it (the route to the Mac, the link, the wg-quick leftovers) start together
 * once the config is read (early-reads.ts); the journal is written once they are in. The
 * backend detection and the firewall and forwarding steps run while wg-quick runs
 * (background-step.ts): they need nothing from it, and the Mac routes nothing through the VM
 * before the handshake. resolve-lan stays before it (wg-quick's policy rules, added one by
 * one, would answer the route to the Mac with the tunnel mid-way), and clean-stale's removals
 * too. Without nft, wg-quick writes iptables rules itself: the backend is then detected before
 * it starts (its rules would count as the system's). The kill switch and SNAT are in place
 * before forwarding is switched on: at no moment can the Mac's traffic be forwarded anywhere
 * but into the tunnel. Every change is journaled before it is made (write-ahead). A failure
 * after the first change rolls back everything the journal lists (`rollback-*` steps, down.ts's
 * teardown), once a running wg-quick has ended: a failed Up leaves the VM as if Down had run
 * (fail closed). Once every change is made, the first handshake read starts, and verify's reads as it returns.
 */
import { StoppingError, stepCause, type AppliedTunnel, type OperationContext, type OperationOutcome } from '@wgctl/agent-kit';
import type { IptablesSaveTable } from '@wgctl/parsers';
import { readTogether, type Runner } from '@wgctl/runner';
import { loadTunnelConfig, type TunnelConfig } from '../../host/config';
import {
  OWN_CHAINS,
  TABLES,
  desiredRules,
  detectBackend as detectIptables,
  ensureChains,
  existingTables,
  ip6Tools,
  ownChainsAgainst,
  ownChainsWanted,
  readRuleset,
  type FirewallTable,
  type ForwardingPlan,
  type IptablesTools,
} from '../../host/firewall';
import { IP_FORWARD, IPV6_FORWARDING, SRC_VALID_MARK, acceptRaName } from '../../host/sysctl';
import { linkState, readWgQuickLeftovers, removeWgQuickLeftovers, routeGet, upArgv, wgQuickTable, type LinkState } from '../../host/wireguard';
import type { JournalRecord } from '../journal';
import { Operation, causeMessage, interfaceMethod, type EngineScope, type StepResult, type UpRequest } from './context';
import { appliedBy } from './describe';
import { BackgroundStep } from './background-step';
import { Teardown, removeIpv6Chains, teardown } from './down';
import { EarlyReads, startedAhead } from './early-reads';
import { startGatingReads, takeReadsAhead } from './read-ahead';
import { handshakeBudget, latestHandshakes, waitForHandshake } from './handshake';
import { enableIpv6Forwarding, restoreIpv6Forwarding } from './ipv6-forwarding';

/** One Up: its request (already checked), and what its steps find out, each in its turn. */
class UpContext extends Operation {
  readonly request: UpRequest;
  /** The journal as this Up found it (an earlier Up's, or one left by a crash). */
  prior: JournalRecord | null = null;
  config!: TunnelConfig;
  /** What the Outcome reports: resolved while the steps run (as wg-quick will resolve them); never rejects. */
  applied!: Promise<AppliedTunnel>;
  /** Set by detect-backend (after wg-quick has started, unless wg-quick writes iptables rules itself). */
  tools: IptablesTools | undefined;
  /** The backend, for the steps after detect-backend. */
  get iptables(): IptablesTools {
    if (!this.tools) throw new Error('the iptables backend is not known yet');
    return this.tools;
  }
  /** One read of the rules serves the firewall step (and the tables it will create). */
  rulesetBefore: IptablesSaveTable[] = [];
  /** Given, or found by resolve-lan. */
  lanInterface: string;
  plan!: ForwardingPlan;
  plan6: ForwardingPlan | undefined;
  /** The journal record, written before each change. */
  record!: JournalRecord;
  /** Once the record is written: a failure rolls back. */
  changed = false;
  /** The WireGuard link as clean-stale found it. */
  link!: LinkState;
  /** The first handshake read, started once every change is in (startFinalReads): await-handshake's first read. */
  firstHandshakeRead: ReturnType<typeof latestHandshakes> | undefined;
  /** wg-quick would write its rules with `iptables-restore` (no nft), which fails at once on a held xtables lock. */
  wgQuickUsesIptables = false;
  /** `wg show … latest-handshakes` reads await-handshake made (1: the handshake was there at once). */
  handshakeReads = 0;
  /** await-handshake's sentence (which endpoint, how long), for onTunnelReady. */
  handshake = '';

  constructor(
    engine: EngineScope,
    request: UpRequest,
    ctx: OperationContext,
    /** The first steps' reads, started together (under the dry-run layer: reads run either way). */
    readonly early = new EarlyReads(engine.options.runner),
  ) {
    super(engine, ctx, { dryRun: request.dryRun, firstStep: '', stallAfterStep: engine.options.stallAfterStep, system: early });
    this.request = request;
    this.lanInterface = request.lanInterface ?? '';
  }
}

type UpStep = (up: UpContext, r: Runner) => Promise<StepResult>;

/** `request` is checked already (VmEngine.up). `ctx.signal`: the caller went away — the Up ends before its next step and is rolled back. */
export async function runUp(engine: EngineScope, request: UpRequest, ctx: OperationContext): Promise<OperationOutcome> {
  // A Describe that announced this Up may have started its first reads (read-ahead.ts).
  const up = new UpContext(engine, request, ctx, takeReadsAhead(engine));
  const step = (name: string, body: UpStep): Promise<void> => up.step(name, (r) => body(up, r));
  let tunnel: BackgroundStep | undefined;
  try {
    up.prior = await engine.options.journal.read();
    await step('read-config', readConfig);
    startEarlyReads(up);
    up.applied = appliedBy(engine, up.config);
    // The controller makes the Mac fail-closed as soon as it knows the servers: say them now,
    // while the tunnel comes up (a dry run brings nothing up: no plan).
    const onPlan = ctx.onPlan;
    if (onPlan && !up.dryRun) void up.applied.then(onPlan, () => undefined);
    await step('resolve-lan', resolveLan);
    await step('clean-stale', cleanStale);
    await up.early.close();
    // Without nft, wg-quick's own iptables rules would count in the detection: detected first.
    if (up.wgQuickUsesIptables) await step('detect-backend', detectBackend);
    tunnel = new BackgroundStep(up, 'wg-quick-up', (r, ready) => wgQuickUp(up, r, ready));
    await tunnel.ready();
    if (!up.tools) await step('detect-backend', detectBackend);
    const tools = await journalBackend(up);
    // Both legacy: wg-quick's iptables-restore (no -w) would fail on the lock ours holds.
    if (up.wgQuickUsesIptables && tools.kind === 'legacy') await tunnel.join();
    await step('firewall', firewall);
    if (!up.plan6 && up.record.v6) await step('firewall6', removeEarlierIpv6);
    if (up.plan6) await step('firewall6', firewall6);
    await step('ip-forward', ipForward);
    if (up.plan6) await step('ip6-forward', ip6Forward);
    await tunnel.join();
    // Every change is made: verify's reads go side by side with the first handshake read.
    if (!up.dryRun) startFinalReads(up);
    await step('await-handshake', awaitHandshake);
    // Every change is in: the Mac's routes and DNS need not wait for verify and the journal.
    if (!up.dryRun) ctx.onTunnelReady?.(up.handshake);
    // The handshake took more than that first read: verify reads the system as it is now.
    if (up.handshakeReads > 1) await up.early.close();
    await step('verify', verify);
    await up.early.close();
    if (!up.dryRun) {
      up.record.phase = 'up';
      await up.persist(up.record);
    }
    return { ok: true, failedStep: '', error: '', totalMs: up.elapsedMs(), vmApplied: await up.applied };
  } catch (e) {
    // Nothing of this Up still runs when it ends: not an early read, not wg-quick.
    await Promise.all([up.early.close(), tunnel?.settled()]);
    return rollBack(up, e);
  }
}

/**
 * Starts the reads that gate `wg-quick up` (read-ahead.ts's startGatingReads: a Describe that
 * announced this Up may have started them already). The backend detection is not among them:
 * it starts once wg-quick has. The answers themselves wait for the steps.
 */
function startEarlyReads(up: UpContext): void {
  const { macSource, macSource6 } = up.request;
  const addresses = [{ address: macSource.split('/')[0], family: 4 as const }, ...(macSource6 ? [{ address: macSource6.split('/')[0], family: 6 as const }] : [])];
  startGatingReads(up.early.starter, up.config, { lanInterface: up.lanInterface, addresses });
}

/**
 * Once every change is made (a second EarlyReads window): the first handshake read alone, as
 * tunnel_ready (the Mac's routes) waits for it; verify's reads as it returns (beside it, they
 * slowed it from ~5 to 11 ms). Only the Outcome waits for them. A read from wireguard-go's
 * control socket takes <1 ms and no process: verify then reads in its own step, after
 * tunnel_ready (started here, their spawns would hold the wait's continuation ~5 ms).
 */
function startFinalReads(up: UpContext): void {
  const { config, plan, plan6 } = up;
  up.early.reopen();
  const r = up.early.starter;
  // Kept for the wait's first read (handshake.ts). Registered before the wait's own `await` on
  // it: verify's reads start before that step asks.
  const first = (up.firstHandshakeRead = latestHandshakes(up.engine, r, config.interface));
  first.catch(() => undefined);
  void first.then((read) => read.fromSocket || startVerifyReads(), startVerifyReads);
  function startVerifyReads(): void {
    startedAhead(readRuleset(r, up.iptables));
    startedAhead(linkState(r, plan.wgInterface));
    if (plan6) startedAhead(readRuleset(r, ip6Tools(up.iptables)));
  }
}

/**
 * A failed Up. Stopping: no rollback now — the journal (phase up-in-progress) makes the next
 * start remove it. Cancelled (or failed): rolled back to the end, whether or not the caller is
 * still there; the rollback's steps never become the failed step.
 */
async function rollBack(up: UpContext, e: unknown): Promise<OperationOutcome> {
  const error = causeMessage(e);
  up.engine.logger.warn('Up failed', { step: up.failedStep, error });
  let rollbackError = '';
  if (up.changed && !up.dryRun && !(stepCause(e) instanceof StoppingError)) {
    up.steps.ignoreCancel();
    try {
      await teardown(new Teardown(up, up.record, false, (name, body) => up.steps.step(`rollback-${name}`, body)));
      await up.engine.options.journal.remove();
    } catch (re) {
      rollbackError = `; rollback incomplete (${causeMessage(re)}): the journal is kept, run Down`;
    }
  }
  return { ok: false, failedStep: up.failedStep, error: `${error}${rollbackError}`, totalMs: up.elapsedMs() };
}

// ---------------------------------------------------------------------------------------------
// Before the first change

async function readConfig(up: UpContext): Promise<StepResult> {
  const { request, prior } = up;
  const config = (up.config = await loadTunnelConfig(up.engine.options.configPath));
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
}

/** Runs beside `wg-quick up` (see runUp for when it comes first); journalBackend then writes what it found. */
async function detectBackend(up: UpContext, r: Runner): Promise<StepResult> {
  if (up.prior?.backend) {
    up.tools = up.engine.backend = up.prior.backend;
    up.rulesetBefore = await readRuleset(r, up.tools);
    return { skipped: `${up.tools.iptables} (recorded in the journal)` };
  }
  const detected = await detectIptables(r);
  up.tools = up.engine.backend = detected.tools;
  up.rulesetBefore = detected.ruleset ?? (await readRuleset(r, up.tools));
  return detected.evidence;
}

async function resolveLan(up: UpContext, r: Runner): Promise<StepResult> {
  const { request, config } = up;
  if (up.lanInterface) {
    const link = await linkState(r, up.lanInterface);
    if (!link.exists) throw new Error(`lan_interface ${up.lanInterface} does not exist`);
    return { skipped: `lan_interface ${up.lanInterface} given` };
  }
  const route = await routeGet(r, request.macSource.split('/')[0]);
  if ('unreachable' in route) throw new Error(`cannot tell which interface faces the Mac: ${route.unreachable}; pass lan_interface`);
  if (route.dev === config.interface) {
    throw new Error(`the route to ${request.macSource} goes through the tunnel ${config.interface}; pass lan_interface`);
  }
  const lanInterface = (up.lanInterface = route.dev);
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
}

/**
 * The plan, and the journal record it makes, written before the first change (clean-stale's
 * removals, then `wg-quick up`): from here on every change is covered. One write for both:
 * the interface wg-quick will bring up is listed already (once the link is known absent).
 */
async function writeAhead(up: UpContext, r: Runner): Promise<void> {
  const { request, config, lanInterface } = up;
  up.plan = { macSource: request.macSource, lanInterface, wgInterface: config.interface, tunnelAddress: config.tunnelIPv4! };
  up.plan6 = request.macSource6
    ? { macSource: request.macSource6, lanInterface, wgInterface: config.interface, tunnelAddress: config.tunnelIPv6! }
    : undefined;
  up.record = upRecord(up);
  if (!up.dryRun) {
    if (!up.link.exists) {
      const srcValidMarkPrevious = await up.sysctl.read(SRC_VALID_MARK, r).catch(() => null);
      up.record.wgInterface = { method: interfaceMethod(up.engine, config), srcValidMarkPrevious };
    }
    await up.persist(up.record);
  }
  up.changed = true;
}

/** nft-backed tables the firewall steps will cause to exist (none known before the backend is). */
function tablesToCreate(up: UpContext): FirewallTable[] {
  if (up.tools?.kind !== 'nft') return [];
  const tablesBefore = existingTables(up.rulesetBefore);
  return TABLES.filter((t) => !tablesBefore.has(t));
}

/**
 * Write-ahead of the firewall steps: the backend, and the tables their batches will create,
 * journaled unless the record says so already (detected before the first write).
 */
async function journalBackend(up: UpContext): Promise<IptablesTools> {
  const { record } = up;
  const tools = up.iptables;
  const createdTables = [...new Set([...record.createdTables, ...tablesToCreate(up)])];
  const journaled = record.backend;
  const sameBackend = journaled !== null && (['kind', 'iptables', 'save', 'version'] as const).every((k) => journaled[k] === tools[k]);
  if (sameBackend && createdTables.length === record.createdTables.length) return tools;
  record.backend = tools;
  record.createdTables = createdTables;
  if (!up.dryRun) await up.persist(record);
  return tools;
}

/** This Up's journal record: what an earlier one applied and still owns, plus what this one will apply. */
function upRecord(up: UpContext): JournalRecord {
  const { prior, plan, plan6, tools, config } = up;
  return {
    version: 1,
    phase: 'up-in-progress',
    interface: config.interface,
    configPath: config.path,
    macSource: plan.macSource,
    lanInterface: up.lanInterface,
    tunnelAddress: plan.tunnelAddress,
    backend: tools ?? prior?.backend ?? null,
    chains: [...new Set([...(prior?.chains ?? []), ...TABLES])],
    createdTables: [...new Set([...(prior?.createdTables ?? []), ...tablesToCreate(up)])],
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
    updatedAtMs: up.engine.now(),
  };
}

// ---------------------------------------------------------------------------------------------
// The changes, each journaled first

/**
 * The three IPv4 chains in one restore batch (one process). Tables commit one by one, filter
 * (the kill switch) first: a rejection leaves a prefix of them, which the journal (every table,
 * and the tables to create, written before) lets the rollback remove.
 */
async function firewall(up: UpContext, r: Runner): Promise<StepResult> {
  return ensureChains(r, up.iptables, ownChainsWanted(up.rulesetBefore, desiredRules(up.plan)), { showBatch: up.dryRun });
}

/** An earlier Up forwarded the Mac's IPv6, this one does not: forwarding off, then the rules. */
async function removeEarlierIpv6(up: UpContext, r: Runner): Promise<StepResult> {
  const v6 = up.record.v6!;
  const restored = await restoreIpv6Forwarding(r, up.sysctl, v6, { dryRun: up.dryRun });
  const removed = await removeIpv6Chains(r, up.iptables, v6, up.dryRun);
  if (!up.dryRun) {
    delete up.record.v6;
    await up.persist(up.record);
  }
  const text = (x: StepResult): string => (typeof x === 'string' ? x : x.skipped);
  return `mac_source6 not given: the IPv6 side of the earlier Up removed (${text(restored)}; ${text(removed)})`;
}

async function firewall6(up: UpContext, r: Runner): Promise<StepResult> {
  const tools6 = ip6Tools(up.iptables);
  const ruleset6 = await readRuleset(r, tools6);
  const v6 = up.record.v6!;
  if (up.iptables.kind === 'nft') {
    // Write-ahead: the ip6 tables this batch will cause to exist, before it runs.
    const tables6Before = existingTables(ruleset6);
    const created = TABLES.filter((t) => !tables6Before.has(t) && !v6.createdTables.includes(t));
    if (created.length > 0 && !up.dryRun) {
      v6.createdTables = [...v6.createdTables, ...created];
      await up.persist(up.record);
    }
  }
  const desired6 = desiredRules(up.plan6!, 6);
  return ensureChains(r, tools6, ownChainsWanted(ruleset6, desired6), { showBatch: up.dryRun });
}

async function ipForward(up: UpContext, r: Runner): Promise<StepResult> {
  const { sysctl, record } = up;
  const current = await sysctl.read(IP_FORWARD, r);
  if (current === '1') return { skipped: `${IP_FORWARD} is already 1` };
  if (up.dryRun) return `would write 1 to ${sysctl.where(IP_FORWARD)} (now ${current})`;
  record.ipForward = { previous: record.ipForward?.previous ?? current, applied: '1' };
  await up.persist(record);
  await sysctl.write(IP_FORWARD, '1', r);
  return `${IP_FORWARD}: ${current} → 1 (${sysctl.where(IP_FORWARD)}; ${record.ipForward.previous} is restored by Down)`;
}

async function ip6Forward(up: UpContext, r: Runner): Promise<StepResult> {
  return enableIpv6Forwarding(r, up.sysctl, up.record, up.lanInterface, { dryRun: up.dryRun, persist: (record) => up.persist(record) });
}

async function cleanStale(up: UpContext, r: Runner): Promise<StepResult> {
  const { config } = up;
  // The link check and the leftover reads side by side; removals only once both are in.
  const [link, leftovers] = await readTogether([
    linkState(r, config.interface),
    readWgQuickLeftovers(r, config.interface, wgQuickTable(config.parsed.interface.table)),
  ]);
  up.link = link;
  up.wgQuickUsesIptables = !leftovers.nftInstalled;
  await writeAhead(up, r);
  if (link.exists) return { skipped: `${config.interface} exists: its wg-quick state is live` };
  const removed = await removeWgQuickLeftovers(r, leftovers);
  return removed.length ? `removed leftovers of a crashed wg-quick: ${removed.join('; ')}` : { skipped: 'no wg-quick leftovers' };
}

/**
 * Runs beside the firewall steps (the journal lists the interface already: writeAhead).
 * `ready` once wg-quick has started: what runs beside it starts after it, never before.
 */
async function wgQuickUp(up: UpContext, r: Runner, ready: () => void): Promise<StepResult> {
  const { config, record } = up;
  if (up.link.exists) {
    const owner = record.wgInterface ? `brought up by wgctl (${record.wgInterface.method})` : 'not brought up by wgctl: Down leaves it up';
    return { skipped: `${config.interface} is already up, ${owner}` };
  }
  const method = interfaceMethod(up.engine, config);
  // No read of the link here: await-handshake's first `wg show` needs the interface (and
  // names it when missing), and verify checks that it is up.
  const running = r.run(upArgv(method, config.path, config.interface), { timeoutMs: 60_000 });
  ready();
  await running;
  return `${config.interface} brought up (${method})`;
}

// ---------------------------------------------------------------------------------------------
// After the changes

async function awaitHandshake(up: UpContext, r: Runner): Promise<StepResult> {
  if (up.dryRun) return { skipped: 'dry-run: no handshake to wait for' };
  const { message, reads } = await waitForHandshake(up.engine, r, up.config, handshakeBudget(up.engine, up.request, up.ctx), () => up.steps.checkpoint(), up.firstHandshakeRead);
  up.handshakeReads = reads;
  up.handshake = message;
  return message;
}

async function verify(up: UpContext, r: Runner): Promise<StepResult> {
  if (up.dryRun) return { skipped: 'dry-run: nothing was changed' };
  const { plan6, config } = up;
  const problems = await notInPlace(up, r);
  if (plan6) problems.push(...(await notInPlace6(up, r, plan6)));
  if (problems.length) throw new Error(`not in place after Up: ${problems.join('; ')}`);
  const six = plan6 ? `; ip6tables ${OWN_CHAINS.map((c) => c.chain).join(', ')} in place; ${IPV6_FORWARDING}=1` : '';
  return `${OWN_CHAINS.map((c) => c.chain).join(', ')} in place; ${IP_FORWARD}=1${six}; ${config.interface} up`;
}

async function notInPlace(up: UpContext, runner: Runner): Promise<string[]> {
  const { plan } = up;
  const problems: string[] = [];
  const [tables, forward, link] = await readTogether([
    readRuleset(runner, up.iptables),
    up.sysctl.read(IP_FORWARD, runner),
    linkState(runner, plan.wgInterface),
  ]);
  for (const { state, inPlace } of ownChainsAgainst(tables, desiredRules(plan))) {
    if (!inPlace) problems.push(`${state.own.table} ${state.own.chain} differs (jumps: ${state.jumps}, rules: ${state.rules.length})`);
  }
  if (forward !== '1') problems.push(`${IP_FORWARD}=${forward}`);
  if (!link.up) problems.push(`${plan.wgInterface} is ${link.exists ? 'down' : 'missing'}`);
  return problems;
}

async function notInPlace6(up: UpContext, runner: Runner, plan6: ForwardingPlan): Promise<string[]> {
  const problems: string[] = [];
  const raName = acceptRaName(plan6.lanInterface);
  const [tables, forwarding, acceptRa] = await readTogether([
    readRuleset(runner, ip6Tools(up.iptables)),
    up.sysctl.read(IPV6_FORWARDING, runner),
    up.sysctl.read(raName, runner),
  ]);
  for (const { state, inPlace } of ownChainsAgainst(tables, desiredRules(plan6, 6))) {
    if (!inPlace) problems.push(`ip6 ${state.own.table} ${state.own.chain} differs (jumps: ${state.jumps}, rules: ${state.rules.length})`);
  }
  if (forwarding !== '1') problems.push(`${IPV6_FORWARDING}=${forwarding}`);
  if (acceptRa === '1') problems.push(`${raName}=1 (router advertisements ignored while forwarding)`);
  return problems;
}
