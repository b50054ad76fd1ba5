/**
 * up: connect both → VM Up (handshake awaited; meanwhile the Mac made fail-closed on the VM's
 * plan: kill switch and pins) → Mac Up (routes, DNS), begun as soon as the VM says its tunnel is
 * ready (handshake in, every change made) while the VM reads its changes back. A failure rolls
 * back, in reverse order, only what this run changed.
 */
import {
  type Endpoint,
  Ipv6Mode,
  type MacDescription,
  type MacUpRequest,
  type Outcome,
  type StepEvent,
  type VmApplied,
  type VmDescription,
  type VmUpRequest,
} from '@wgctl/proto';
import { AgentCallError, type MacAgentApi, SIDE_LABEL, type Side, type VmAgentApi } from '../agents';
import { connectStep, type Described, describeBoth, type Describing, type Ipv6Decision, sourceWithoutMac, type UpOptions } from './connect';
import type { ProbeVerdict } from './portal-probe';
import { AgentStepLog, GRPC_ABORTED, type EventListener, type Failure, HeldEvents, type RollbackEntry, type StepId, Sequencer, StepFailure, leftBehind, messageOf, streamStep } from './steps';

/** The vm-agent's Up step that waits for the first handshake (vm-agent engine/up.ts). */
export const HANDSHAKE_AGENT_STEP = 'await-handshake';

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
  /** Why the handshake never came, when a probe after the rollback found a captive portal. */
  portal?: Extract<ProbeVerdict, { kind: 'portal' }>;
}

/**
 * The Mac pins the endpoints the VM's Up applied. The IPv6 decision is explicit on the Mac:
 * route with the VM's IPv6, else block (never the agent's own auto).
 */
export function macUpRequest(opts: UpOptions, vm: VmDescription, applied: VmApplied, ipv6: Ipv6Decision, dryRun: boolean, killSwitchOnly = false): MacUpRequest {
  return {
    vmAddress: opts.vmAddress,
    endpoints: applied.endpoints,
    dnsServers: opts.dnsServers && opts.dnsServers.length > 0 ? opts.dnsServers : vm.dns,
    dryRun,
    ipv6: ipv6.mode,
    vmAddress6: ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? ipv6.vmAddress6! : '',
    killSwitchOnly,
    exclude: opts.exclude ?? [],
    allowLan: opts.allowLan ?? false,
    // The sign-in window opens with the fail-closed Up; the full Up closes it.
    portalWindowMs: killSwitchOnly ? (opts.portalWindowMs ?? 0) : 0,
  };
}

export function vmUpRequest(opts: UpOptions, macSource: string, ipv6: Ipv6Decision, dryRun: boolean): VmUpRequest {
  return {
    macSource,
    dryRun,
    // With a sign-in window the VM waits for the handshake as long as the window is open.
    handshakeTimeoutMs: opts.portalWindowMs ?? opts.handshakeTimeoutMs ?? 0,
    // Empty: the VM forwards IPv4 only (the Mac blocks its IPv6).
    macSource6: ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? ipv6.macSource6! : '',
    lanInterface: opts.lanInterface ?? '',
  };
}

function describeEndpoints(endpoints: Endpoint[]): string {
  return endpoints.map((e) => `${e.ip || e.host}:${e.port}`).join(', ') || 'none';
}

/** What the VM's Up applied (dry-run: would apply), from its Outcome; throws when it is not usable. */
export function appliedByVm(outcome: Outcome): { applied: VmApplied; detail: string } {
  const applied = outcome.vmApplied;
  if (!applied) throw new Error("vm-agent's Up did not report what it applied (vm_applied): the vm-agent is older than this wgctl; upgrade it");
  if (applied.endpoints.length === 0) throw new Error('vm-agent reports no WireGuard server endpoints: check its wg-quick config');
  if (applied.tunnelAddresses.length === 0) throw new Error('vm-agent reports no tunnel address ([Interface] Address)');
  return { applied, detail: `endpoints ${describeEndpoints(applied.endpoints)}; tunnel ${applied.tunnelAddresses.join(', ')}` };
}

/** One `wgctl up`: what it has started and heard so far, which decides what a rollback undoes. */
interface UpRun {
  vm: VmAgentApi;
  mac: MacAgentApi;
  opts: UpOptions;
  seq: Sequencer;
  result: UpResult;
  vmLog: AgentStepLog;
  macLog: AgentStepLog;
  vmUpStarted: boolean;
  vmUpOutcome?: Outcome;
  vmUpError?: unknown;
  macUpStarted: boolean;
  macUpError?: unknown;
  /** The VM's Up in flight: begun after connect, or before it ends (beginVmUpEarly). */
  vmUp?: VmUpCall;
  /** The Mac's full Up, begun when the VM said its tunnel is ready (before its Outcome). */
  macFullUp?: EarlyMacUp;
}

/**
 * A VM Up in flight. Its events are held until the vm-up step starts (it may begin while connect
 * still waits for the Mac); its plan and tunnel-ready are kept until that step listens.
 */
interface VmUpCall {
  outcome: Promise<Outcome>;
  events: HeldEvents;
  planned?: VmApplied;
  tunnelReady: boolean;
  onPlan?: (planned: VmApplied) => void;
  onTunnelReady?: () => void;
}

/** A Mac full Up begun before the mac-up step: its events are held until that step starts. */
interface EarlyMacUp {
  outcome: Promise<Outcome>;
  events: HeldEvents;
}

export async function up(vm: VmAgentApi, mac: MacAgentApi, opts: UpOptions, onEvent: EventListener = () => {}): Promise<UpResult> {
  const run: UpRun = {
    vm,
    mac,
    opts,
    seq: new Sequencer(onEvent, opts.now ?? Date.now),
    result: { ok: false, totalMs: 0, rollback: [], left: [], endpoints: [], tunnelAddresses: [] },
    vmLog: new AgentStepLog(),
    macLog: new AgentStepLog(),
    vmUpStarted: false,
    macUpStarted: false,
  };
  const { seq, result } = run;
  const describing = describeBoth(vm, mac);
  const earlySource = sourceWithoutMac(opts);
  const earlyVmUp = earlySource && beginVmUpEarly(run, describing, earlySource);
  try {
    const described = await connectStep(seq, vm, mac, opts, describing, earlySource);
    Object.assign(result, { vm: described.vm, mac: described.mac, macSource: described.macSource, ipv6: described.ipv6 });
    const vmUp = (await earlyVmUp) ?? beginVmUp(run, described.macSource, described.ipv6);
    const applied = await seq.run('vm-up', () => vmUpWithMacFailClosed(run, described, vmUp), opts.signal);
    result.endpoints = applied.endpoints;
    result.tunnelAddresses = applied.tunnelAddresses;
    await seq.run('mac-up', () => macUp(run, described.vm, applied, described.ipv6), opts.signal);
    result.ok = true;
  } catch (error) {
    result.failure = error instanceof StepFailure ? error.failure : { step: 'connect', message: messageOf(error) };
    await rollBack(run);
    // Only once the Mac is back as before `up`: its kill switch would hold the probe too.
    if (isHandshakeFailure(result.failure) && result.rollback.every((rb) => rb.ok) && opts.probePortal) {
      const verdict = await opts.probePortal();
      if (verdict.kind === 'portal') result.portal = verdict;
    }
  }
  result.totalMs = seq.elapsed();
  return result;
}

/** The VM's tunnel came up but no handshake came: the network may hold it (a captive portal). */
function isHandshakeFailure(failure: Failure): boolean {
  return failure.step === 'vm-up' && failure.agentStep === HANDSHAKE_AGENT_STEP;
}

/** Sends the VM its Up (see VmUpCall). */
function beginVmUp(run: UpRun, macSource: string, ipv6: Ipv6Decision): VmUpCall {
  run.vmUpStarted = true;
  // Called as the stream's messages come, once `call` is made.
  const listeners = {
    onPlan: (planned: VmApplied) => {
      call.planned ??= planned;
      call.onPlan?.(planned);
    },
    onTunnelReady: () => {
      call.tunnelReady = true;
      call.onTunnelReady?.();
    },
  };
  const events = new HeldEvents(run.seq);
  const call: VmUpCall = {
    events,
    tunnelReady: false,
    outcome: streamStep(events, 'vm-up', 'vm', run.vmLog, (onStep) =>
      run.vm.up(vmUpRequest(run.opts, macSource, ipv6, false), onStep, listeners).catch((error: unknown) => {
        run.vmUpError = error;
        throw error;
      }),
    ),
  };
  call.outcome.catch(() => undefined); // awaited by vm-up or by the rollback
  run.vmUp = call;
  return call;
}

/**
 * The VM's Up before the Mac's Describe is in, when nothing of it waits for that (connect.ts,
 * sourceWithoutMac): as soon as the VM has answered its Describe. The Mac's Describe takes the
 * longest of the two (it reads the routing table), and the VM's Up is the critical path. Its
 * events wait for the vm-up step, and the Mac changes nothing before connect has vouched for
 * its agent (vmUpWithMacFailClosed). Undefined — the usual order — when the VM's Describe
 * failed, the source is unknown, the Mac's Describe failed first, or the user interrupted.
 */
async function beginVmUpEarly(run: UpRun, describing: Describing, earlySource: Promise<string | undefined>): Promise<VmUpCall | undefined> {
  let macFailed = false;
  describing.mac.catch(() => (macFailed = true));
  const [vm, source] = await Promise.allSettled([describing.vm, earlySource]);
  if (vm.status !== 'fulfilled' || source.status !== 'fulfilled' || !source.value || macFailed || run.opts.signal?.aborted) return undefined;
  return beginVmUp(run, source.value, { mode: Ipv6Mode.IPV6_MODE_BLOCK, reason: '' });
}

/**
 * The VM's Up. Fail-closed early: as soon as the VM says which servers it will use (its plan),
 * the Mac loads its kill switch (it lets the VM's WireGuard UDP out) and pins them, while the
 * tunnel comes up; whatever the VM answers, the Mac's part is over before anything is judged.
 */
async function vmUpWithMacFailClosed(run: UpRun, described: Described, vmUp: VmUpCall): Promise<{ value: VmApplied; detail: string }> {
  const { mac, opts, seq, vmLog, macLog } = run;
  const { macSource, ipv6 } = described;
  let macKillSwitch: Promise<Outcome> | undefined;
  let plannedForMac: VmApplied | undefined;
  const makeMacFailClosed = (planned: VmApplied): void => {
    if (macKillSwitch || planned.endpoints.length === 0) return;
    run.macUpStarted = true;
    plannedForMac = planned;
    macKillSwitch = streamStep(seq, 'vm-up', 'mac', macLog, (onStep) =>
      mac.up(macUpRequest(opts, described.vm, planned, ipv6, false, true), onStep).catch((error: unknown) => {
        run.macUpError = error;
        throw error;
      }),
    );
    macKillSwitch.catch(() => undefined); // awaited below, after the VM's answer
  };
  // The handshake came and the VM's changes are in: the Mac's routes and DNS follow now, while
  // the VM reads its changes back and journals them (a vm-agent without tunnel-ready: after its
  // Outcome, in mac-up). Whatever the VM answers, the rollback waits for this Up first.
  const onTunnelReady = (): void => {
    if (run.macFullUp || !macKillSwitch || !plannedForMac) return;
    run.macFullUp = beginMacFullUp(run, described, plannedForMac, macKillSwitch);
  };
  // What the VM said before this step began (an Up begun early) is heard now, in order.
  vmUp.events.release();
  vmUp.onPlan = makeMacFailClosed;
  vmUp.onTunnelReady = onTunnelReady;
  if (vmUp.planned) makeMacFailClosed(vmUp.planned);
  if (vmUp.tunnelReady) onTunnelReady();
  try {
    run.vmUpOutcome = await vmUp.outcome;
  } finally {
    await macKillSwitch?.catch(() => undefined);
  }
  if (macKillSwitch) await macKillSwitch;
  const { applied, detail } = appliedByVm(run.vmUpOutcome);
  const forwarded = ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? `${macSource} and ${ipv6.macSource6}` : macSource;
  const macNote = macKillSwitch ? '; Mac fail-closed meanwhile (kill switch, endpoints pinned)' : '';
  return { value: applied, detail: `${vmLog.changed ? `forwarding ${forwarded} into the tunnel` : 'already up'}; ${detail}${macNote}` };
}

/** The Mac's full Up on the VM's tunnel-ready, once its kill-switch-only Up has ended well. */
function beginMacFullUp(run: UpRun, described: Described, planned: VmApplied, killSwitch: Promise<Outcome>): EarlyMacUp {
  const events = new HeldEvents(run.seq);
  const request = macUpRequest(run.opts, described.vm, planned, described.ipv6, false);
  const outcome = killSwitch.then(() => streamStep(events, 'mac-up', 'mac', run.macLog, (onStep) => callMacUp(run, request, onStep)));
  outcome.catch(() => undefined); // awaited by mac-up or by the rollback
  return { outcome, events };
}

function callMacUp(run: UpRun, request: MacUpRequest, onStep: (event: StepEvent) => void): Promise<Outcome> {
  return run.mac.up(request, onStep).catch((error: unknown) => {
    run.macUpError = error;
    throw error;
  });
}

/** The Mac's full Up, after the handshake: routes via the VM, DNS (its kill switch and pins found in place). */
async function macUp(run: UpRun, vmDescription: VmDescription, applied: VmApplied, ipv6: Ipv6Decision): Promise<{ value: undefined; detail: string }> {
  const { opts, seq, macLog } = run;
  run.macUpStarted = true;
  if (run.macFullUp) {
    run.macFullUp.events.release();
    await run.macFullUp.outcome;
  } else {
    await streamStep(seq, 'mac-up', 'mac', macLog, (onStep) => callMacUp(run, macUpRequest(opts, vmDescription, applied, ipv6, false), onStep));
  }
  return { value: undefined, detail: `all traffic via ${opts.vmAddress}${ipv6.mode === Ipv6Mode.IPV6_MODE_ROUTE ? ` and ${ipv6.vmAddress6}` : ' (IPv6 blocked)'}` };
}

/**
 * Reverse order, and only what this run started. A VM Up that reported every step SKIPPED found
 * the tunnel already up: that tunnel is not ours to tear down. An agent that answered ABORTED
 * before any step refused to start (another Up/Down runs): it changed nothing for us, and a Down
 * now would undo the other run's work.
 */
async function rollBack(run: UpRun): Promise<void> {
  const { vm, mac, seq, result, vmLog, macLog } = run;
  // An Up still running would refuse the Down (one operation at a time): let it end first. The
  // VM's may have begun before connect failed (beginVmUpEarly).
  if (run.vmUp && !run.vmUpOutcome) run.vmUpOutcome = await run.vmUp.outcome.catch(() => undefined);
  await run.macFullUp?.outcome.catch(() => undefined);
  const refusedBusy = (error: unknown, log: AgentStepLog) => error instanceof AgentCallError && error.grpcCode === GRPC_ABORTED && log.order.length === 0;
  const vmChangedByUs = run.vmUpStarted && (vmLog.changed || (!run.vmUpOutcome && !refusedBusy(run.vmUpError, vmLog)));
  const forward = (step: StepId, side: Side) => (event: StepEvent) => seq.emit({ kind: 'agent', step, side, event });
  const rollbacks: { side: Side; step: StepId; run: () => Promise<Outcome> }[] = [];
  if (run.macUpStarted && !refusedBusy(run.macUpError, macLog)) {
    rollbacks.push({ side: 'mac', step: 'rollback-mac', run: () => mac.down({ dryRun: false, vmAddress: '', vmAddress6: '', endpoints: [], exclude: [] }, forward('rollback-mac', 'mac')) });
  }
  if (vmChangedByUs) {
    rollbacks.push({ side: 'vm', step: 'rollback-vm', run: () => vm.down({ dryRun: false, forceInterfaceDown: false }, forward('rollback-vm', 'vm')) });
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
