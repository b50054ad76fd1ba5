/**
 * Proves that reads run side by side: every call of the expected wave is held until all of
 * them have started. Reads run one after another never get there: the first one fails after
 * `timeoutMs`, naming the calls that had not started — so a change back to sequential reads
 * fails the test instead of only slowing the agent down. Calls outside the wave pass at once.
 */
import { formatArgv, type RunOptions, type RunResult, type Runner } from '@wgctl/runner';

export class ConcurrencyGate {
  private wave: string[] = [];
  private readonly held = new Map<string, () => void>();
  /** Every wave that was released whole, in order. */
  readonly released: string[][] = [];

  constructor(private readonly timeoutMs = 500) {}

  /** The calls that must all be in flight together next (empty: none expected). */
  expect(wave: string[]): void {
    this.wave = [...wave];
  }

  pass(call: string): Promise<void> {
    if (!this.wave.includes(call)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.held.delete(call);
        const missing = this.wave.filter((c) => !this.held.has(c) && c !== call);
        reject(new Error(`not concurrent: ${call} waited alone; ${missing.join(', ')} had not started`));
      }, this.timeoutMs);
      this.held.set(call, () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.wave.every((c) => this.held.has(c))) {
        this.released.push(this.wave);
        for (const c of this.wave) this.held.get(c)!();
        this.held.clear();
        this.wave = [];
      }
    });
  }
}

/** A runner that passes each command (by its formatted argv) through the gate first. */
export class GatedRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    readonly gate: ConcurrencyGate,
  ) {}

  async run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    await this.gate.pass(formatArgv(argv));
    return this.inner.run(argv, options);
  }
}
