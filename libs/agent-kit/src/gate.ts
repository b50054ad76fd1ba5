/**
 * The operation gate: one Up or Down at a time, none once the agent stops. A second one is
 * refused at once with BusyError naming the one running (never queued); after stop() every
 * new one is refused with StoppingError, and the one in flight ends at its next step boundary
 * (GuardedStepRunner asks checkStop before each step).
 */
import { BusyError, StoppingError } from './errors';
import type { AgentName } from './operation';

export interface RunningOperation {
  op: string;
  sinceMs: number;
}

export class OperationGate {
  private current: (RunningOperation & { done: Promise<unknown> }) | null = null;
  private stopReason: string | null = null;
  private started = 0;
  private signalStop!: () => void;
  /** Resolves once stop() has been called (the stall test hook waits for it). */
  readonly stopRequested: Promise<void>;

  constructor(
    readonly agent: AgentName,
    private readonly now: () => number = Date.now,
  ) {
    this.stopRequested = new Promise((resolve) => (this.signalStop = resolve));
  }

  get stopping(): boolean {
    return this.stopReason !== null;
  }

  /** The Up or Down in flight, for messages; null when idle. */
  get running(): RunningOperation | null {
    return this.current && { op: this.current.op, sinceMs: this.current.sinceMs };
  }

  /** How many operations have started so far: an answer read between two operations stays valid while it is unchanged. */
  get operationsStarted(): number {
    return this.started;
  }

  /** Throws StoppingError, naming the step it stops before, once the agent is stopping. */
  checkStop(beforeStep?: string): void {
    if (this.stopReason !== null) throw new StoppingError(this.agent, this.stopReason, beforeStep);
  }

  /**
   * Runs `operation` as the one in flight. Throws synchronously (nothing started) when the
   * agent is stopping or another operation runs.
   */
  run<T>(op: string, operation: () => Promise<T>): Promise<T> {
    this.checkStop();
    if (this.current) throw new BusyError(this.current.op, this.current.sinceMs);
    const slot: RunningOperation & { done: Promise<unknown> } = { op, sinceMs: this.now(), done: Promise.resolve() };
    this.current = slot;
    this.started++;
    let started: Promise<T>;
    try {
      started = operation();
    } catch (e) {
      this.current = null;
      throw e;
    }
    const done = started.finally(() => {
      if (this.current === slot) this.current = null;
    });
    slot.done = done;
    return done;
  }

  /** Refuses new work from now on; resolves once the operation in flight has ended. */
  async stop(reason: string): Promise<void> {
    if (this.stopReason === null) {
      this.stopReason = reason;
      this.signalStop();
    }
    while (this.current) await this.current.done.catch(() => undefined);
  }
}
