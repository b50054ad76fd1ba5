/**
 * The engines' events in proto terms, for the wire: one place where a step record becomes a
 * Progress, an outcome the final Progress, and who answers an AgentInfo.
 */
import { hostname } from 'node:os';
import { PROTOCOL_VERSION, StepState, wgctlVersion, type AgentInfo, type Progress } from '@wgctl/proto';
import type { StepRecord } from '@wgctl/runner';
import type { AgentName, AppliedTunnel, OperationOutcome } from '../operation';

const STEP_STATES: Record<StepRecord['state'], StepState> = {
  started: StepState.STEP_STATE_STARTED,
  done: StepState.STEP_STATE_DONE,
  skipped: StepState.STEP_STATE_SKIPPED,
  failed: StepState.STEP_STATE_FAILED,
};

/** int64 fields travel as decimal strings of whole numbers; durations are measured in fractions. */
const wholeMs = (ms: number): string => String(Math.round(ms));

export function stepProgress(step: StepRecord): Progress {
  return {
    kind: {
      $case: 'step',
      value: {
        step: step.step,
        state: STEP_STATES[step.state],
        message: step.message,
        commands: step.commands.map((c) => ({ argv: c.argv, exitCode: c.exitCode, stderr: c.stderr, dryRun: c.dryRun, durationMs: wholeMs(c.durationMs) })),
        elapsedMs: wholeMs(step.elapsedMs),
      },
    },
  };
}

/** What a vm-agent Up is about to apply (Progress.vm_plan). */
export function planProgress(planned: AppliedTunnel): Progress {
  return { kind: { $case: 'vmPlan', value: { endpoints: planned.endpoints, tunnelAddresses: planned.tunnelAddresses } } };
}

/** A vm-agent Up's first handshake, every change in place (Progress.tunnel_ready). */
export function tunnelReadyProgress(handshake: string): Progress {
  return { kind: { $case: 'tunnelReady', value: { handshake } } };
}

export function outcomeProgress(outcome: OperationOutcome): Progress {
  const { ok, failedStep, error, totalMs, vmApplied, notRestored = [] } = outcome;
  return { kind: { $case: 'outcome', value: { ok, failedStep, error, totalMs: wholeMs(totalMs), vmApplied, notRestored } } };
}

/** This process as Describe and Status name it; `driver`: the mac-agent's host driver, the vm-agent's iptables backend. */
export function agentInfo(agent: AgentName, driver: string): AgentInfo {
  return { agent, version: wgctlVersion(), protocolVersion: PROTOCOL_VERSION, hostname: hostname(), driver, pid: String(process.pid) };
}
