/** plan / up --dry-run: Up with dry_run on both agents, VM first; nothing changes. */
import { type Endpoint } from '@wgctl/proto';
import { type MacAgentApi, type Side, type VmAgentApi } from '../agents';
import { connectStep, type Ipv6Decision, type UpOptions } from './connect';
import { appliedByVm, macUpRequest, vmUpRequest } from './up';
import { AgentStepLog, type EventListener, type Failure, STEP_FAILED, STEP_SKIPPED, Sequencer, StepFailure, messageOf, streamStep } from './steps';

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
