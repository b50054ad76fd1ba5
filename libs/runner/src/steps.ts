/**
 * Steps: how an agent's Up/Down reports progress. Each step gets a runner that records the
 * argv it ran (or would run, in dry-run), so the event streamed to the controller carries
 * the exact commands. The shapes mirror wgctl.v1.StepEvent (agents map them 1:1).
 */
import { CommandError, ObservedRunner, type RunResult, type Runner } from './runner';

export type StepStateName = 'started' | 'done' | 'skipped' | 'failed';

export interface CommandRecord {
  argv: string[];
  exitCode: number;
  stderr: string;
  dryRun: boolean;
  durationMs: number;
}

export interface StepRecord {
  step: string;
  state: StepStateName;
  message: string;
  commands: CommandRecord[];
  elapsedMs: number;
}

export type StepListener = (event: StepRecord) => void;

/** A step's body: a message (done), or `{ skipped: message }` when the system was already as wanted. */
export type StepOutcome = string | { skipped: string };
export type StepBody = (runner: Runner) => Promise<StepOutcome>;

export class StepFailedError extends Error {
  constructor(
    readonly step: string,
    override readonly cause: unknown,
  ) {
    super(`step ${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'StepFailedError';
  }
}

function toRecord(r: RunResult, redact: (s: string) => string): CommandRecord {
  return {
    argv: [...r.argv],
    exitCode: r.dryRun ? -1 : r.exitCode,
    stderr: redact(r.stderr.trim()),
    dryRun: r.dryRun,
    durationMs: r.durationMs,
  };
}

/**
 * Runs named steps in order. `fn` returns a message (done), or `{ skipped: message }` when
 * the system was already in the desired state. A throw marks the step failed and rethrows
 * a StepFailedError naming it.
 */
export class StepRunner {
  private readonly started = Date.now();

  constructor(
    private readonly runner: Runner,
    private readonly listener: StepListener,
    private readonly redact: (s: string) => string = (s) => s,
  ) {}

  async step(name: string, fn: StepBody): Promise<void> {
    const step = this.begin(name);
    let result: StepOutcome;
    try {
      result = await fn(step.runner);
    } catch (e) {
      throw step.failed(e);
    }
    step.ended(result);
  }

  /**
   * Independent steps side by side: their 'started' events in the given order, their bodies run
   * together, then — once every one has ended, so that no command outlives its step — their final
   * events in the given order (the listing does not depend on timing). Throws the first failure
   * in that order, as step() does.
   */
  async stepsTogether(steps: readonly (readonly [string, StepBody])[]): Promise<void> {
    const begun = steps.map(([name]) => this.begin(name));
    const start = (fn: StepBody, runner: Runner): Promise<StepOutcome> => {
      try {
        return fn(runner);
      } catch (e) {
        return Promise.reject(e); // a body that throws before its first await fails its own step only
      }
    };
    const settled = await Promise.allSettled(steps.map(([, fn], i) => start(fn, begun[i]!.runner)));
    let failure: StepFailedError | undefined;
    settled.forEach((result, i) => {
      if (result.status === 'fulfilled') begun[i]!.ended(result.value);
      else failure ??= begun[i]!.failed(result.reason);
    });
    if (failure) throw failure;
  }

  /** Emits the step's 'started' event; its runner records each command in the slot taken when it started. */
  private begin(name: string): { runner: Runner; ended(result: StepOutcome): void; failed(e: unknown): StepFailedError } {
    // One slot per command, taken when it starts: commands a step runs side by side are
    // listed in the order they were started, not in the order they happened to finish.
    const slots: (CommandRecord | undefined)[] = [];
    const commands = (): CommandRecord[] => slots.filter((c): c is CommandRecord => c !== undefined);
    const runner: Runner = {
      run: (argv, options) => {
        const slot = slots.push(undefined) - 1;
        return new ObservedRunner(this.runner, (r) => (slots[slot] = toRecord(r, this.redact))).run(argv, options);
      },
    };
    this.emit(name, 'started', '', []);
    return {
      runner,
      ended: (result) => {
        if (typeof result === 'string') this.emit(name, 'done', result, commands());
        else this.emit(name, 'skipped', result.skipped, commands());
      },
      failed: (e) => {
        const message = e instanceof CommandError ? e.message : e instanceof Error ? e.message : String(e);
        this.emit(name, 'failed', this.redact(message), commands());
        return new StepFailedError(name, e);
      },
    };
  }

  elapsedMs(): number {
    return Date.now() - this.started;
  }

  private emit(step: string, state: StepStateName, message: string, commands: CommandRecord[]): void {
    this.listener({ step, state, message, commands: [...commands], elapsedMs: this.elapsedMs() });
  }
}
