/**
 * Sequencing of the two agents, independent of gRPC and of the terminal: each operation
 * takes the two agent interfaces and an event listener, and returns a result object that
 * the commands render. The order is the safety property:
 *   up:   connect both → VM Up (handshake awaited) → Mac Up
 *         (the VM Up's Outcome says what it applied: the server endpoints the Mac pins)
 *   down: Mac Down → VM Down (the Mac stops sending into the VM before the tunnel goes)
 * A failed up rolls back, in reverse order, only what this run changed.
 */
import {
  type AppliedIpv6Mode,
  type Command,
  type Endpoint,
  Ipv6Mode,
  type MacDescription,
  type MacUpRequest,
  type Outcome,
  PROTOCOL_VERSION,
  type StepEvent,
  StepState,
  type VmApplied,
  type VmDescription,
  type VmUpRequest,
} from '@wgctl/proto';
import { AgentCallError, type MacAgentApi, SIDE_LABEL, type Side, type VmAgentApi } from './agents';

/** grpc.status.ABORTED (this module stays free of gRPC code). */
const GRPC_ABORTED = 10;

const STEP_STARTED = StepState.STEP_STATE_STARTED;
const STEP_DONE = StepState.STEP_STATE_DONE;
const STEP_SKIPPED = StepState.STEP_STATE_SKIPPED;
const STEP_FAILED = StepState.STEP_STATE_FAILED;

export type StepId =
  | 'connect'
  | 'vm-up'
  | 'mac-up'
  | 'rollback-mac'
  | 'rollback-vm'
  | 'mac-down'
  | 'vm-down'
  | 'vm-plan'
  | 'mac-plan';

export const STEP_TITLES: Record<StepId, string> = {
  connect: 'Connect to both agents and check protocol versions',
  'vm-up': 'VM: bring the tunnel up and await a handshake, then forwarding + SNAT; meanwhile the Mac: kill switch, endpoint pinning',
  'mac-up': 'Mac: routes via the VM, DNS',
  'rollback-mac': 'Rollback: Mac Down',
  'rollback-vm': 'Rollback: VM Down',
  'mac-down': 'Mac: remove routes, kill switch and DNS',
  'vm-down': 'VM: remove forwarding + SNAT, tunnel down',
  'vm-plan': 'VM: Up in dry-run',
  'mac-plan': 'Mac: Up in dry-run',
};

export const UP_STEPS: StepId[] = ['connect', 'vm-up', 'mac-up'];
export const ROLLBACK_STEPS: StepId[] = ['rollback-mac', 'rollback-vm'];
export const DOWN_STEPS: StepId[] = ['connect', 'mac-down', 'vm-down'];
export const PLAN_STEPS: StepId[] = ['connect', 'vm-plan', 'mac-plan'];

export type OrchestratorEvent =
  | { kind: 'start'; step: StepId; atMs: number }
  | { kind: 'agent'; step: StepId; side: Side; event: StepEvent; atMs: number }
  | { kind: 'done'; step: StepId; detail: string; atMs: number }
  | { kind: 'skipped'; step: StepId; detail: string; atMs: number }
  | { kind: 'failed'; step: StepId; error: string; atMs: number }
  /** Emitted once, before rolling back: the steps that will follow, in order. */
  | { kind: 'rollback'; steps: StepId[]; atMs: number };

export type EventListener = (event: OrchestratorEvent) => void;

export interface FailedCommand {
  argv: string[];
  exitCode: number;
  stderr: string;
}

export interface Failure {
  step: StepId;
  /** The agent's own step name (e.g. "wg-quick-up") when an agent reported the failure. */
  agentStep?: string;
  message: string;
  /** The command that failed, with its stderr, when the agent reported one. */
  command?: FailedCommand;
}

export interface RollbackEntry {
  side: Side;
  ok: boolean;
  error?: string;
}

export interface UpOptions {
  /** config vm.address: the VM's vnic address, next hop of the Mac's split routes. */
  vmAddress: string;
  /** config vm.address6: the VM's IPv6 on the vnic, next hop of the Mac's IPv6 split routes. */
  vmAddress6?: string;
  /** The Mac's address facing the VM (SNAT source on the VM). Default: mac-agent Describe. */
  macSource?: string;
  /** Last resort for macSource: this host's source address towards the VM (same-host only). */
  localSource?: () => Promise<string | undefined>;
  /** Resolvers through the tunnel. Default: the DNS of the VM's WireGuard config. */
  dnsServers?: string[];
  handshakeTimeoutMs?: number;
  lanInterface?: string;
  /** Default: auto (Ipv6Mode.IPV6_MODE_UNSPECIFIED). */
  ipv6?: Ipv6Mode;
  /** Aborting stops before the next step (the one in flight completes), then rolls back. */
  signal?: AbortSignal;
  now?: () => number;
}

export interface UpResult {
  ok: boolean;
  totalMs: number;
  failure?: Failure;
  rollback: RollbackEntry[];
  /** What may still be in place after a failed rollback (human sentences). */
  left: string[];
  endpoints: Endpoint[];
  tunnelAddresses: string[];
  macSource?: string;
  /** What connect decided for the Mac's IPv6 (routed through the tunnel, or blocked) and why. */
  ipv6?: Ipv6Decision;
  vm?: VmDescription;
  mac?: MacDescription;
}

class StepFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs one orchestrator step: start/done/failed events around `fn`. */
class Sequencer {
  private readonly t0: number;

  constructor(
    private readonly onEvent: EventListener,
    private readonly now: () => number,
  ) {
    this.t0 = now();
  }

  elapsed(): number {
    return this.now() - this.t0;
  }

  emit(event: DistributiveOmit<OrchestratorEvent, 'atMs'>): void {
    this.onEvent({ ...event, atMs: this.elapsed() } as OrchestratorEvent);
  }

  async run<T>(step: StepId, fn: () => Promise<{ value: T; detail: string }>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) {
      this.emit({ kind: 'skipped', step, detail: 'interrupted' });
      throw new StepFailure({ step, message: 'interrupted by the user (Ctrl-C)' });
    }
    this.emit({ kind: 'start', step });
    try {
      const { value, detail } = await fn();
      this.emit({ kind: 'done', step, detail });
      return value;
    } catch (error) {
      const failure = error instanceof StepFailure ? error.failure : { step, message: messageOf(error) };
      this.emit({ kind: 'failed', step, error: failure.message });
      throw new StepFailure({ ...failure, step });
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Collects an agent's step stream: last event per step, whether anything changed. */
export class AgentStepLog {
  readonly order: string[] = [];
  readonly last = new Map<string, StepEvent>();
  /** True once any step finished DONE or FAILED (i.e. the agent may have changed something). */
  changed = false;

  record(event: StepEvent): void {
    if (!this.last.has(event.step)) this.order.push(event.step);
    this.last.set(event.step, event);
    if (event.state === STEP_DONE || event.state === STEP_FAILED) this.changed = true;
  }

  /** The failed step's last non-zero command, the usual culprit. */
  failedCommand(step: string | undefined): { agentStep?: string; command?: FailedCommand } {
    const candidates = step ? [this.last.get(step)] : [...this.last.values()].filter((e) => e.state === STEP_FAILED);
    for (const event of candidates.reverse()) {
      if (!event) continue;
      const bad = [...event.commands].reverse().find((c) => c.exitCode !== 0 && c.exitCode !== -1 && !c.dryRun);
      if (bad) return { agentStep: event.step, command: toFailedCommand(bad) };
      return { agentStep: event.step };
    }
    return { agentStep: step || undefined };
  }

  terminalEvents(): StepEvent[] {
    return this.order.map((step) => this.last.get(step)!).filter((e) => e.state !== STEP_STARTED);
  }
}

function toFailedCommand(c: Command): FailedCommand {
  return { argv: [...c.argv], exitCode: c.exitCode, stderr: c.stderr };
}

function outcomeFailure(step: StepId, side: Side, outcome: Outcome, log: AgentStepLog): Failure {
  const { agentStep, command } = log.failedCommand(outcome.failedStep || undefined);
  const where = agentStep ? ` at step ${agentStep}` : '';
  const error = outcome.error || 'no error message';
  return { step, agentStep, command, message: `${SIDE_LABEL[side]} failed${where}: ${error}` };
}

/** Calls `rpc` (an Up/Down stream), forwarding step events; throws a StepFailure unless ok. */
async function streamStep(
  seq: Sequencer,
  step: StepId,
  side: Side,
  log: AgentStepLog,
  rpc: (onStep: (e: StepEvent) => void) => Promise<Outcome>,
): Promise<Outcome> {
  const outcome = await rpc((event) => {
    log.record(event);
    seq.emit({ kind: 'agent', step, side, event });
  });
  if (!outcome.ok) throw new StepFailure(outcomeFailure(step, side, outcome, log));
  return outcome;
}

function checkAgent(side: Side, agent: { agent: string; protocolVersion: string; version: string } | undefined): void {
  const expected = SIDE_LABEL[side];
  if (!agent) throw new Error(`${expected} sent no AgentInfo in Describe`);
  if (agent.protocolVersion !== PROTOCOL_VERSION) {
    throw new Error(
      `${expected} speaks protocol "${agent.protocolVersion || '(none)'}" (version ${agent.version || '?'}), ` +
        `this wgctl needs "${PROTOCOL_VERSION}": upgrade the agent or wgctl so they match`,
    );
  }
  if (agent.agent && agent.agent !== expected) {
    throw new Error(`the address configured for the ${expected} answers as "${agent.agent}": check vm/mac addresses in the config`);
  }
}

export interface Connected {
  vm?: VmDescription;
  mac?: MacDescription;
  /** Per side: why it is not usable (unreachable, wrong protocol). */
  errors: Partial<Record<Side, string>>;
}

/** Waits for both channels and describes both agents, in parallel; never throws. */
export async function connectBoth(vm: VmAgentApi, mac: MacAgentApi): Promise<Connected> {
  const attempt = async <T extends { agent?: { agent: string; protocolVersion: string; version: string } }>(
    side: Side,
    api: { describe(): Promise<T> },
  ): Promise<T> => {
    const description = await api.describe();
    checkAgent(side, description.agent);
    return description;
  };
  const [v, m] = await Promise.allSettled([attempt('vm', vm), attempt('mac', mac)]);
  const result: Connected = { errors: {} };
  if (v.status === 'fulfilled') result.vm = v.value;
  else result.errors.vm = messageOf(v.reason);
  if (m.status === 'fulfilled') result.mac = m.value;
  else result.errors.mac = messageOf(m.reason);
  return result;
}

function connectDetail(c: Connected): string {
  const parts: string[] = [];
  if (c.vm?.agent) parts.push(`vm-agent ${c.vm.agent.version} on ${c.vm.agent.hostname}`);
  if (c.mac?.agent) parts.push(`mac-agent ${c.mac.agent.version} (${c.mac.agent.driver}) on ${c.mac.agent.hostname}`);
  return parts.join(', ');
}

function requireBoth(c: Connected): { vm: VmDescription; mac: MacDescription } {
  const problems = (Object.entries(c.errors) as [Side, string][]).map(([, e]) => e);
  if (problems.length > 0 || !c.vm || !c.mac) throw new Error(problems.join('; '));
  return { vm: c.vm, mac: c.mac };
}

async function resolveMacSource(opts: UpOptions, mac: MacDescription): Promise<string> {
  const source = opts.macSource || mac.vnicAddress || (opts.localSource ? await opts.localSource() : undefined);
  if (!source) {
    throw new Error(
      'cannot tell the Mac\'s address facing the VM: mac-agent did not report one (vnic_address); ' +
        'pass --mac-source ADDRESS (the Mac\'s address on the VM network)',
    );
  }
  return source;
}

export interface Ipv6Decision {
  mode: AppliedIpv6Mode;
  /** Set when routing: the Mac's IPv6 on the vnic (the VM forwards and NATs it) and the VM's. */
  macSource6?: string;
  vmAddress6?: string;
  /** Why (for block under auto: what was missing), for progress and status. */
  reason: string;
}

/**
 * The Mac's IPv6 is routed through the tunnel only when every piece is there: the VM's IPv6 on
 * the vnic (config vm.address6), an IPv6 tunnel address in the VM's WireGuard config (its NAT66
 * source) and the Mac's global IPv6 on the vnic (the source the VM forwards). `route` insists
 * on them; `auto` blocks without them; `block` always blocks. Pure.
 */
export function decideIpv6(opts: Pick<UpOptions, 'ipv6' | 'vmAddress6'>, vm: VmDescription, mac: MacDescription): Ipv6Decision {
  const requested = opts.ipv6 ?? Ipv6Mode.IPV6_MODE_UNSPECIFIED;
  if (requested === Ipv6Mode.IPV6_MODE_BLOCK) return { mode: Ipv6Mode.IPV6_MODE_BLOCK, reason: 'ipv6: block' };
  const tunnel6 = vm.tunnelAddresses.find((a) => a.includes(':'));
  const missing: string[] = [];
  if (!opts.vmAddress6) missing.push('vm.address6 in the config (the VM\'s IPv6 on the vnic: wgctl init --vm-address6 IP)');
  if (!tunnel6) {
    const have = vm.tunnelAddresses.length > 0 ? `has only ${vm.tunnelAddresses.join(', ')}` : 'has none';
    missing.push(`an IPv6 Address in the VM's WireGuard config (vm-agent's tunnel addresses: ${have})`);
  }
  if (!mac.vnicAddress6) missing.push(`a global IPv6 address on the Mac's vnic${mac.vnicInterface ? ` ${mac.vnicInterface}` : ''} (mac-agent reports none)`);
  if (missing.length === 0) {
    return {
      mode: Ipv6Mode.IPV6_MODE_ROUTE,
      macSource6: mac.vnicAddress6,
      vmAddress6: opts.vmAddress6,
      reason: `routed: ${mac.vnicAddress6} via ${opts.vmAddress6}, NAT66 to ${stripPrefix(tunnel6!)}`,
    };
  }
  if (requested === Ipv6Mode.IPV6_MODE_ROUTE) {
    throw new Error(`ipv6: route cannot route the Mac's IPv6 through the tunnel: missing ${missing.join('; ')}`);
  }
  return { mode: Ipv6Mode.IPV6_MODE_BLOCK, reason: `ipv6: auto blocks IPv6: missing ${missing.join('; ')}` };
}

/** The first step of up and plan: both agents described, the Mac's address facing the VM, the IPv6 mode. */
function connectStep(seq: Sequencer, vm: VmAgentApi, mac: MacAgentApi, opts: UpOptions) {
  return seq.run('connect', async () => {
    const c = await connectBoth(vm, mac);
    const both = requireBoth(c);
    const source = await resolveMacSource(opts, both.mac);
    const ipv6 = decideIpv6(opts, both.vm, both.mac);
    const shown = ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? `IPv6 routed (Mac ${ipv6.macSource6} via ${ipv6.vmAddress6})` : 'IPv6 blocked';
    return { value: { ...both, macSource: source, ipv6 }, detail: `${connectDetail(c)}; Mac source ${source}; ${shown}` };
  }, opts.signal);
}

function stripPrefix(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

export function addressesOf(cidrs: string[]): string[] {
  return cidrs.map(stripPrefix);
}

/**
 * The Mac pins the endpoints the VM's Up applied. The IPv6 decision is explicit on the Mac:
 * route with the VM's IPv6, else block (never the agent's own auto).
 */
function macUpRequest(opts: UpOptions, vm: VmDescription, applied: VmApplied, ipv6: Ipv6Decision, dryRun: boolean, killSwitchOnly = false): MacUpRequest {
  return {
    vmAddress: opts.vmAddress,
    endpoints: applied.endpoints,
    dnsServers: opts.dnsServers && opts.dnsServers.length > 0 ? opts.dnsServers : vm.dns,
    dryRun,
    ipv6: ipv6.mode,
    vmAddress6: ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? ipv6.vmAddress6! : '',
    killSwitchOnly,
  };
}

function vmUpRequest(opts: UpOptions, macSource: string, ipv6: Ipv6Decision, dryRun: boolean): VmUpRequest {
  return {
    macSource,
    dryRun,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 0,
    // Empty: the VM forwards IPv4 only (the Mac blocks its IPv6).
    macSource6: ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? ipv6.macSource6! : '',
    lanInterface: opts.lanInterface ?? '',
  };
}

function describeEndpoints(endpoints: Endpoint[]): string {
  return endpoints.map((e) => `${e.ip || e.host}:${e.port}`).join(', ') || 'none';
}

/** What the VM's Up applied (dry-run: would apply), from its Outcome; throws when it is not usable. */
function appliedByVm(outcome: Outcome): { applied: VmApplied; detail: string } {
  const applied = outcome.vmApplied;
  if (!applied) throw new Error("vm-agent's Up did not report what it applied (vm_applied): the vm-agent is older than this wgctl; upgrade it");
  if (applied.endpoints.length === 0) throw new Error('vm-agent reports no WireGuard server endpoints: check its wg-quick config');
  if (applied.tunnelAddresses.length === 0) throw new Error('vm-agent reports no tunnel address ([Interface] Address)');
  return { applied, detail: `endpoints ${describeEndpoints(applied.endpoints)}; tunnel ${applied.tunnelAddresses.join(', ')}` };
}

export async function up(
  vm: VmAgentApi,
  mac: MacAgentApi,
  opts: UpOptions,
  onEvent: EventListener = () => {},
): Promise<UpResult> {
  const seq = new Sequencer(onEvent, opts.now ?? Date.now);
  const result: UpResult = { ok: false, totalMs: 0, rollback: [], left: [], endpoints: [], tunnelAddresses: [] };
  const vmLog = new AgentStepLog();
  const macLog = new AgentStepLog();
  let vmUpStarted = false;
  let vmUpOutcome: Outcome | undefined;
  let vmUpError: unknown;
  let macUpStarted = false;
  let macUpError: unknown;

  try {
    const described = await connectStep(seq, vm, mac, opts);
    result.vm = described.vm;
    result.mac = described.mac;
    const macSource = described.macSource;
    result.macSource = macSource;
    const ipv6 = described.ipv6;
    result.ipv6 = ipv6;

    const applied = await seq.run('vm-up', async () => {
      vmUpStarted = true;
      // Fail-closed early: as soon as the VM says which servers it will use, the Mac loads its
      // kill switch (it lets the VM's WireGuard UDP out) and pins them, while the tunnel comes up.
      let macKillSwitch: Promise<Outcome> | undefined;
      const makeMacFailClosed = (planned: VmApplied): void => {
        if (macKillSwitch || planned.endpoints.length === 0) return;
        macUpStarted = true;
        macKillSwitch = streamStep(seq, 'vm-up', 'mac', macLog, (onStep) =>
          mac.up(macUpRequest(opts, described.vm, planned, ipv6, false, true), onStep).catch((error: unknown) => {
            macUpError = error;
            throw error;
          }),
        );
        macKillSwitch.catch(() => undefined); // awaited below, after the VM's answer
      };
      try {
        vmUpOutcome = await streamStep(seq, 'vm-up', 'vm', vmLog, (onStep) =>
          vm.up(vmUpRequest(opts, macSource, ipv6, false), onStep, makeMacFailClosed).catch((error: unknown) => {
            vmUpError = error;
            throw error;
          }),
        );
      } finally {
        // Whatever the VM answered, the Mac's part is over before anything is judged or rolled back.
        await macKillSwitch?.catch(() => undefined);
      }
      if (macKillSwitch) await macKillSwitch;
      const { applied, detail } = appliedByVm(vmUpOutcome);
      const forwarded = ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? `${macSource} and ${ipv6.macSource6}` : macSource;
      const macNote = macKillSwitch ? '; Mac fail-closed meanwhile (kill switch, endpoints pinned)' : '';
      return { value: applied, detail: `${vmLog.changed ? `forwarding ${forwarded} into the tunnel` : 'already up'}; ${detail}${macNote}` };
    }, opts.signal);
    result.endpoints = applied.endpoints;
    result.tunnelAddresses = applied.tunnelAddresses;

    await seq.run('mac-up', async () => {
      macUpStarted = true;
      await streamStep(seq, 'mac-up', 'mac', macLog, (onStep) =>
        mac.up(macUpRequest(opts, described.vm, applied, ipv6, false), onStep).catch((error: unknown) => {
          macUpError = error;
          throw error;
        }),
      );
      return { value: undefined, detail: `all traffic via ${opts.vmAddress}${ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? ` and ${ipv6.vmAddress6}` : ' (IPv6 blocked)'}` };
    }, opts.signal);
    result.ok = true;
  } catch (error) {
    result.failure = error instanceof StepFailure ? error.failure : { step: 'connect', message: messageOf(error) };
    // Reverse order, and only what this run started. A VM Up that reported every step
    // SKIPPED found the tunnel already up: that tunnel is not ours to tear down.
    // An agent that answered ABORTED before any step refused to start (another Up/Down runs):
    // it changed nothing for us, and a Down now would undo the other run's work.
    const vmRefusedBusy = vmUpError instanceof AgentCallError && vmUpError.grpcCode === GRPC_ABORTED && vmLog.order.length === 0;
    const vmChangedByUs = vmUpStarted && (vmLog.changed || (!vmUpOutcome && !vmRefusedBusy));
    const macRefusedBusy = macUpError instanceof AgentCallError && macUpError.grpcCode === GRPC_ABORTED && macLog.order.length === 0;
    const rollbacks: { side: Side; step: StepId; run: () => Promise<Outcome> }[] = [];
    if (macUpStarted && !macRefusedBusy) {
      rollbacks.push({ side: 'mac', step: 'rollback-mac', run: () => mac.down({ dryRun: false }, (e) => forward('rollback-mac', 'mac', e)) });
    }
    if (vmChangedByUs) {
      rollbacks.push({
        side: 'vm',
        step: 'rollback-vm',
        run: () => vm.down({ dryRun: false, forceInterfaceDown: false }, (e) => forward('rollback-vm', 'vm', e)),
      });
    }
    seq.emit({ kind: 'rollback', steps: rollbacks.map((rb) => rb.step) });
    for (const rb of rollbacks) {
      try {
        await seq.run(rb.step, async () => {
          const outcome = await rb.run();
          if (!outcome.ok) throw new Error(`${SIDE_LABEL[rb.side]} Down failed${outcome.failedStep ? ` at ${outcome.failedStep}` : ''}: ${outcome.error}`);
          return { value: undefined, detail: 'undone' };
        });
        result.rollback.push({ side: rb.side, ok: true });
      } catch (error) {
        const message = error instanceof StepFailure ? error.failure.message : messageOf(error);
        result.rollback.push({ side: rb.side, ok: false, error: message });
        result.left.push(leftBehind(rb.side));
      }
    }
  }
  result.totalMs = seq.elapsed();
  return result;

  function forward(step: StepId, side: Side, event: StepEvent): void {
    seq.emit({ kind: 'agent', step, side, event });
  }
}

function leftBehind(side: Side): string {
  return side === 'mac'
    ? 'Mac: split routes, endpoint pin, kill switch and DNS may still be in place (run `wgctl down` when mac-agent is reachable)'
    : 'VM: the WireGuard tunnel, forwarding and SNAT may still be in place (run `wgctl down` when vm-agent is reachable)';
}

export type SideOutcome = 'done' | 'failed' | 'unreachable' | 'not-run';

export interface DownOptions {
  dryRun?: boolean;
  forceInterfaceDown?: boolean;
  now?: () => number;
}

export interface DownResult {
  ok: boolean;
  totalMs: number;
  sides: Record<Side, { outcome: SideOutcome; error?: string; failure?: Failure }>;
  left: string[];
}

/** Mac first, then VM; an unreachable or failing side does not stop the other one. */
export async function down(
  vm: VmAgentApi,
  mac: MacAgentApi,
  opts: DownOptions,
  onEvent: EventListener = () => {},
): Promise<DownResult> {
  const seq = new Sequencer(onEvent, opts.now ?? Date.now);
  const result: DownResult = {
    ok: false,
    totalMs: 0,
    sides: { mac: { outcome: 'not-run' }, vm: { outcome: 'not-run' } },
    left: [],
  };
  seq.emit({ kind: 'start', step: 'connect' });
  const connected = await connectBoth(vm, mac);
  const unreachable = Object.entries(connected.errors) as [Side, string][];
  if (unreachable.length === 0) seq.emit({ kind: 'done', step: 'connect', detail: connectDetail(connected) });
  else seq.emit({ kind: 'failed', step: 'connect', error: unreachable.map(([, e]) => e).join('; ') });

  const sides: { side: Side; step: StepId; run: (log: AgentStepLog) => Promise<Outcome> }[] = [
    { side: 'mac', step: 'mac-down', run: (log) => streamStep(seq, 'mac-down', 'mac', log, (cb) => mac.down({ dryRun: !!opts.dryRun }, cb)) },
    {
      side: 'vm',
      step: 'vm-down',
      run: (log) =>
        streamStep(seq, 'vm-down', 'vm', log, (cb) =>
          vm.down({ dryRun: !!opts.dryRun, forceInterfaceDown: !!opts.forceInterfaceDown }, cb),
        ),
    },
  ];
  for (const { side, step, run } of sides) {
    const why = connected.errors[side];
    if (why) {
      seq.emit({ kind: 'skipped', step, detail: `${SIDE_LABEL[side]} unreachable` });
      result.sides[side] = { outcome: 'unreachable', error: why };
      result.left.push(leftBehind(side));
      continue;
    }
    const log = new AgentStepLog();
    try {
      await seq.run(step, async () => {
        await run(log);
        return { value: undefined, detail: log.changed ? 'removed' : 'nothing to remove' };
      });
      result.sides[side] = { outcome: 'done' };
    } catch (error) {
      const failure = error instanceof StepFailure ? error.failure : { step, message: messageOf(error) };
      result.sides[side] = { outcome: 'failed', error: failure.message, failure };
      result.left.push(leftBehind(side));
    }
  }
  result.ok = result.sides.mac.outcome === 'done' && result.sides.vm.outcome === 'done';
  result.totalMs = seq.elapsed();
  return result;
}

export interface PlannedCommand {
  argv: string[];
  /** false: a read-only command the agent actually ran to inspect the system. */
  wouldRun: boolean;
}

export interface PlannedStep {
  side: Side;
  step: string;
  state: 'would-run' | 'skipped' | 'failed';
  message: string;
  commands: PlannedCommand[];
}

export interface PlanResult {
  ok: boolean;
  failure?: Failure;
  steps: PlannedStep[];
  macSource?: string;
  ipv6?: Ipv6Decision;
  endpoints: Endpoint[];
  tunnelAddresses: string[];
}

function plannedSteps(side: Side, log: AgentStepLog): PlannedStep[] {
  return log.terminalEvents().map((e) => ({
    side,
    step: e.step,
    state: e.state === STEP_SKIPPED ? 'skipped' : e.state === STEP_FAILED ? 'failed' : 'would-run',
    message: e.message,
    commands: e.commands.map((c) => ({ argv: [...c.argv], wouldRun: c.dryRun })),
  }));
}

/** `wgctl plan` / `up --dry-run`: Up with dry_run on both agents, VM first; nothing changes. */
export async function plan(
  vm: VmAgentApi,
  mac: MacAgentApi,
  opts: UpOptions,
  onEvent: EventListener = () => {},
): Promise<PlanResult> {
  const seq = new Sequencer(onEvent, opts.now ?? Date.now);
  const result: PlanResult = { ok: false, steps: [], endpoints: [], tunnelAddresses: [] };
  const vmLog = new AgentStepLog();
  const macLog = new AgentStepLog();
  try {
    const described = await connectStep(seq, vm, mac, opts);
    const macSource = described.macSource;
    result.macSource = macSource;
    result.ipv6 = described.ipv6;
    // A dry-run Up reports what it would apply: the Mac's dry run pins those endpoints.
    const applied = await seq.run('vm-plan', async () => {
      const outcome = await streamStep(seq, 'vm-plan', 'vm', vmLog, (cb) => vm.up(vmUpRequest(opts, macSource, described.ipv6, true), cb));
      return { value: appliedByVm(outcome).applied, detail: `${vmLog.terminalEvents().length} steps` };
    }, opts.signal);
    result.endpoints = applied.endpoints;
    result.tunnelAddresses = applied.tunnelAddresses;
    await seq.run('mac-plan', async () => {
      await streamStep(seq, 'mac-plan', 'mac', macLog, (cb) => mac.up(macUpRequest(opts, described.vm, applied, described.ipv6, true), cb));
      return { value: undefined, detail: `${macLog.terminalEvents().length} steps` };
    }, opts.signal);
    result.ok = true;
  } catch (error) {
    result.failure = error instanceof StepFailure ? error.failure : { step: 'connect', message: messageOf(error) };
  }
  result.steps = [...plannedSteps('vm', vmLog), ...plannedSteps('mac', macLog)];
  return result;
}
