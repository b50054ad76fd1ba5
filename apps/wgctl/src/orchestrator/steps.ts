/**
 * The orchestrator's steps: their names and titles, the events it emits, the Sequencer that
 * runs one step at a time, the log of an agent's step stream, and how a failure is reported.
 */
import { type Command, type Outcome, type StepEvent, StepState } from '@wgctl/proto';
import { SIDE_LABEL, type Side } from '../agents';

/** grpc.status.ABORTED (this module stays free of gRPC code). */
export const GRPC_ABORTED = 10;

export const STEP_STARTED = StepState.STEP_STATE_STARTED;
export const STEP_DONE = StepState.STEP_STATE_DONE;
export const STEP_SKIPPED = StepState.STEP_STATE_SKIPPED;
export const STEP_FAILED = StepState.STEP_STATE_FAILED;

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

export class StepFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs one orchestrator step: start/done/failed events around `fn`. */
export class Sequencer {
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

/** Where a stream's events go: the Sequencer, or a HeldEvents in front of it. */
export type EventSink = Pick<Sequencer, 'emit'>;

/**
 * The events of an agent stream begun before its orchestrator step has started (the Mac's full
 * Up on the VM's tunnel-ready): held until release(), then passed on as they come.
 */
export class HeldEvents implements EventSink {
  private held: DistributiveOmit<OrchestratorEvent, 'atMs'>[] | undefined = [];

  constructor(private readonly seq: EventSink) {}

  emit(event: DistributiveOmit<OrchestratorEvent, 'atMs'>): void {
    if (this.held) this.held.push(event);
    else this.seq.emit(event);
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const event of held) this.seq.emit(event);
  }
}

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

export function toFailedCommand(c: Command): FailedCommand {
  return { argv: [...c.argv], exitCode: c.exitCode, stderr: c.stderr };
}

export function outcomeFailure(step: StepId, side: Side, outcome: Outcome, log: AgentStepLog): Failure {
  const { agentStep, command } = log.failedCommand(outcome.failedStep || undefined);
  const where = agentStep ? ` at step ${agentStep}` : '';
  const error = outcome.error || 'no error message';
  return { step, agentStep, command, message: `${SIDE_LABEL[side]} failed${where}: ${error}` };
}

/** Calls `rpc` (an Up/Down stream), forwarding step events; throws a StepFailure unless ok. */
export async function streamStep(
  seq: EventSink,
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

export function leftBehind(side: Side): string {
  return side === 'mac'
    ? 'Mac: split routes, endpoint pin, kill switch and DNS may still be in place (run `wgctl down` when mac-agent is reachable)'
    : 'VM: the WireGuard tunnel, forwarding and SNAT may still be in place (run `wgctl down` when vm-agent is reachable)';
}

