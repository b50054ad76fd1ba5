/**
 * What Up and Down share: the request's options, what they use of the engine, and one
 * operation's context (its guarded steps, its journal, its clock) with how an operation that
 * had to end between two steps reports it.
 */
import { CancelledError, GuardedStepRunner, StoppingError, type OperationContext, type OperationGate, type OperationOutcome } from '@wgctl/agent-kit';
import { DryRunRunner, type Runner, type StepListener } from '@wgctl/runner';
import type { HostNetworkDriver, ServerEndpoint } from '../host/driver';
import type { DnsReadAhead, EngineCore, TableAhead } from './core';
import type { VmAddresses } from './down-by-marks';
import type { MacJournal } from './journal';

/** A requested Up's or Down's own options: dry run, and the caller's signal (aborted when it went away). */
export interface RequestOptions extends Pick<OperationContext, 'signal'> {
  dryRun?: boolean;
  /** Down: the VM's addresses, by which the split routes are recognised when the journal lists none (see down-by-marks). */
  vmAddresses?: VmAddresses;
  /** Down: the WireGuard servers, by which the pins are recognised when the journal lists none. */
  servers?: ServerEndpoint[];
  /** Down: the excluded CIDRs, by which their routes are recognised when the journal lists none. */
  excluded?: string[];
}

/** What Up and Down use of the engine. */
export interface UpDownDeps {
  core: EngineCore;
  gate: OperationGate;
  /** Test hook: hang after this Up step until the agent is stopped or killed. */
  stallAfterStep?: string;
  /** After an Up that applied: roaming starts. */
  afterUp(): void;
  /** Before a Down changes anything: no re-assert retry, no roaming. */
  beforeDown(): Promise<void>;
}

export type StepResult = string | { skipped: string };

/** One Up or Down: its steps (dry run: changes recorded, not made), the journal it writes, its clock. */
export abstract class Operation {
  readonly core: EngineCore;
  readonly driver: HostNetworkDriver;
  readonly dryRun: boolean;
  readonly started: number;
  readonly steps: GuardedStepRunner;
  abstract readonly journal: MacJournal;
  /** DNS a kill-switch-only Up read for the full Up: every operation takes it, only that Up uses it. */
  readonly dnsReadAhead?: DnsReadAhead;
  /** The routing table a kill-switch-only Up read back: every operation takes it, only the full Up that follows uses it. */
  readonly tableAhead?: TableAhead;

  constructor(
    readonly deps: UpDownDeps,
    options: RequestOptions,
    readonly listener: StepListener,
    stallAfterStep?: string,
  ) {
    this.core = deps.core;
    this.driver = deps.core.driver;
    this.started = this.core.now();
    this.dryRun = options.dryRun ?? false;
    this.dnsReadAhead = this.core.takeDnsReadAhead();
    this.tableAhead = this.core.takeTableAhead();
    const run: Runner = this.dryRun ? new DryRunRunner(this.core.runner) : this.core.runner;
    this.steps = new GuardedStepRunner(run, listener, { gate: deps.gate, logger: this.core.logger, signal: options.signal, stallAfterStep });
  }

  /** Saves the journal (not in a dry run). */
  persist(): void {
    if (this.dryRun) return;
    this.core.persist(this.journal);
  }

  succeeded(): OperationOutcome {
    return { ok: true, failedStep: '', error: '', totalMs: this.core.now() - this.started };
  }

  failed(failedStep: string, error: string): OperationOutcome {
    return { ok: false, failedStep, error, totalMs: this.core.now() - this.started };
  }
}

/**
 * An Up or Down that ended between two steps because the agent stops or the caller went
 * away: no rollback — the journal (up-/down-in-progress) lists what the host holds and the
 * kill switch stays as the last step left it (fail-closed); the next Up, Down or start takes
 * it from there. A cancel is also noted in the journal's lastError (when the operation wrote
 * its journal already), so that Status says why the host is half-way while the agent runs on.
 * Null for any other failure.
 */
export function endedBetweenSteps(op: Operation, name: 'Up' | 'Down', e: unknown, journalWritten: boolean): OperationOutcome | null {
  if (!(e instanceof StoppingError || e instanceof CancelledError)) return null;
  const failedStep = e.beforeStep ?? '';
  const why = e instanceof StoppingError ? `the agent is stopping (${e.reason})` : 'the caller went away';
  op.core.logger.warn(`${name} ended between steps: ${why}; the journal keeps what was applied`, { before: failedStep });
  const error =
    e instanceof CancelledError
      ? `${e.message}; nothing was rolled back: the journal keeps what was applied (fail-closed) — run \`wgctl up\` to finish or \`wgctl down\` to undo`
      : e.message;
  if (e instanceof CancelledError && journalWritten) {
    op.journal.lastError = `${failedStep}: ${error}`;
    op.persist();
  }
  return op.failed(failedStep, error);
}
