/**
 * The StepRunner both engines run their Up and Down steps with. Before each step it asks
 * whether the operation must end there — the agent is stopping (StoppingError) or the caller
 * went away (CancelledError) — so an operation only ever ends between two steps, never
 * half-way through one. What ending means (roll back, or keep the journal) is the engine's.
 */
import { redactText, type Logger } from '@wgctl/logging';
import { StepRunner, type Runner, type StepBody, type StepListener } from '@wgctl/runner';
import { CancelledError } from './errors';
import type { OperationGate } from './gate';

export interface StepGuard {
  gate: OperationGate;
  /** The caller's: aborted when it went away. */
  signal?: AbortSignal;
  /** Test hook (WGCTL_TEST_STALL_AFTER_STEP): after this step, hold until the agent stops or the caller goes away. */
  stallAfterStep?: string;
  logger?: Logger;
}

export class GuardedStepRunner extends StepRunner {
  private cancellable = true;

  constructor(
    runner: Runner,
    listener: StepListener,
    private readonly guard: StepGuard,
  ) {
    super(runner, listener, redactText);
  }

  override async step(name: string, fn: (runner: Runner) => Promise<string | { skipped: string }>): Promise<void> {
    this.checkpoint(name);
    await super.step(name, fn);
    if (name === this.guard.stallAfterStep) await this.stall(name);
  }

  /** Steps side by side (StepRunner.stepsTogether): the operation may end before them, not between them. */
  override async stepsTogether(steps: readonly (readonly [string, StepBody])[]): Promise<void> {
    this.checkpoint(steps[0]?.[0]);
    await super.stepsTogether(steps);
    const stallAfter = steps.find(([name]) => name === this.guard.stallAfterStep);
    if (stallAfter) await this.stall(stallAfter[0]);
  }

  /**
   * Throws StoppingError or CancelledError when the operation must end here. Called before
   * each step, and by a step that waits (a wait, not a change, can end at once).
   */
  checkpoint(beforeStep?: string): void {
    this.guard.gate.checkStop(beforeStep);
    if (this.cancellable && this.guard.signal?.aborted) throw new CancelledError(beforeStep);
  }

  /** From here on a cancel is not checked: a rollback runs to its end (a cancelled Up relies on it). */
  ignoreCancel(): void {
    this.cancellable = false;
  }

  private async stall(step: string): Promise<void> {
    this.guard.logger?.warn('test hook: stalling after step until the agent stops or the caller goes away', { step });
    const { signal } = this.guard;
    const ends = [this.guard.gate.stopRequested];
    if (signal) ends.push(signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })));
    await Promise.race(ends);
  }
}
