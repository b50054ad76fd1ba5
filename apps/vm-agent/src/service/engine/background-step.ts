/**
 * A step that runs beside the steps after it: Up starts `wg-quick up` (~100 ms, most of Up)
 * and applies the firewall and forwarding meanwhile, which need nothing from it. The step is a
 * step like any other (checked before it starts, its events and commands its own); the
 * operation goes on once the step has done what must come first (`ready`: wg-quick has
 * started, so nothing beside it starts before it) and joins it later. Whatever ends the
 * operation — a failure on either side, a stop, a cancel — waits for the step's end first: its
 * command is never left running, and a rollback never races it.
 */
import type { Runner } from '@wgctl/runner';
import type { Operation, StepResult } from './context';

export type BackgroundBody = (runner: Runner, ready: () => void) => Promise<StepResult>;

export class BackgroundStep {
  private readonly ended: Promise<void>;
  private readonly readied: Promise<void>;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly op: Operation,
    readonly name: string,
    body: BackgroundBody,
  ) {
    let ready!: () => void;
    this.readied = new Promise<void>((resolve) => (ready = resolve));
    this.ended = op.steps.step(name, (r) => body(r, ready)).catch((error: unknown) => {
      this.failure = { error };
    });
    // Ended without saying ready (skipped, failed, stopped before it began): nothing to wait for.
    void this.ended.then(ready);
  }

  /** Once the step is ready for the others to go on; throws (naming the step) if it ended in failure before that. */
  async ready(): Promise<void> {
    await this.readied;
    this.throwIfFailed();
  }

  /** Waits for the step's end and throws its failure: from here on a failure names it. */
  async join(): Promise<void> {
    await this.ended;
    this.throwIfFailed();
  }

  /** Waits for the step's end, whatever it was (the operation is ending for another reason). */
  settled(): Promise<void> {
    return this.ended;
  }

  private throwIfFailed(): void {
    if (!this.failure) return;
    this.op.failedStep = this.name;
    throw this.failure.error;
  }
}
