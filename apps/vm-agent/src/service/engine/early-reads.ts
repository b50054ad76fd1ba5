/**
 * Reads started ahead of the steps that use them. Up's first steps each wait for a few reads
 * that do not depend on one another (the route to the Mac, the link, the wg-quick leftovers):
 * all are started together once the config is known, and each step still asks for its own
 * with the same call as before — this runner hands it the read already under way, so the step
 * lists the same commands and decides the same way, only sooner. Once every change is made,
 * a second window does the same for the last steps (await-handshake, verify).
 */
import type { RunOptions, RunResult, Runner } from '@wgctl/runner';

/** A read started ahead, not awaited here: its step sees the failure, if any. */
export function startedAhead(read: Promise<unknown>): void {
  void read.catch(() => undefined);
}

/** What makes two reads the same: the argv, and the options that decide whether a result throws. */
function readKey(argv: readonly string[], options: RunOptions): string {
  return JSON.stringify([argv, options.allowFailure ?? false, options.okExitCodes ?? []]);
}

export class EarlyReads implements Runner {
  private readonly started = new Map<string, Promise<RunResult>>();
  private closed = false;

  constructor(private readonly inner: Runner) {}

  /**
   * A runner for calling the usual read functions ahead of time: each read-only command it is
   * given starts now and waits for its step. Nothing else may go through it (a change never
   * runs early).
   */
  get starter(): Runner {
    return {
      run: (argv, options = {}) => {
        if (!options.readOnly || options.input !== undefined) return Promise.reject(new Error(`not a read, not started early: ${argv.join(' ')}`));
        const key = readKey(argv, options);
        let read = this.started.get(key);
        if (!read) {
          read = this.inner.run(argv, options);
          read.catch(() => undefined); // its step sees the failure; unclaimed, it is only waited for
          this.started.set(key, read);
        }
        return read;
      },
    };
  }

  /** A read started early is handed over once (a second identical read runs anew); everything else runs now. */
  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (!this.closed && options.readOnly && options.input === undefined) {
      const key = readKey(argv, options);
      const read = this.started.get(key);
      if (read) {
        this.started.delete(key);
        return read;
      }
    }
    return this.inner.run(argv, options);
  }

  /**
   * From here on every read runs anew: the system changes, an early answer would be stale.
   * Waits for the reads no step claimed, so none outlives the Up that started it.
   */
  async close(): Promise<void> {
    this.closed = true;
    const unclaimed = [...this.started.values()];
    this.started.clear();
    await Promise.allSettled(unclaimed);
  }

  /** A new window, once nothing changes the system any more: reads may be started ahead again. */
  reopen(): void {
    this.closed = false;
  }
}
